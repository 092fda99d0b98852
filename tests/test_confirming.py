"""A `Confirming` backend (a submit is a write and then a check, as Nomad's): the launcher makes a herd's writes
first and the checks after, and each launch's outcome, attempts and retries are what one `submit` would give."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from cronframework.engine.launcher import FIRST_SLICE
from cronframework.errors import LeadershipLost, PermanentBackendError, TransientBackendError
from cronframework.launch import Launch, SubmitOutcome
from cronframework.records import Outcome
from cronframework.testing import FakeBackend
from tests.leader_harness import T0, Cluster, job

DUE = T0 + timedelta(minutes=1)  # the first instant of an every-minute job placed at T0


@dataclass
class ConfirmingBackend(FakeBackend):
    """Writes and checks logged in order; `fail["register"]` fails a write, `fail["check"]` a check."""

    confirms = True
    calls: list[str] = field(default_factory=list)
    prepared: dict[str, Launch] = field(default_factory=dict)  # by name: what `prepare` was handed
    written: dict[str, Launch] = field(default_factory=dict)  # by name: what `register` was handed
    unprepared: list[str] = field(default_factory=list)  # launches written before `prepare` was handed them
    lock: threading.Lock = field(default_factory=threading.Lock)

    def register(self, name: str, launch: Launch) -> Callable[[], SubmitOutcome]:
        self._maybe_fail("register", name)
        with self.lock:
            self.calls.append(f"write {name}")
            self.written[name] = launch
            if name not in self.prepared:
                self.unprepared.append(name)
            outcome = super().submit(name, launch)
        return lambda: self._check(name, outcome)

    def submit(self, name: str, launch: Launch) -> SubmitOutcome:
        return self.register(name, launch)()

    def prepare(self, launches: Sequence[Launch]) -> None:
        with self.lock:
            self.prepared.update((launch.name, launch) for launch in launches)

    def _check(self, name: str, outcome: SubmitOutcome) -> SubmitOutcome:
        self.calls.append(f"check {name}")
        self._maybe_fail("check", name)
        return outcome


def herd(backend: ConfirmingBackend, jobs: int, **fields: object) -> Cluster:
    cluster = Cluster(backend=backend)
    cluster.apply(*(job(f"j{i:02d}", **fields) for i in range(jobs)))
    session, _ = cluster.leader(workers=4)
    session.promote()
    cluster.run_for(session, 60)
    return cluster


def outcomes(cluster: Cluster) -> set[tuple[Outcome | None, int]]:
    return {(r.outcome, r.attempt) for r in cluster.store.history("j00", limit=1)}


def test_every_write_of_a_herd_comes_before_its_checks_and_each_launch_is_submitted() -> None:
    backend = ConfirmingBackend()
    cluster = herd(backend, 20)
    kinds = [call.split()[0] for call in backend.calls]
    assert kinds == ["write"] * 20 + ["check"] * 20
    records = [r for i in range(20) for r in cluster.store.history(f"j{i:02d}", limit=5)]
    assert len(records) == 20 and {(r.outcome, r.attempt) for r in records} == {(Outcome.SUBMITTED, 1)}


def test_a_staged_herd_s_writes_are_prepared_before_the_instant_and_the_same_launches_written_at_it() -> None:
    backend = ConfirmingBackend()
    cluster = Cluster(backend=backend)
    cluster.apply(*(job(f"j{i:02d}") for i in range(20)))
    session, _ = cluster.leader(workers=4, stage_ahead=1.0)
    session.promote()
    cluster.clock.set(DUE - timedelta(seconds=0.5))
    session._stage = session._prepare_stage(cluster.clock.now())
    assert len(backend.prepared) == 20 and backend.calls == []  # built, nothing sent
    session._sleep()
    assert cluster.clock.now() == DUE
    session.tick()
    assert backend.unprepared == []
    assert backend.written == backend.prepared  # equal launches: what was built is what is sent
    assert [call.split()[0] for call in backend.calls] == ["write"] * 20 + ["check"] * 20


def test_an_unstaged_herd_prepares_nothing_and_writes_every_launch() -> None:
    backend = ConfirmingBackend()
    herd(backend, 5)
    assert backend.prepared == {} and len(backend.written) == 5


def test_a_check_that_fails_transiently_is_retried_as_a_whole_submit() -> None:
    """As when `submit`'s own check failed: the retry's write finds the launch, which is then already_existed."""
    backend = ConfirmingBackend()
    failures = iter([TransientBackendError("read timed out")])
    backend.fail["check"] = lambda name: next(failures, None)
    cluster = herd(backend, 1, retries={"attempts": 3, "backoff": "1s"})
    assert outcomes(cluster) == {(Outcome.ALREADY_EXISTED, 2)}
    assert backend.submitted == ["j00-20261125t060100z"]


def test_a_refused_write_is_the_first_attempt_and_nothing_is_checked() -> None:
    backend = ConfirmingBackend()
    backend.fail["register"] = PermanentBackendError("invalid job")
    cluster = herd(backend, 1)
    record = cluster.store.history("j00", limit=1)[0]
    assert (record.outcome, record.attempt) == (Outcome.FAILED, 1) and "invalid job" in (record.reason or "")
    assert backend.calls == []


def test_no_check_starts_while_a_write_of_the_herd_is_still_in_flight() -> None:
    """A worker whose share of the writes is done waits for the others' writes before checking: a check sent while
    a write is in flight holds that write up at the agent (the herd's last registration is what counts)."""
    backend = ConfirmingBackend()

    def slow_first(name: str) -> None:
        if name.startswith("j00-"):
            time.sleep(0.3)  # the other workers drain the queue meanwhile

    backend.fail["register"] = slow_first
    herd(backend, 20)
    kinds = [call.split()[0] for call in backend.calls]
    assert kinds == ["write"] * 20 + ["check"] * 20


def test_the_next_slice_s_writes_go_out_before_the_previous_slice_s_checks() -> None:
    """A herd larger than its first slice (`FIRST_SLICE`) is begun in slices; the second slice's writes are not
    held up behind the first's checks (issue 18: 20-40 ms of a 1,000-job Nomad herd)."""
    backend = ConfirmingBackend()

    def slow(name: str) -> None:
        time.sleep(0.002)  # the first slice's writes outlast the second slice's sync point one

    backend.fail["register"] = slow
    jobs = FIRST_SLICE + 50
    herd(backend, jobs)
    kinds = [call.split()[0] for call in backend.calls]
    assert kinds == ["write"] * jobs + ["check"] * jobs


def test_a_write_that_loses_leadership_stops_the_herd_and_no_worker_waits_for_writes_never_made() -> None:
    """The lost leadership propagates, no worker waits for the writes no longer made, and nothing is checked."""
    backend = ConfirmingBackend()

    def lost_at_j05(name: str) -> LeadershipLost | None:
        return LeadershipLost("deposed") if name.startswith("j05-") else None

    backend.fail["register"] = lost_at_j05
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            herd(backend, 40)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(20)
    assert not thread.is_alive() and len(outcome) == 1 and isinstance(outcome[0], LeadershipLost)
    assert not any(call.startswith("check") for call in backend.calls)

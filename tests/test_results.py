"""Following launches to their results on a fake clock: what ends becomes the record's result, written once, after
the tick's launches, by whichever leader leads when it ends; and the follower's lookups stay within their budget."""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from cronframework.engine.follower import BackendFollower, FollowConfig
from cronframework.engine.results import JOB_GONE, NOT_FOUND, classify
from cronframework.errors import LeadershipLost, StateStoreUnavailable, TransientBackendError
from cronframework.launch import BackendStatus, LaunchState
from cronframework.naming import LaunchIdentity
from cronframework.records import LaunchRecord, ResultBatch, TaskResult
from cronframework.testing import FakeBackend, FakeClock
from tests.leader_harness import T0, Cluster, job

FIRST = "beat-20261125t060100z"


def launched(cluster: Cluster, *specs: Any, seconds: float = 60) -> Any:
    """A leader that has launched the jobs' first instant (06:01 for an every-minute job)."""
    cluster.apply(*(specs or (job("beat"),)))
    session, leadership = cluster.leader()
    session.promote()
    cluster.run_for(session, seconds)
    return session, leadership


def ends(cluster: Cluster, name: str, state: LaunchState, code: int | None = None, reason: str | None = None) -> None:
    """The backend reports `name` ended now, having started 2 s after its instant."""
    now = cluster.clock.now()
    started = now - timedelta(seconds=7)
    cluster.backend.launches[name] = BackendStatus(state, code, reason, started, now)


def test_a_failed_task_is_recorded_with_exit_code_reason_and_duration() -> None:
    cluster = Cluster()
    session, _ = launched(cluster)
    assert [r.name for r in cluster.store.following_launches()] == [FIRST]
    ends(cluster, FIRST, LaunchState.FAILED, 127, "command not found: backup")
    cluster.run_for(session, 2)
    record = cluster.store.get_launch(FIRST)
    assert record is not None and record.result is TaskResult.FAILED
    assert (record.exit_code, record.result_reason, record.duration) == (127, "command not found: backup", 7.0)
    assert record.ended_at is not None and record.started_at == record.ended_at - timedelta(seconds=7)
    assert cluster.store.following_launches() == []
    summary = cluster.store.read_job_results()["beat"]
    assert (summary.last_result, summary.failures, summary.last_success) == (TaskResult.FAILED, 1, None)
    assert summary.last_failure == record.ended_at


def test_a_success_resets_the_failures_in_a_row_and_moves_last_success() -> None:
    cluster = Cluster()
    session, _ = launched(cluster)
    ends(cluster, FIRST, LaunchState.FAILED, 1)
    cluster.run_for(session, 60)  # launches 06:02 too
    ends(cluster, "beat-20261125t060200z", LaunchState.SUCCEEDED, 0)
    cluster.run_for(session, 2)
    summary = cluster.store.read_job_results()["beat"]
    assert summary.failures == 0 and summary.last_result is TaskResult.SUCCEEDED
    assert summary.last_success is not None and summary.last_failure is not None
    assert [(r.launch, r.result) for r in summary.recent] == [
        ("beat-20261125t060200z", TaskResult.SUCCEEDED),
        (FIRST, TaskResult.FAILED),
    ]


def test_a_launch_the_backend_no_longer_knows_is_lost() -> None:
    cluster = Cluster()
    session, _ = launched(cluster)
    del cluster.backend.launches[FIRST]
    cluster.run_for(session, 2)
    record = cluster.store.get_launch(FIRST)
    assert record is not None and (record.result, record.result_reason) == (TaskResult.LOST, NOT_FOUND)


def test_a_launch_stopped_past_its_timeout_timed_out() -> None:
    cluster = Cluster()
    slow = job("slow", "0 * * * *", task={"command": ["/bin/sleep", "9999"], "timeout": "90s"})
    cluster.clock.set(T0 + timedelta(minutes=59))
    launched(cluster, slow, seconds=60 + 120)
    record = cluster.store.get_launch("slow-20261125t070000z")
    assert cluster.backend.stopped == ["slow-20261125t070000z"]
    assert record is not None and record.result is TaskResult.TIMED_OUT and record.result_reason == "stopped"


def test_a_new_leader_follows_on_and_the_result_is_written_once() -> None:
    cluster = Cluster()
    first, old = launched(cluster)
    old.active = False  # deposed: its session expired
    second, _ = cluster.leader()
    second.promote()
    ends(cluster, FIRST, LaunchState.SUCCEEDED, 0)
    cluster.clock.advance(2)
    with pytest.raises(LeadershipLost):
        first.tick()  # the old leader's follower saw it end too: its write is fenced off
    cluster.run_for(second, 3)
    record = cluster.store.get_launch(FIRST)
    assert record is not None and record.result is TaskResult.SUCCEEDED and record.epoch == 1
    summary = cluster.store.read_job_results()["beat"]
    assert [r.launch for r in summary.recent].count(FIRST) == 1


def test_results_are_written_after_the_launches_of_their_tick() -> None:
    cluster = Cluster()
    session, _ = launched(cluster)
    calls: list[str] = []
    for name in ("begin", "finish", "record_results"):
        inner = getattr(cluster.store, name)
        setattr(cluster.store, name, _spy(calls, name, inner))
    ends(cluster, FIRST, LaunchState.SUCCEEDED, 0)
    cluster.clock.advance(60)  # 06:02 is due, and the 06:01 result is in
    session.tick()
    assert calls == ["begin", "finish", "record_results"]


@pytest.mark.parametrize("applied", [False, True], ids=["not-applied", "applied-answer-lost"])
def test_a_store_that_fails_keeps_the_results_for_the_next_tick(applied: bool) -> None:
    """Written again next tick; a write that applied though its answer was lost is not counted twice (the leader
    reads each job's summary back before adding to it)."""
    cluster = Cluster()
    session, _ = launched(cluster)
    ends(cluster, FIRST, LaunchState.FAILED, 1)
    real = cluster.store.record_results
    cluster.store.record_results = _fails_once(real, applied=applied)  # type: ignore[method-assign]
    cluster.run_for(session, 2)
    cluster.run_for(session, 1)
    record = cluster.store.get_launch(FIRST)
    assert record is not None and record.result is TaskResult.FAILED
    summary = cluster.store.read_job_results()["beat"]
    assert summary.failures == 1
    assert [r.launch for r in summary.recent] == [FIRST]


def test_summaries_the_store_cannot_read_leave_the_results_for_the_next_tick() -> None:
    cluster = Cluster()
    session, _ = launched(cluster)
    ends(cluster, FIRST, LaunchState.SUCCEEDED, 0)
    real = cluster.store.read_job_results
    failed: list[bool] = []

    def read_once_failing(jobs: Collection[str] | None = None) -> Any:
        if not failed:
            failed.append(True)
            raise StateStoreUnavailable("ZooKeeper unavailable during reading job results")
        return real(jobs)

    cluster.store.read_job_results = read_once_failing  # type: ignore[method-assign]
    cluster.run_for(session, 1)
    unwritten = cluster.store.get_launch(FIRST)
    assert failed and unwritten is not None and unwritten.result is None
    cluster.run_for(session, 1)
    record = cluster.store.get_launch(FIRST)
    assert record is not None and record.result is TaskResult.SUCCEEDED
    assert cluster.store.read_job_results()["beat"].last_result is TaskResult.SUCCEEDED


def test_a_launch_whose_job_was_deleted_is_concluded_lost() -> None:
    cluster = Cluster()
    launched(cluster)
    cluster.store.write_specs([])
    cluster.store.specs.clear()
    second, _ = cluster.leader()
    second.promote()
    record = cluster.store.get_launch(FIRST)
    assert record is not None and (record.result, record.result_reason) == (TaskResult.LOST, JOB_GONE)


def test_each_result_is_one_log_event_with_stable_keys(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="cronframework.results")
    cluster = Cluster()
    session, _ = launched(cluster)
    ends(cluster, FIRST, LaunchState.FAILED, 2, "exit code 2")
    cluster.run_for(session, 2)
    [event] = [r for r in caplog.records if r.getMessage() == "task result recorded"]
    fields = {k: event.__dict__[k] for k in ("job", "launch", "result", "exit_code", "result_reason", "duration")}
    assert fields == {
        "job": "beat",
        "launch": FIRST,
        "result": "failed",
        "exit_code": 2,
        "result_reason": "exit code 2",
        "duration": 7.0,
    }


@pytest.mark.parametrize(
    ("status", "stopped", "expected"),
    [
        (BackendStatus(LaunchState.SUCCEEDED, 0), False, TaskResult.SUCCEEDED),
        (BackendStatus(LaunchState.FAILED, 3), False, TaskResult.FAILED),
        (BackendStatus(LaunchState.FAILED, 137, timed_out=True), False, TaskResult.TIMED_OUT),
        (BackendStatus(LaunchState.FAILED, None, "stopped"), True, TaskResult.TIMED_OUT),
        (BackendStatus(LaunchState.LOST, reason="node down"), False, TaskResult.LOST),
        (None, False, TaskResult.LOST),
    ],
)
def test_classify(status: BackendStatus | None, stopped: bool, expected: TaskResult) -> None:
    assert classify(status, stopped_for_timeout=stopped, now=T0).result is expected


# -- the follower on its own -------------------------------------------------------------------------------------
@dataclass
class CountingBackend(FakeBackend):
    lookups: list[str] = field(default_factory=list)

    def lookup(self, name: str) -> BackendStatus | None:
        self.lookups.append(name)
        return super().lookup(name)


@dataclass
class WatchingBackend(CountingBackend):
    watches = True  # type: ignore[assignment]
    hints: set[str] = field(default_factory=set)

    def ended(self, names: Collection[str], timeout: float) -> set[str]:
        return self.hints & set(names)


def records(count: int) -> list[LaunchRecord]:
    return [LaunchRecord.begin(LaunchIdentity(f"job-{n}", T0), leader="r1", epoch=1, now=T0) for n in range(count)]


def test_the_sweep_looks_up_at_most_its_budget_a_pass() -> None:
    clock, backend = FakeClock(T0), CountingBackend()
    config = FollowConfig(lookups_per_second=3, first_lookup=0.0, poll_every=10.0)
    follower = BackendFollower("fake", backend, clock, config)
    follower.add(records(10))
    for record in records(10):
        backend.launches[record.name] = BackendStatus(LaunchState.RUNNING)
    follower.step(0.0)
    assert len(backend.lookups) == 3
    for _ in range(3):
        follower.step(0.0)
    assert len(backend.lookups) == 10 and len(set(backend.lookups)) == 10  # each once, then not again before 10 s


def test_a_watching_backend_is_asked_which_ended_and_swept_only_slowly() -> None:
    clock, backend = FakeClock(T0), WatchingBackend()
    follower = BackendFollower("fake", backend, clock, FollowConfig(first_lookup=1.0, sweep_every=5.0))
    follower.add(records(3))
    names = [r.name for r in records(3)]
    for name in names:
        backend.launches[name] = BackendStatus(LaunchState.RUNNING)
    backend.launches[names[1]] = BackendStatus(LaunchState.SUCCEEDED, 0)
    backend.hints = {names[1]}
    follower.step(0.0)
    assert backend.lookups == [names[1]]  # the hint, at once; nobody else before their first lookup is due
    assert [e.record.name for e in follower.take()] == [names[1]]
    clock.advance(1)
    follower.step(0.0)
    assert len(backend.lookups) == 1  # the watch covers them: no early lookup
    clock.advance(4)
    follower.step(0.0)
    assert sorted(backend.lookups[1:]) == sorted([names[0], names[2]])  # the fallback sweep
    late = LaunchRecord.begin(LaunchIdentity("late", T0), leader="r1", epoch=1, now=T0)
    follower.add([late], soon=True)  # found at takeover: it may have ended before anyone watched
    backend.launches[late.name] = BackendStatus(LaunchState.SUCCEEDED, 0)
    clock.advance(1)
    follower.step(0.0)
    assert backend.lookups[-1] == late.name


def test_what_a_pass_found_ended_is_reported_at_once_not_after_its_last_lookup() -> None:
    """A backend that answers slowly (an agent restoring thousands of allocations) can make one pass over hundreds
    of hinted launches outlast a leader's tenure; a result found early in it must not wait for the pass's end."""
    clock, backend = FakeClock(T0), WatchingBackend()
    follower = BackendFollower("fake", backend, clock, FollowConfig(first_lookup=1.0))
    names = [r.name for r in records(3)]
    follower.add(records(3))
    for name in names:
        backend.launches[name] = BackendStatus(LaunchState.SUCCEEDED, 0)
    backend.hints = set(names)
    seen_during_pass: list[str] = []
    inner = backend.lookup

    def lookup(name: str) -> BackendStatus | None:
        if len(backend.lookups) == 2:  # the leader's tick, between the pass's second and third lookup
            seen_during_pass.extend(e.record.name for e in follower.take())
        return inner(name)

    backend.lookup = lookup  # type: ignore[method-assign]
    follower.step(0.0)
    after = [e.record.name for e in follower.take()]
    assert len(seen_during_pass) == 2 and len(after) == 1
    assert sorted(seen_during_pass + after) == sorted(names)


def test_a_lookup_that_fails_is_asked_again_later_and_reports_nothing() -> None:
    clock, backend = FakeClock(T0), CountingBackend()
    follower = BackendFollower("fake", backend, clock, FollowConfig(first_lookup=0.0, poll_every=2.0))
    [record] = records(1)
    follower.add([record])
    backend.fail["lookup"] = TransientBackendError("daemon restarting")
    follower.step(0.0)
    assert follower.take() == []
    del backend.fail["lookup"]
    backend.launches[record.name] = BackendStatus(LaunchState.SUCCEEDED, 0)
    clock.advance(2)
    follower.step(0.0)
    assert [e.status for e in follower.take()] == [BackendStatus(LaunchState.SUCCEEDED, 0)]


def _spy(calls: list[str], name: str, inner: Any) -> Any:
    def call(*args: Any, **kwargs: Any) -> Any:
        calls.append(name)
        return inner(*args, **kwargs)

    return call


def _fails_once(inner: Any, *, applied: bool = False) -> Any:
    """Fails the first batch: before writing it, or (`applied`) after, as if ZooKeeper's answer was lost."""
    failed: list[bool] = []

    def call(fence: Any, batch: ResultBatch) -> None:
        if applied or failed:
            inner(fence, batch)
        if not failed:
            failed.append(True)
            raise StateStoreUnavailable("ZooKeeper unavailable during recording task results")

    return call


def test_a_burst_of_results_is_written_in_slices_only_while_an_instant_is_near() -> None:
    cluster = Cluster()
    cluster.apply(*(job(f"j{i}") for i in range(5)))
    session, _ = cluster.leader(follow=FollowConfig(first_lookup=0.0, max_results_per_tick=2))
    session.promote()
    cluster.run_for(session, 60)  # 06:01: five launches
    for i in range(5):
        ends(cluster, f"j{i}-20261125t060100z", LaunchState.SUCCEEDED, 0)
    cluster.clock.set(T0 + timedelta(minutes=1, seconds=58))  # 06:02 is near
    assert len(session.tick()) == 0 and len(cluster.store.following_launches()) == 3
    cluster.clock.set(T0 + timedelta(minutes=2, seconds=20))  # 06:02 launched, 06:03 far
    session.tick()
    assert [r.name for r in cluster.store.following_launches()] == [f"j{i}-20261125t060200z" for i in range(5)]


def test_a_burst_of_results_stays_in_slices_while_the_next_herd_is_staged() -> None:
    """A results write of tens of thousands (each summary read back, then written) takes the loop for seconds;
    inside the stage's lead it would hold up the building of the next herd's launches."""
    cluster = Cluster()
    cluster.apply(*(job(f"j{i}") for i in range(5)))
    session, _ = cluster.leader(follow=FollowConfig(first_lookup=0.0, max_results_per_tick=2), stage_ahead=10.0)
    session.promote()
    cluster.run_for(session, 60)  # 06:01: five launches
    for i in range(5):
        ends(cluster, f"j{i}-20261125t060100z", LaunchState.SUCCEEDED, 0)
    cluster.clock.set(T0 + timedelta(minutes=1, seconds=52))  # 06:02 is 8 s away: its stage is being built
    session.tick()
    assert len(cluster.store.following_launches()) == 3
    cluster.clock.set(T0 + timedelta(minutes=1, seconds=53))
    session.tick()
    assert len(cluster.store.following_launches()) == 1

"""Staging on a fake clock: an instant's launches are built while the leader sleeps towards it, nothing is written
or submitted before it, and whatever changes in between (a pause, a spec, a late wake-up) is decided as if no
stage had been built. Each case is run twice, staged and with `stage_ahead=0`, and must end the same."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cronframework.engine.leader import LeaderSession
from cronframework.errors import StateStoreUnavailable
from cronframework.launch import BackendStatus, LaunchState
from cronframework.records import Outcome
from tests.leader_harness import T0, Cluster, job

DUE = T0 + timedelta(minutes=1)  # the first instant of an every-minute job placed at T0


def staged_cluster(*specs: object, stage_ahead: float = 1.0, **config: object) -> tuple[Cluster, LeaderSession]:
    cluster = Cluster()
    cluster.apply(*specs)  # type: ignore[arg-type]
    session, _ = cluster.leader(stage_ahead=stage_ahead, **config)
    session.promote()
    cluster.clock.set(DUE - timedelta(seconds=0.5))
    return cluster, session


def sleep_then_tick(session: LeaderSession) -> list[object]:
    """One turn of the leader's loop from half a second before the instant: sleep (which stages), then tick."""
    session._sleep()
    return list(session.tick())


def test_a_staged_instant_writes_and_submits_nothing_before_it_and_launches_at_it() -> None:
    cluster, session = staged_cluster(*[job(f"j{i}") for i in range(5)])
    names = [f"j{i}-20261125t060100z" for i in range(5)]
    before = dict(cluster.store.records)
    session._stage = session._prepare_stage(cluster.clock.now())
    assert session._stage is not None and len(session._stage.due) == 5
    assert sum(len(s.items) for s in session._stage.slices) == 5  # built
    assert cluster.store.records == before and cluster.backend.submitted == []  # nothing written, nothing asked
    session._sleep()  # sleeps until the instant, not a poll interval
    assert cluster.clock.now() == DUE
    records = session.tick()
    assert sorted(r.name for r in records) == names == sorted(cluster.backend.submitted)
    stored = [cluster.store.get_launch(n) for n in names]
    assert all(r is not None and r.outcome is Outcome.SUBMITTED and r.begun_at == DUE for r in stored)
    cluster.run_for(session, 60)  # and the next minute is launched as usual
    assert len(cluster.backend.submitted) == 10


@pytest.mark.parametrize("stage_ahead", [1.0, 0.0], ids=["staged", "unstaged"])
def test_a_pause_after_staging_is_honoured_at_the_instant(stage_ahead: float) -> None:
    cluster, session = staged_cluster(job("keep"), job("hold"), stage_ahead=stage_ahead)
    session._stage = session._prepare_stage(cluster.clock.now())
    cluster.store.set_paused("hold", True)
    sleep_then_tick(session)
    assert cluster.backend.submitted == ["keep-20261125t060100z"]
    assert cluster.outcomes("hold") == [("hold-20261125t060100z", Outcome.SKIPPED, "paused")]


@pytest.mark.parametrize("stage_ahead", [1.0, 0.0], ids=["staged", "unstaged"])
def test_a_spec_change_before_the_instant_launches_the_new_spec(stage_ahead: float) -> None:
    cluster, session = staged_cluster(job("edit"), stage_ahead=stage_ahead)
    commands: dict[str, list[str]] = {}
    cluster.backend.on_submit = lambda name, launch: commands.__setitem__(name, list(launch.spec.task.command))
    session._stage = session._prepare_stage(cluster.clock.now())
    cluster.apply(job("edit", task={"command": ["/bin/echo", "new"]}))  # the spec watch wakes the leader
    assert session._specs.changed.is_set()
    while cluster.clock.now() < DUE:
        sleep_then_tick(session)
    assert cluster.backend.submitted == ["edit-20261125t060100z"]
    assert commands == {"edit-20261125t060100z": ["/bin/echo", "new"]}


@pytest.mark.parametrize("stage_ahead", [1.0, 0.0], ids=["staged", "unstaged"])
def test_an_instant_fired_past_the_tolerance_is_decided_on_the_real_time(stage_ahead: float) -> None:
    cluster, session = staged_cluster(job("late"), stage_ahead=stage_ahead)
    session._stage = session._prepare_stage(cluster.clock.now())
    cluster.clock.set(DUE + timedelta(seconds=45))  # a stalled leader: 45 s late, tolerance 30 s
    session.tick()
    assert cluster.backend.submitted == []
    [(name, outcome, reason)] = cluster.outcomes("late")
    assert name == "late-20261125t060100z" and outcome is Outcome.SKIPPED and reason is not None
    assert reason.startswith("missed")


def test_a_tick_before_the_instant_keeps_the_stage_and_it_launches_at_the_instant() -> None:
    cluster, session = staged_cluster(job("early"))
    session._stage = session._prepare_stage(cluster.clock.now())
    staged = session._stage
    assert session._dispatcher.next_due() is None or session._dispatcher.next_due() > DUE  # off the heap
    assert session.tick() == []  # a poll or a stop woke the loop 0.5 s early
    assert session._stage is staged and cluster.backend.submitted == []
    sleep_then_tick(session)
    assert cluster.backend.submitted == ["early-20261125t060100z"]


@pytest.mark.parametrize("concurrency", ["allow", "forbid"])
def test_a_trigger_read_before_the_instant_puts_the_stage_back_and_loses_no_launch(concurrency: str) -> None:
    cluster, session = staged_cluster(job("early", concurrency=concurrency), job("other"))
    session._stage = session._prepare_stage(cluster.clock.now())
    manual = request_trigger(cluster, "early")
    assert [r.name for r in session.tick()] == [manual]  # the trigger's tick, 0.5 s early
    assert session._stage is None and session._dispatcher.next_due() == DUE  # back on the heap
    sleep_then_tick(session)
    running = {"allow": ["early-20261125t060100z", manual], "forbid": [manual]}[concurrency]
    assert sorted(cluster.running()) == sorted([*running, "other-20261125t060100z"])


def test_forbid_jobs_with_a_previous_launch_are_decided_at_their_instant_not_staged() -> None:
    cluster, session = staged_cluster(job("free"), job("guarded", concurrency="forbid"))
    cluster.run_for(session, 60)  # both launched once at 06:01; 06:02 is next
    cluster.clock.set(DUE + timedelta(seconds=59.5))
    session._stage = session._prepare_stage(cluster.clock.now())
    assert session._stage is not None and [e.spec.name for e in session._stage.due] == ["free"]
    finished = BackendStatus(LaunchState.SUCCEEDED, exit_code=0)
    cluster.backend.launches["guarded-20261125t060100z"] = finished  # finished in the last half second
    sleep_then_tick(session)
    assert {"free-20261125t060200z", "guarded-20261125t060200z"} <= set(cluster.backend.submitted)


def request_trigger(cluster: Cluster, job_name: str) -> str:
    """A trigger sent now; the name its manual launch gets."""
    cluster.store.request_trigger(job_name, force=False, now=cluster.clock.now())
    return f"{job_name}-{cluster.clock.now():%Y%m%dt%H%M%Sz}-m"


def assert_refused_in_the_same_tick(cluster: Cluster, manual: str, started: str) -> None:
    record = cluster.store.get_launch(manual)
    assert record is not None and record.outcome is Outcome.SKIPPED
    assert started in (record.reason or "") and "same tick" in (record.reason or "")


@pytest.mark.parametrize("stage_ahead", [1.0, 0.0], ids=["staged", "unstaged"])
@pytest.mark.parametrize("concurrency", ["forbid", "replace"])
def test_a_trigger_in_the_last_second_before_a_guarded_instant_starts_one_run(
    stage_ahead: float, concurrency: str
) -> None:
    cluster, session = staged_cluster(job("guarded", concurrency=concurrency), stage_ahead=stage_ahead)
    session._stage = session._prepare_stage(cluster.clock.now())
    assert (session._stage is not None) is (stage_ahead > 0)  # no previous launch to ask about: staged
    manual = request_trigger(cluster, "guarded")
    sleep_then_tick(session)
    assert cluster.running() == ["guarded-20261125t060100z"]
    assert_refused_in_the_same_tick(cluster, manual, "guarded-20261125t060100z")


@pytest.mark.parametrize("stage_ahead", [1.0, 0.0], ids=["staged", "unstaged"])
@pytest.mark.parametrize("pause", [True, False], ids=["paused", "resumed"])
def test_a_pause_or_resume_and_a_trigger_in_the_last_second_start_one_run(stage_ahead: float, pause: bool) -> None:
    cluster, session = staged_cluster(job("guarded", concurrency="forbid"), stage_ahead=stage_ahead)
    cluster.store.set_paused("guarded", not pause)
    session._stage = session._prepare_stage(cluster.clock.now())
    cluster.store.set_paused("guarded", pause)
    manual = request_trigger(cluster, "guarded")
    sleep_then_tick(session)
    assert cluster.running() == [manual if pause else "guarded-20261125t060100z"]


@pytest.mark.parametrize("stage_ahead", [1.0, 0.0], ids=["staged", "unstaged"])
@pytest.mark.parametrize("previous", ["running", "ended"])
@pytest.mark.parametrize("seen", ["early", "at-the-instant"])
def test_a_change_to_forbid_and_a_trigger_in_the_last_second_start_no_second_run(
    stage_ahead: float, previous: str, seen: str
) -> None:
    """`early`: the spec change wakes the leader half a second before the instant, and that tick reads the
    trigger too; `at-the-instant`: both land as the instant's tick begins."""
    cluster, session = staged_cluster(job("guarded"), stage_ahead=stage_ahead)  # `allow`: staged whatever runs
    sleep_then_tick(session)  # 06:01 launched
    if previous == "ended":
        cluster.backend.finish_all()
    second = DUE + timedelta(minutes=1)
    cluster.clock.set(second - timedelta(seconds=0.5))
    session._stage = session._prepare_stage(cluster.clock.now())
    assert (session._stage is not None) is (stage_ahead > 0)
    manual = request_trigger(cluster, "guarded")
    if seen == "at-the-instant":
        cluster.clock.set(second)
        cluster.apply(job("guarded", concurrency="forbid"))
        session.tick()
    else:
        cluster.apply(job("guarded", concurrency="forbid"))  # the spec watch wakes the leader
        while cluster.clock.now() < second:
            sleep_then_tick(session)
    instant = "guarded-20261125t060200z"
    expected = {"running": "guarded-20261125t060100z", "ended": instant if seen != "early" else manual}[previous]
    assert cluster.running() == [expected]
    for name in {instant, manual} - {expected}:
        record = cluster.store.get_launch(name)
        assert record is not None and record.outcome is Outcome.SKIPPED and expected in (record.reason or "")


def test_a_staged_herd_runs_through_the_pipeline_and_each_launch_once() -> None:
    cluster, session = staged_cluster(*[job(f"herd-{i:03d}") for i in range(350)], herd_slice=100)
    session._stage = session._prepare_stage(cluster.clock.now())
    assert session._stage is not None and [len(s.items) for s in session._stage.slices] == [100, 100, 100, 50]
    records = sleep_then_tick(session)
    assert len(records) == 350 == len(set(cluster.backend.submitted))
    assert cluster.store.open_launches() == []


def test_staging_is_off_with_stage_ahead_zero_and_beyond_the_lead() -> None:
    cluster, session = staged_cluster(job("off"), stage_ahead=0.0)
    assert session._prepare_stage(cluster.clock.now()) is None
    cluster, session = staged_cluster(job("far"), stage_ahead=0.25)  # the instant is 0.5 s away
    assert session._prepare_stage(cluster.clock.now()) is None


def test_a_spec_change_seen_only_at_the_instant_still_wins_over_the_stage() -> None:
    cluster, session = staged_cluster(job("edit"))
    commands: dict[str, list[str]] = {}
    cluster.backend.on_submit = lambda name, launch: commands.__setitem__(name, list(launch.spec.task.command))
    session._stage = session._prepare_stage(cluster.clock.now())
    cluster.clock.set(DUE)
    cluster.apply(job("edit", task={"command": ["/bin/echo", "new"]}))  # lands as the instant's tick begins
    session.tick()
    assert cluster.backend.submitted == ["edit-20261125t060100z"]
    assert commands == {"edit-20261125t060100z": ["/bin/echo", "new"]}


def test_the_loop_wakes_stage_ahead_before_the_instant_so_the_stage_gets_all_of_it() -> None:
    cluster, session = staged_cluster(job("aligned"))
    cluster.clock.set(DUE - timedelta(seconds=4.25))
    session._sleep()  # a poll interval (1 s) at most
    session._sleep()
    session._sleep()
    session._sleep()  # ... then only until exactly a second before the instant
    assert cluster.clock.now() == DUE - timedelta(seconds=1) and session._stage is None
    session._sleep()  # stages with the whole second ahead, then sleeps to the instant
    assert cluster.clock.sleeps[-5:] == [1.0, 1.0, 1.0, 0.25, 1.0]
    assert session._stage is not None and cluster.clock.now() == DUE


def test_staging_builds_only_the_slices_it_has_time_for_and_the_rest_at_the_instant() -> None:
    cluster, session = staged_cluster(*[job(f"herd-{i:03d}") for i in range(350)], herd_slice=100)
    cluster.clock.set(DUE - timedelta(seconds=1))
    real_prepare = cluster.store.prepare_begin

    def slow_prepare(fence: object, items: list[object]) -> object:
        cluster.clock.advance(0.3)  # each slice costs 0.3 s to build
        return real_prepare(fence, items)  # type: ignore[arg-type]

    cluster.store.prepare_begin = slow_prepare  # type: ignore[method-assign]
    session._stage = session._prepare_stage(cluster.clock.now())
    # 0.95 s to spend: a fourth 0.3 s slice would end past it, so it is left for the instant
    assert session._stage is not None and [len(s.items) for s in session._stage.slices] == [100, 100, 100]
    assert cluster.clock.now() < DUE
    del cluster.store.prepare_begin
    session._sleep()
    records = session.tick()
    assert len(records) == 350 == len(set(cluster.backend.submitted))


def test_a_store_error_while_staging_drops_what_was_built_and_loses_no_launch() -> None:
    cluster, session = staged_cluster(*[job(f"herd-{i:03d}") for i in range(350)], herd_slice=100)
    real_prepare, discarded = cluster.store.prepare_begin, []

    class Spied:
        def __init__(self, inner: object) -> None:
            self.inner = inner

        def send(self) -> object:
            return self.inner.send()  # type: ignore[attr-defined]

        def discard(self) -> None:
            discarded.append(self)

    calls: list[int] = []

    def second_fails(fence: object, items: list[object]) -> object:
        calls.append(len(items))
        if len(calls) == 2:
            raise StateStoreUnavailable("connection loss")
        return Spied(real_prepare(fence, items))  # type: ignore[arg-type]

    cluster.store.prepare_begin = second_fails  # type: ignore[method-assign]
    assert session._prepare_stage(cluster.clock.now()) is None
    assert calls == [100, 100] and len(discarded) == 1  # the first slice, built before the error
    assert session._dispatcher.next_due() == DUE  # every job back on the heap
    del cluster.store.prepare_begin
    sleep_then_tick(session)
    assert len(cluster.backend.submitted) == 350 == len(set(cluster.backend.submitted))


def test_a_stage_too_large_for_one_poll_interval_is_built_over_several_with_ticks_between() -> None:
    cluster, session = staged_cluster(*[job(f"herd-{i:03d}") for i in range(1000)], herd_slice=100, stage_ahead=5.0)
    cluster.clock.set(DUE - timedelta(seconds=5))
    real_prepare, built_at = cluster.store.prepare_begin, []

    def slow_prepare(fence: object, items: list[object]) -> object:
        cluster.clock.advance(0.3)  # each slice costs 0.3 s to build: 3 s in all
        built_at.append(cluster.clock.now())
        return real_prepare(fence, items)  # type: ignore[arg-type]

    cluster.store.prepare_begin = slow_prepare  # type: ignore[method-assign]
    ticks = 0
    while cluster.clock.now() < DUE:
        session._sleep()
        if cluster.clock.now() < DUE:
            assert session.tick() == [] and session._stage is not None
            ticks += 1
    assert ticks >= 3 and len(built_at) == 10 and max(built_at) < DUE  # a poll interval of building at a time
    assert cluster.backend.submitted == []
    del cluster.store.prepare_begin
    records = session.tick()
    assert len(records) == 1000 == len(set(cluster.backend.submitted))
    assert all(r.begun_at == DUE for r in records)

"""The leader's loop on a fake clock: launches on time, both sync points, policies, and fail-closed paths."""

from __future__ import annotations

import gc
import logging
import threading
import time
from datetime import datetime, timedelta

import pytest

from cronframework.adapters import BackendSet
from cronframework.catalog.cache import SpecCache
from cronframework.engine.leader import LeaderConfig, LeaderSession
from cronframework.errors import (
    BackendTimeout,
    BackendUnreachable,
    LeadershipLost,
    PermanentBackendError,
    StateStoreUnavailable,
    TransientBackendError,
)
from cronframework.launch import BackendStatus, LaunchState
from cronframework.records import LaunchRecord, Outcome, RecordState, SpecChange, StoredSpec
from cronframework.store.sqlite import SoleLeader
from cronframework.testing import FakeBackend
from tests.leader_harness import T0, Cluster, job


def die_after_sync_point_one(cluster: Cluster) -> None:
    """A leader that records the 06:01 launch (sync point one) and dies before the backend hears of it."""
    first, _ = cluster.leader()
    first.promote()
    cluster.backend.fail["submit"] = LeadershipLost("crash hook: died after sync point one")
    with pytest.raises(LeadershipLost):
        cluster.run_for(first, 60)
    del cluster.backend.fail["submit"]


def die_before_sync_point_two(cluster: Cluster) -> None:
    """A leader that submits the 06:01 launch and dies before recording the outcome (sync point two)."""
    first, _ = cluster.leader()
    first.promote()
    cluster.clock.advance(60)
    cluster.store.finish = _crash  # type: ignore[method-assign]
    with pytest.raises(LeadershipLost):
        first.tick()
    del cluster.store.finish


def test_every_minute_job_launches_once_per_minute_with_exact_names() -> None:
    cluster = Cluster()
    cluster.apply(job("tick"))
    session, _ = cluster.leader()
    session.promote()
    cluster.run_for(session, 180)
    assert cluster.backend.submitted == [
        "tick-20261125t060100z",
        "tick-20261125t060200z",
        "tick-20261125t060300z",
    ]
    assert [o for _, o, _ in cluster.outcomes("tick")] == [Outcome.SUBMITTED] * 3
    assert cluster.store.open_launches() == []


def test_sync_point_one_is_written_before_the_backend_is_called() -> None:
    cluster = Cluster()
    cluster.apply(job("tick"))
    seen_at_submit: list[RecordState | None] = []

    def record_state(name: str, _launch: object) -> None:
        record = cluster.store.get_launch(name)
        seen_at_submit.append(record.state if record else None)

    cluster.backend.on_submit = record_state
    session, _ = cluster.leader()
    session.promote()
    cluster.run_for(session, 60)
    assert seen_at_submit == [RecordState.BEGUN]
    assert cluster.store.read_job_states()["tick"].next_scheduled == T0 + timedelta(minutes=2)


def test_a_herd_in_pipelined_slices_launches_each_job_once_each_after_its_own_record() -> None:
    cluster = Cluster()
    cluster.apply(*[job(f"herd-{i:03d}") for i in range(350)])
    not_begun: list[str] = []

    def check_record(name: str, _launch: object) -> None:
        record = cluster.store.get_launch(name)
        if record is None or record.state is not RecordState.BEGUN:
            not_begun.append(name)

    cluster.backend.on_submit = check_record
    session, _ = cluster.leader(herd_slice=100)  # four slices
    session.promote()
    records = cluster.run_for(session, 60)
    assert not_begun == []
    assert sorted(cluster.backend.submitted) == sorted(f"herd-{i:03d}-20261125t060100z" for i in range(350))
    assert len(records) == 350 and {r.outcome for r in records} == {Outcome.SUBMITTED}
    assert cluster.store.open_launches() == []


def test_a_herd_s_first_submits_wait_for_a_small_sync_point_one_not_a_whole_slice() -> None:
    """At 1,000 due, one slice's sync point one took ZooKeeper 0.07 s while the backend waited (issue 18). The
    first slice is small (`FIRST_SLICE`), and its launches are submitted while the rest is committed."""
    from cronframework.engine.launcher import FIRST_SLICE

    cluster = Cluster()
    cluster.apply(*[job(f"herd-{i:03d}") for i in range(350)])
    session, _ = cluster.leader(herd_slice=1000)
    real_begin, begun = cluster.store.begin, []

    def counted_begin(fence: object, items: list[object]) -> None:
        begun.append(len(items))
        real_begin(fence, items)  # type: ignore[arg-type]

    cluster.store.begin = counted_begin  # type: ignore[method-assign]
    session.promote()
    records = cluster.run_for(session, 60)
    herd = [n for n in begun if n > 1]
    assert herd[:2] == [FIRST_SLICE, 350 - FIRST_SLICE], begun
    assert len(records) == 350 and {r.outcome for r in records} == {Outcome.SUBMITTED}


def test_a_herd_goes_on_submitting_while_sync_point_two_waits_for_the_store() -> None:
    cluster = Cluster()
    cluster.apply(*[job(f"herd-{i:03d}") for i in range(350)])
    session, _ = cluster.leader(herd_slice=50)
    session._launcher._finish_every = 100  # sync point two every two slices
    session.promote()
    all_submitted = threading.Event()
    cluster.backend.on_submit = lambda _n, _l: all_submitted.set() if len(cluster.backend.submitted) >= 349 else None
    real_finish, waited = cluster.store.finish, []

    def slow_finish(fence: object, records: list[object], notices: object = ()) -> None:
        if not waited:  # the first sync point two is slow: the store answers once every launch is submitted
            waited.append(all_submitted.wait(5.0))
        real_finish(fence, records, notices)  # type: ignore[arg-type]

    cluster.store.finish = slow_finish  # type: ignore[method-assign]
    records = cluster.run_for(session, 60)
    assert waited == [True]  # the submits went on while it waited
    assert len(records) == 350 and {r.outcome for r in records} == {Outcome.SUBMITTED}
    assert cluster.store.open_launches() == []  # every sync point two confirmed before the tick returned


def test_a_herd_logs_its_launches_after_its_last_sync_point_two_and_catches_up_in_one_write(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cluster = Cluster()
    cluster.apply(*[job(f"herd-{i:03d}") for i in range(350)])
    session, _ = cluster.leader(herd_slice=50)
    session._launcher._finish_every = 100  # sync point two every two slices: four batches
    session.promote()
    caplog.set_level(logging.INFO, logger="cronframework.launcher")
    all_submitted = threading.Event()
    cluster.backend.on_submit = lambda _n, _l: all_submitted.set() if len(cluster.backend.submitted) >= 349 else None
    real_finish, lines_before_write = cluster.store.finish, []

    def finish(fence: object, records: list[object], notices: object = ()) -> None:
        lines_before_write.append(sum(r.getMessage() == "launch outcome recorded" for r in caplog.records))
        if len(lines_before_write) == 1:  # the first answers late: the next batches wait behind it
            all_submitted.wait(5.0)
        real_finish(fence, records, notices)  # type: ignore[arg-type]

    cluster.store.finish = finish  # type: ignore[method-assign]
    records = cluster.run_for(session, 60)
    assert set(lines_before_write) == {0}  # every write went first, every line after
    assert len(lines_before_write) <= 3  # the batches that waited behind the first were written as one
    assert sum(r.getMessage() == "launch outcome recorded" for r in caplog.records) == 350
    assert len(records) == 350 and cluster.store.open_launches() == []


def test_a_store_failure_mid_herd_launches_only_what_was_begun_and_loses_no_instant() -> None:
    cluster = Cluster()
    cluster.apply(*[job(f"herd-{i:03d}") for i in range(350)])
    session, _ = cluster.leader(herd_slice=100)
    session.promote()
    real_prepare, calls = cluster.store.prepare_begin, []

    def second_slice_fails(fence: object, items: list[object]) -> object:
        calls.append(len(items))
        if len(calls) == 2:
            raise StateStoreUnavailable("connection loss")
        return real_prepare(fence, items)  # type: ignore[arg-type]

    cluster.store.prepare_begin = second_slice_fails  # type: ignore[method-assign]
    with pytest.raises(StateStoreUnavailable):
        cluster.run_for(session, 60)
    first_slice = set(cluster.backend.submitted)
    assert len(first_slice) == 100  # begun, then submitted and finished; nothing else reached the backend
    assert all(r.state is RecordState.FINISHED for r in map(cluster.store.get_launch, first_slice) if r)
    assert cluster.store.open_launches() == []
    del cluster.store.prepare_begin
    cluster.run_for(session, 1)  # the next tick takes the other 250 up again; the first 100 are not relaunched
    assert len(cluster.backend.submitted) == 350 == len(set(cluster.backend.submitted))


def test_launch_carries_identity_env() -> None:
    cluster = Cluster()
    cluster.apply(job("tick"))
    envs = []
    cluster.backend.on_submit = lambda name, launch: envs.append(launch.env())  # type: ignore[attr-defined]
    session, leadership = cluster.leader()
    session.promote()
    cluster.run_for(session, 60)
    assert envs[0]["CRONFRAMEWORK_LAUNCH"] == "tick-20261125t060100z"
    assert envs[0]["CRONFRAMEWORK_SCHEDULED"] == "2026-11-25T06:01:00Z"
    assert envs[0]["CRONFRAMEWORK_LEADER_EPOCH"] == str(leadership.epoch)


def test_recovery_resubmits_an_open_launch_the_backend_never_saw() -> None:
    cluster = Cluster()
    cluster.apply(job("tick"))
    die_after_sync_point_one(cluster)
    [open_record] = cluster.store.open_launches()
    assert open_record.name == "tick-20261125t060100z"
    second, _ = cluster.leader()
    second.promote()
    assert cluster.backend.submitted == ["tick-20261125t060100z"]
    record = cluster.store.get_launch("tick-20261125t060100z")
    assert record is not None and record.outcome is Outcome.SUBMITTED and record.attempt == 2
    report = cluster.store.read_takeover()
    assert report is not None and report["open_launches"][0]["lookup"] == "not found"


def test_recovery_records_a_launch_the_backend_already_has() -> None:
    cluster = Cluster()
    cluster.apply(job("tick"))
    die_before_sync_point_two(cluster)
    second, _ = cluster.leader()
    second.promote()
    assert cluster.backend.submitted == ["tick-20261125t060100z"]  # exactly once
    record = cluster.store.get_launch("tick-20261125t060100z")
    assert record is not None and record.outcome is Outcome.ALREADY_EXISTED
    assert record.backend_state == "running"


def _crash(*_args: object) -> None:
    raise LeadershipLost("crash hook: died before sync point two")


@pytest.mark.parametrize(("policy", "submitted"), [("skip", []), ("relaunch", ["tick-20261125t060100z"])])
def test_a_launch_nobody_can_answer_for_past_its_window_follows_on_uncertain(policy: str, submitted: list[str]) -> None:
    cluster = Cluster()
    cluster.apply(job("tick", on_uncertain=policy, recovery_window="10m", catchup="none"))
    die_after_sync_point_one(cluster)
    cluster.backend.fail["lookup"] = TransientBackendError("backend down")
    second, _ = cluster.leader()
    second.promote()
    cluster.run_for(second, 9 * 60)  # inside the window: asked again every second, still open
    assert [r.name for r in cluster.store.open_launches()] == ["tick-20261125t060100z"]
    cluster.backend.fail["submit"] = None  # relaunch must reach the backend even with lookups still failing
    cluster.run_for(second, 2 * 60)  # past the window with no answer: the job's policy decides
    assert cluster.store.open_launches() == []
    assert [n for n in cluster.backend.submitted if n == "tick-20261125t060100z"] == submitted
    record = cluster.store.get_launch("tick-20261125t060100z")
    assert record is not None and record.state is RecordState.FINISHED
    if policy == "skip":
        assert record.outcome is Outcome.SKIPPED and "backend down" in (record.reason or "")


def test_a_backend_down_at_takeover_leaves_the_launch_open_until_it_answers() -> None:
    """A launch the dead leader created but never started (Docker: create, then the daemon went down): concluding
    it while nobody can look would record "skipped" next to a container; waiting for the answer starts it once."""
    cluster, name = _created_never_started()
    lookups: list[str] = []

    def down(asked: str) -> Exception:
        lookups.append(asked)
        return BackendUnreachable("connection refused")

    cluster.backend.fail["lookup"] = down
    second, _ = cluster.leader()
    second.promote()
    assert second.state.takeover is not None
    [line] = second.state.takeover["open_launches"]
    assert line["launch"] == name and line["decision"].startswith("left open")
    cluster.run_for(second, 5)
    assert [r.name for r in cluster.store.open_launches()] == [name]
    assert 5 <= len(lookups) <= 3 + 5  # three at promotion, then one a second: no retry storm
    del cluster.backend.fail["lookup"]
    cluster.run_for(second, 2)
    assert cluster.store.open_launches() == []
    assert name not in cluster.backend.submitted  # started, not submitted anew
    record = cluster.store.get_launch(name)
    assert record is not None and record.outcome is Outcome.ALREADY_EXISTED  # started by the idempotent resubmit
    assert "found: pending" in (record.reason or "")


def test_a_refused_retry_after_a_timed_out_attempt_is_still_ambiguous() -> None:
    """Attempt one timed out (it may have landed: Docker created the container, then the daemon stopped); the
    retries are refused. "Refused" proves only that the retries did not land, so the launch is looked up. Found
    created and never started (the 60-minute Docker run: eight launches recorded `already_existed` whose containers
    never ran, and no result ever came), it is left to recovery, which starts it once the backend answers."""
    cluster = Cluster()
    cluster.apply(job("tick", retries={"attempts": 3, "backoff": "1s"}))
    calls: list[str] = []
    started: list[str] = []

    def first_lands_then_refused(name: str) -> Exception | None:
        calls.append(name)
        if len(calls) == 1:
            cluster.backend.launches[name] = BackendStatus(LaunchState.PENDING)
            return TransientBackendError("read timed out")
        return BackendUnreachable("connection refused") if len(calls) <= 3 else None

    def start(name: str, launch: object) -> None:
        started.append(name)
        cluster.backend.launches[name] = BackendStatus(LaunchState.RUNNING)

    cluster.backend.fail["submit"] = first_lands_then_refused
    cluster.backend.on_submit = start
    session, _ = cluster.leader()
    session.promote()
    cluster.run_for(session, 70)  # 06:01 launched at the 60th second, its retries, then the ticks after them
    name = "tick-20261125t060100z"
    record = cluster.store.get_launch(name)
    assert calls.count(name) >= 4 and started.count(name) == 1, "the created container is started, once"
    assert record is not None and record.outcome is not Outcome.FAILED
    assert cluster.backend.launches[name].state is LaunchState.RUNNING


def test_open_launch_older_than_the_recovery_window_is_not_relaunched() -> None:
    cluster = Cluster()
    cluster.apply(job("tick", recovery_window="10m", catchup="none"))
    die_after_sync_point_one(cluster)
    cluster.clock.advance(3600)  # no leader for an hour
    second, _ = cluster.leader()
    second.promote()
    record = cluster.store.get_launch("tick-20261125t060100z")
    assert record is not None and record.outcome is Outcome.SKIPPED
    assert "past the recovery window" in (record.reason or "")
    assert "tick-20261125t060100z" not in cluster.backend.submitted


@pytest.mark.parametrize(
    ("catchup", "launched"),
    [
        ({"policy": "none"}, []),
        ({"policy": "latest"}, ["tick-20261125t061000z"]),
        (
            {"policy": "all", "max": 3},
            ["tick-20261125t060800z", "tick-20261125t060900z", "tick-20261125t061000z"],
        ),
    ],
)
def test_catchup_after_leaderless_gap(catchup: dict[str, object], launched: list[str]) -> None:
    cluster = Cluster()
    cluster.apply(job("tick", catchup=catchup))
    first, _ = cluster.leader()
    first.promote()
    cluster.clock.advance(10 * 60 + 45)  # leaderless from 06:00 to 06:10:45; the 06:10 instant is 45 s late
    second, _ = cluster.leader(tolerance=timedelta(seconds=30))
    second.promote()
    assert cluster.backend.submitted == launched
    history = cluster.outcomes("tick")
    assert len(history) == 10  # 06:01 ... 06:10: every instant accounted for
    skipped = [name for name, outcome, _ in history if outcome is Outcome.SKIPPED]
    assert sorted(skipped + launched) == [name for name, _, _ in history]


def test_gap_beyond_catchup_window_is_one_stale_record() -> None:
    cluster = Cluster()
    cluster.apply(job("tick", catchup={"policy": "all", "window": "5m", "max": 100}))
    first, _ = cluster.leader()
    first.promote()
    cluster.clock.advance(24 * 3600)
    second, _ = cluster.leader()
    second.promote()
    history = cluster.outcomes("tick")
    stale = [h for h in history if "older than the catch-up window" in (h[2] or "")]
    assert len(stale) == 1 and stale[0][0] == "tick-20261125t060100z"
    assert len(cluster.backend.submitted) == 5  # the instants inside the 5-minute window


def test_forbid_skips_while_previous_runs_and_replace_stops_it() -> None:
    cluster = Cluster()
    cluster.apply(job("forbid", concurrency="forbid"), job("replace", concurrency="replace"))
    session, _ = cluster.leader()
    session.promote()
    cluster.run_for(session, 120)  # the fake backend keeps every launch running
    assert cluster.backend.submitted == [
        "forbid-20261125t060100z",
        "replace-20261125t060100z",
        "replace-20261125t060200z",
    ]
    assert cluster.backend.stopped == ["replace-20261125t060100z"]
    [(_, _, _), (_name, outcome, reason)] = cluster.outcomes("forbid")
    assert outcome is Outcome.SKIPPED and "still running" in (reason or "")


def test_forbid_fails_closed_when_backend_cannot_answer() -> None:
    cluster = Cluster()
    cluster.apply(job("forbid", concurrency="forbid"))
    session, _ = cluster.leader()
    session.promote()
    cluster.run_for(session, 60)
    cluster.backend.fail["lookup"] = TransientBackendError("daemon down")
    cluster.run_for(session, 60)
    assert cluster.backend.submitted == ["forbid-20261125t060100z"]
    assert "cannot tell" in (cluster.outcomes("forbid")[-1][2] or "")


def test_transient_submit_errors_are_retried_and_permanent_ones_recorded() -> None:
    cluster = Cluster()
    cluster.apply(job("flaky"), job("broken"))
    calls = {"flaky": 0}

    def fault(name: str) -> Exception | None:
        if name.startswith("broken"):
            return PermanentBackendError("image not found: nope")
        calls["flaky"] += 1
        return TransientBackendError("busy") if calls["flaky"] < 3 else None

    cluster.backend.fail["submit"] = fault
    session, _ = cluster.leader()
    session.promote()
    cluster.run_for(session, 60)
    flaky = cluster.store.get_launch("flaky-20261125t060100z")
    broken = cluster.store.get_launch("broken-20261125t060100z")
    assert flaky is not None and flaky.outcome is Outcome.SUBMITTED and flaky.attempt == 3
    assert broken is not None and broken.outcome is Outcome.FAILED
    assert "image not found" in (broken.reason or "")


def _first_launch_against(failure: Exception, name: str, **fields: object) -> tuple[Cluster, LaunchRecord | None]:
    """A job whose every submit fails with `failure`, run past its first instant (06:01); that instant's record."""
    cluster = Cluster()
    cluster.apply(job(name, **fields))
    cluster.backend.fail["submit"] = failure
    session, _ = cluster.leader()
    session.promote()
    cluster.run_for(session, 60)
    return cluster, cluster.store.get_launch(f"{name}-20261125t060100z")


def test_retries_stop_at_the_next_scheduled_instant() -> None:
    retries = {"attempts": 100, "backoff": "20s", "max_backoff": "20s"}
    cluster, record = _first_launch_against(TransientBackendError("busy"), "slow", retries=retries)
    assert record is not None and record.outcome is Outcome.FAILED
    assert record.attempt < 10
    assert cluster.clock.now() <= T0 + timedelta(minutes=2, seconds=1)


def test_deposed_leader_makes_no_backend_call_and_no_write() -> None:
    cluster = Cluster()
    cluster.apply(job("tick"))
    session, leadership = cluster.leader()
    session.promote()
    leadership.active = False  # SUSPENDED or LOST
    with pytest.raises(LeadershipLost):
        cluster.run_for(session, 60)
    assert cluster.backend.submitted == []
    assert cluster.store.history("tick") == []


def test_paused_job_records_skips_and_resumes() -> None:
    cluster = Cluster()
    cluster.apply(job("tick"))
    session, _ = cluster.leader()
    session.promote()
    cluster.store.set_paused("tick", True)
    cluster.run_for(session, 120)
    cluster.store.set_paused("tick", False)
    cluster.run_for(session, 60)
    assert cluster.backend.submitted == ["tick-20261125t060300z"]
    assert [o for _, o, _ in cluster.outcomes("tick")] == [
        Outcome.SKIPPED,
        Outcome.SKIPPED,
        Outcome.SUBMITTED,
    ]


def test_manual_trigger_has_its_own_identity_and_respects_forbid() -> None:
    cluster = Cluster()
    cluster.apply(job("nightly", "0 3 * * *", concurrency="forbid"))
    session, _ = cluster.leader()
    session.promote()
    cluster.store.request_trigger("nightly", force=False, now=cluster.clock.now())
    cluster.run_for(session, 1)
    cluster.store.request_trigger("nightly", force=False, now=cluster.clock.now())
    cluster.run_for(session, 1)
    cluster.store.request_trigger("nightly", force=True, now=cluster.clock.now())
    cluster.run_for(session, 1)
    assert cluster.backend.submitted == ["nightly-20261125t060000z-m", "nightly-20261125t060002z-m"]
    assert cluster.store.pending_triggers() == []
    skipped = cluster.store.get_launch("nightly-20261125t060001z-m")
    assert skipped is not None and skipped.outcome is Outcome.SKIPPED


@pytest.mark.parametrize("concurrency", ["forbid", "replace"])
def test_a_trigger_read_in_the_tick_of_its_jobs_instant_starts_no_second_run(concurrency: str) -> None:
    """The trigger is sent half a second before 06:00:30 and read in the tick that launches 06:00:30: a lookup
    of that launch, not yet submitted, found nothing, and both ran side by side."""
    cluster = Cluster()
    cluster.apply(job("guarded", "*/15 * * * * *", concurrency=concurrency))
    session, _ = cluster.leader()
    session.promote()
    cluster.run_for(session, 15)  # 06:00:15 launched
    cluster.backend.finish_all()  # and has ended
    cluster.store.request_trigger("guarded", force=False, now=T0 + timedelta(seconds=29.5))
    cluster.clock.set(T0 + timedelta(seconds=30))
    session.tick()
    assert cluster.running() == ["guarded-20261125t060030z"]
    assert cluster.backend.stopped == []
    manual = cluster.store.get_launch("guarded-20261125t060029z-m")
    assert manual is not None and manual.outcome is Outcome.SKIPPED
    assert "guarded-20261125t060030z" in (manual.reason or "") and "same tick" in (manual.reason or "")
    assert cluster.store.pending_triggers() == []
    cluster.backend.finish_all()
    cluster.run_for(session, 15)  # the job goes on as before
    assert cluster.running() == ["guarded-20261125t060045z"]


@pytest.mark.parametrize("concurrency", ["forbid", "replace"])
def test_two_triggers_read_in_one_tick_start_one_run(concurrency: str) -> None:
    cluster = Cluster()
    cluster.apply(job("nightly", "0 3 * * *", concurrency=concurrency))
    session, _ = cluster.leader()
    session.promote()
    cluster.store.request_trigger("nightly", force=False, now=T0 + timedelta(seconds=0.2))
    cluster.store.request_trigger("nightly", force=False, now=T0 + timedelta(seconds=1.2))
    cluster.run_for(session, 2)
    assert cluster.running() == ["nightly-20261125t060000z-m"]
    second = cluster.store.get_launch("nightly-20261125t060001z-m")
    assert second is not None and second.outcome is Outcome.SKIPPED and "same tick" in (second.reason or "")


def test_a_forced_trigger_in_the_tick_of_the_instant_still_starts() -> None:
    cluster = Cluster()
    cluster.apply(job("guarded", "*/15 * * * * *", concurrency="forbid"))
    session, _ = cluster.leader()
    session.promote()
    cluster.run_for(session, 14)
    cluster.store.request_trigger("guarded", force=True, now=T0 + timedelta(seconds=14.5))
    cluster.run_for(session, 1)
    assert cluster.running() == ["guarded-20261125t060014z-m", "guarded-20261125t060015z"]


def test_the_log_names_an_outcome_recorded_and_leaves_out_fields_without_a_value(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="cronframework.launcher")
    cluster = Cluster()
    cluster.apply(job("beat"), job("held"))
    cluster.store.set_paused("held", True)
    session, _ = cluster.leader()
    session.promote()
    cluster.run_for(session, 60)
    events = {(r.getMessage(), getattr(r, "job", None)): r for r in caplog.records}
    submitted = events[("launch outcome recorded", "beat")]
    assert submitted.__dict__["outcome"] == "submitted" and "reason" not in submitted.__dict__
    skipped = events[("launch skipped", "held")]
    assert skipped.__dict__["reason"] == "paused"
    assert not any(r.getMessage() == "launch finished" for r in caplog.records)


def test_spec_changes_are_picked_up_without_restart() -> None:
    cluster = Cluster()
    cluster.apply(job("tick"))
    session, _ = cluster.leader()
    session.promote()
    cluster.apply(job("tick", "*/5 * * * *"), job("new"))
    cluster.run_for(session, 300)
    assert [n for n in cluster.backend.submitted if n.startswith("tick")] == ["tick-20261125t060500z"]
    assert len([n for n in cluster.backend.submitted if n.startswith("new")]) == 5


def test_clock_skew_beyond_bound_stops_launching() -> None:
    cluster = Cluster()
    cluster.apply(job("tick"))
    session, _ = cluster.leader(max_clock_skew=timedelta(seconds=2))
    session.promote()
    cluster.store.server_time = lambda: cluster.clock.now() + timedelta(seconds=10)  # type: ignore[method-assign]
    cluster.run_for(session, 120)
    assert cluster.backend.submitted == []
    assert session.state.clock_ok is False


def test_retention_prunes_finished_launches_beyond_count_in_store_and_backend() -> None:
    cluster = Cluster()
    cluster.backend.initial_state = LaunchState.SUCCEEDED
    cluster.apply(job("tick", retention={"count": 3}))
    session, _ = cluster.leader()
    session.promote()
    cluster.run_for(session, 600)
    names = [n for n, _, _ in cluster.outcomes("tick")]
    assert names == ["tick-20261125t060800z", "tick-20261125t060900z", "tick-20261125t061000z"]
    assert sorted(cluster.backend.launches) == names


def test_retention_keeps_a_launch_the_backend_still_runs() -> None:
    cluster = Cluster()  # the fake backend keeps every launch running: nothing may be removed
    cluster.apply(job("tick", retention={"count": 2}))
    session, _ = cluster.leader()
    session.promote()
    cluster.run_for(session, 300)
    assert len(cluster.outcomes("tick")) == 5
    cluster.backend.finish_all()
    cluster.run_for(session, 60)
    assert [n for n, _, _ in cluster.outcomes("tick")] == ["tick-20261125t060500z", "tick-20261125t060600z"]


def test_runtime_limit_stops_a_launch_past_its_timeout() -> None:
    cluster = Cluster()
    cluster.apply(job("slow", "0 * * * *", task={"command": ["/bin/sleep", "9999"], "timeout": "90s"}))
    cluster.clock.set(T0 + timedelta(minutes=59))
    session, _ = cluster.leader()
    session.promote()
    cluster.run_for(session, 60 + 120)
    assert cluster.backend.stopped == ["slow-20261125t070000z"]
    assert cluster.backend.launches["slow-20261125t070000z"] == BackendStatus(LaunchState.FAILED, reason="stopped")


def test_recovery_resubmits_a_launch_found_pending_so_it_starts() -> None:
    cluster = Cluster()
    cluster.apply(job("tick"))
    die_before_sync_point_two(cluster)
    name = "tick-20261125t060100z"
    cluster.backend.launches[name] = BackendStatus(LaunchState.PENDING)  # created, never started
    started: list[str] = []
    cluster.backend.on_submit = lambda n, _launch: started.append(n)
    second, _ = cluster.leader()
    second.promote()
    assert started == [name]  # submitted again, idempotently: the backend starts what it had only created
    assert cluster.backend.submitted == [name]  # ...and no second launch exists
    record = cluster.store.get_launch(name)
    assert record is not None and record.outcome is Outcome.ALREADY_EXISTED


def _created_never_started() -> tuple[Cluster, str]:
    """A leader died after sync point one of a launch the backend holds created and never started."""
    cluster = Cluster()
    cluster.apply(job("tick", catchup="none"))
    die_after_sync_point_one(cluster)
    name = "tick-20261125t060100z"
    cluster.backend.launches[name] = BackendStatus(LaunchState.PENDING)
    return cluster, name


def test_a_launch_found_pending_whose_start_is_refused_stays_open_until_it_starts() -> None:
    """The lookup found the container created and never started; the daemon went down before the start. The
    launch exists, so the refused start proves nothing: recording it failed_to_launch would leave a container the
    record says was never launched (the 60-minute Docker run, even-...224918z)."""
    cluster, name = _created_never_started()
    started: list[str] = []
    cluster.backend.on_submit = lambda n, _launch: started.append(n)
    cluster.backend.fail["submit"] = BackendUnreachable("connection refused")
    second, _ = cluster.leader()
    second.promote()
    assert [r.name for r in cluster.store.open_launches()] == [name]
    cluster.run_for(second, 3)
    assert [r.name for r in cluster.store.open_launches()] == [name]
    del cluster.backend.fail["submit"]
    cluster.run_for(second, 2)
    assert started == [name] and cluster.store.open_launches() == []
    record = cluster.store.get_launch(name)
    assert record is not None and record.outcome is Outcome.ALREADY_EXISTED


def test_recovery_window_is_clamped_below_the_backends_gc_horizon() -> None:
    cluster = Cluster()
    cluster.backend.horizon = timedelta(minutes=30)  # e.g. Nomad's job GC threshold
    cluster.apply(job("tick", recovery_window="2h", catchup="none"))
    die_after_sync_point_one(cluster)
    cluster.clock.advance(40 * 60)  # inside the job's window, past what the backend keeps: "not found" is ambiguous
    second, _ = cluster.leader()
    second.promote()
    assert "tick-20261125t060100z" not in cluster.backend.submitted
    record = cluster.store.get_launch("tick-20261125t060100z")
    assert record is not None and record.outcome is Outcome.SKIPPED


def _landed_then_timed_out(cluster: Cluster) -> None:
    """Every submit reaches the backend, but its answer is lost (a timeout): ambiguous by construction."""

    def fault(name: str) -> Exception:
        cluster.backend.launches.setdefault(name, BackendStatus(LaunchState.RUNNING))
        return TransientBackendError("read timed out")

    cluster.backend.fail["submit"] = fault


def test_a_timed_out_submit_the_backend_has_is_not_recorded_failed() -> None:
    cluster = Cluster()
    cluster.apply(job("tick", retries={"attempts": 2, "backoff": "1s"}))
    _landed_then_timed_out(cluster)
    session, _ = cluster.leader()
    session.promote()
    cluster.run_for(session, 60)
    record = cluster.store.get_launch("tick-20261125t060100z")
    assert record is not None and record.outcome is Outcome.ALREADY_EXISTED
    assert "but the backend has the launch" in (record.reason or "")


def test_a_timed_out_submit_nobody_can_check_stays_open_until_recovery_concludes_it() -> None:
    cluster = Cluster()
    cluster.apply(job("tick", "0 * * * *", retries={"attempts": 2, "backoff": "1s"}))
    cluster.clock.set(T0 + timedelta(minutes=59, seconds=59))
    _landed_then_timed_out(cluster)
    cluster.backend.fail["lookup"] = TransientBackendError("daemon away")
    session, _ = cluster.leader()
    session.promote()
    cluster.run_for(session, 1)
    [still_open] = cluster.store.open_launches()
    assert still_open.name == "tick-20261125t070000z"
    del cluster.backend.fail["lookup"]
    cluster.run_for(session, 1)
    assert cluster.store.open_launches() == []
    record = cluster.store.get_launch(still_open.name)
    assert record is not None and record.outcome is Outcome.ALREADY_EXISTED
    assert "concluded by recovery" in (record.reason or "")


def test_a_timed_out_submit_that_lands_after_the_lookup_is_recorded_launched_not_failed() -> None:
    """The daemon was frozen: every attempt timed out, the lookup found nothing, then the stuck request landed.
    A timeout keeps the record open; the next tick's recovery finds the launch instead of recording a failure."""
    cluster = Cluster()
    cluster.apply(job("tick", retries={"attempts": 2, "backoff": "1s"}))
    name = "tick-20261125t060100z"
    cluster.backend.fail["submit"] = BackendTimeout("read timed out")
    lookups: list[str] = []

    def lands_after_the_first_lookup(asked: str) -> None:
        lookups.append(asked)
        if len(lookups) == 2:  # the stuck create completes between the launcher's lookup and recovery's
            cluster.backend.launches[asked] = BackendStatus(LaunchState.PENDING)

    cluster.backend.fail["lookup"] = lands_after_the_first_lookup
    session, _ = cluster.leader()
    session.promote()
    cluster.run_for(session, 60)
    assert [r.name for r in cluster.store.open_launches()] == [name]  # not recorded failed_to_launch
    del cluster.backend.fail["submit"]
    cluster.run_for(session, 2)
    record = cluster.store.get_launch(name)
    assert record is not None and record.outcome is Outcome.ALREADY_EXISTED, record
    assert name not in cluster.backend.submitted  # the late copy was started, no second one created


def test_a_busy_backend_that_answered_is_recorded_failed_once_the_lookup_finds_nothing() -> None:
    """A 5xx is an answer: the request was refused inside the backend, so "not found" is final (no open record)."""
    retries = {"attempts": 2, "backoff": "1s"}
    cluster, record = _first_launch_against(TransientBackendError("503 busy"), "tick", retries=retries)
    assert record is not None and record.outcome is Outcome.FAILED
    assert cluster.store.open_launches() == []


def test_an_unreachable_backend_is_recorded_failed_to_launch_without_a_lookup() -> None:
    cluster = Cluster()
    cluster.apply(job("tick", retries={"attempts": 2, "backoff": "1s"}))
    cluster.backend.fail["submit"] = BackendUnreachable("connection refused")
    cluster.backend.fail["lookup"] = AssertionError("no lookup needed: nothing reached the backend")
    session, _ = cluster.leader()
    session.promote()
    cluster.run_for(session, 60)
    record = cluster.store.get_launch("tick-20261125t060100z")
    assert record is not None and record.outcome is Outcome.FAILED
    assert "connection refused" in (record.reason or "") and record.attempt == 2
    assert cluster.store.open_launches() == []


def test_a_recovery_resubmit_that_times_out_stays_open_and_is_found_later() -> None:
    """Two timeouts in a row: the dead leader's launch was never seen, and recovery's own resubmit times out while
    the stuck create lands inside the daemon. The record stays open; the next pass finds the launch."""
    cluster = Cluster()
    cluster.apply(job("tick", catchup="none", retries={"attempts": 2, "backoff": "1s"}))
    die_after_sync_point_one(cluster)
    name = "tick-20261125t060100z"
    _landed_then_timed_out(cluster)
    second, _ = cluster.leader()
    second.promote()
    assert second.state.takeover is not None
    [line] = second.state.takeover["open_launches"]
    assert line["decision"].startswith("left open") and "resubmit unanswered" in line["lookup"]
    assert [r.name for r in cluster.store.open_launches()] == [name]  # not recorded failed_to_launch
    del cluster.backend.fail["submit"]
    cluster.run_for(second, 2)
    record = cluster.store.get_launch(name)
    assert record is not None and record.outcome is Outcome.ALREADY_EXISTED, record
    assert "concluded by recovery" in (record.reason or "")


def warm_follower(cluster: Cluster) -> tuple[SpecCache, list[int]]:
    """A follower's spec cache, stamped the way the replica stamps ZooKeeper's specs folder (the stamp moves with
    every spec write), read once as a follower does; with a count of the full spec reads made after that."""
    writes, reads = [0], [0]
    write, read = cluster.store.write_specs, cluster.store.read_specs

    def counted_write(changes: list[SpecChange]) -> None:
        write(changes)
        writes[0] += 1

    def counted_read() -> dict[str, StoredSpec]:
        reads[0] += 1
        return read()

    cluster.store.write_specs = counted_write  # type: ignore[method-assign,assignment]
    cluster.store.read_specs = counted_read  # type: ignore[method-assign]
    specs = SpecCache(cluster.store, stamp=lambda: writes[0])
    specs.start()
    reads[0] = 0
    return specs, reads


def promoted_with(cluster: Cluster, specs: SpecCache) -> LeaderSession:
    cluster.epoch += 1
    leadership = SoleLeader(epoch=cluster.epoch, replica=f"r{cluster.epoch}")
    backends = BackendSet(preset={"fake": cluster.backend})
    session = LeaderSession(
        cluster.store, specs, backends, leadership, cluster.clock, LeaderConfig(), threading.Event()
    )
    session.promote()
    return session


def test_promotion_takes_the_followers_warm_specs_without_reading_them_again() -> None:
    cluster = Cluster()
    cluster.apply(job("tick"))
    specs, reads = warm_follower(cluster)
    session = promoted_with(cluster, specs)
    cluster.run_for(session, 120)
    assert reads == [0], "the promotion re-read specs whose stamp had not moved"
    assert cluster.backend.submitted == ["tick-20261125t060100z", "tick-20261125t060200z"]


def test_specs_changed_right_before_promotion_are_read_and_used() -> None:
    """The follower's snapshot is stale (written after it was read, not refreshed yet): the moved stamp makes the
    promotion re-read, so the new schedule, the new job and the deletion all apply from the first tick."""
    cluster = Cluster()
    cluster.apply(job("tick"), job("gone"))
    specs, reads = warm_follower(cluster)
    cluster.apply(job("tick", "*/5 * * * *"), job("new", "*/10 * * * *"))
    cluster.store.write_specs([SpecChange("gone", None, cluster.store.read_specs()["gone"].version)])
    reads[0] = 0
    session = promoted_with(cluster, specs)
    cluster.run_for(session, 600)
    assert reads == [1]
    assert cluster.backend.submitted == ["tick-20261125t060500z", "new-20261125t061000z", "tick-20261125t061000z"]


def test_the_periodic_clock_check_comes_after_the_launches_of_its_tick() -> None:
    """The check is a ZooKeeper write; made before launching, one queued behind a busy server delayed a whole
    second's launches (bench steady: the worst seconds came every 30 s)."""
    cluster = Cluster()
    cluster.apply(job("tick", "* * * * * *"))
    session, _ = cluster.leader()
    session.promote()
    calls: list[tuple[str, datetime]] = []
    real_server_time = cluster.store.server_time

    def server_time() -> datetime:
        calls.append(("clock check", cluster.clock.now()))
        return real_server_time()

    cluster.store.server_time = server_time  # type: ignore[method-assign]
    cluster.backend.on_submit = lambda name, launch: calls.append(("submit", cluster.clock.now()))  # type: ignore[attr-defined]
    cluster.run_for(session, 65)
    checks = [i for i, (call, _) in enumerate(calls) if call == "clock check"]
    assert len(checks) == 2  # every 30 s, not every tick
    for i in checks:  # each right after the launch of its own tick, not before it
        assert calls[i - 1] == ("submit", calls[i][1]) and calls[i + 1][0] == "submit" and calls[i + 1][1] > calls[i][1]


def test_what_a_launching_tick_keeps_is_frozen_out_of_the_full_collections() -> None:
    """Each launch replaces its job's dispatcher entry; left in the collected generations, 100k of them a minute
    made CPython's full collections walk them every ~2 s (110-160 ms each, bench steady at 100k)."""
    cluster = Cluster()
    cluster.apply(job("tick", "* * * * * *"))
    session, _ = cluster.leader()
    session.promote()
    frozen = gc.get_freeze_count()
    cluster.run_for(session, 3)
    entry = session._dispatcher.get("tick")
    assert entry is not None and gc.is_tracked(entry)
    assert gc.get_freeze_count() > frozen
    assert not any(o is entry for o in gc.get_objects()), "the job's new entry is still in a collected generation"


def test_forbid_skips_while_the_previous_launch_is_left_open() -> None:
    """A submit that timed out leaves its record open: it may still land inside a slow daemon. "Not found" for it
    at the next instant proves nothing, so a `forbid` job fails closed until recovery concludes it."""
    cluster = Cluster()
    cluster.apply(job("guarded", concurrency="forbid", retries={"attempts": 2, "backoff": "1s"}))
    first, second = "guarded-20261125t060100z", "guarded-20261125t060200z"

    def stuck(name: str) -> BaseException | None:
        return BackendTimeout("read timed out") if name == first else None

    cluster.backend.fail["submit"] = stuck
    session, _ = cluster.leader()
    session.promote()
    cluster.run_for(session, 120)
    assert [r.name for r in cluster.store.open_launches()] == [first]
    assert second not in cluster.backend.submitted
    record = cluster.store.get_launch(second)
    assert record is not None and record.outcome is Outcome.SKIPPED
    assert f"previous launch {first} has no recorded outcome yet" in (record.reason or "")


def test_replace_stops_the_previous_launch_only_once_the_new_record_is_written() -> None:
    """A leader that dies between the stop and sync point one would leave the old run stopped and nothing recorded
    in its place; stopped after it, the new launch is an open record that recovery concludes."""
    cluster = Cluster()
    cluster.apply(job("swap", concurrency="replace"))
    first, second = "swap-20261125t060100z", "swap-20261125t060200z"
    session, _ = cluster.leader()
    session.promote()
    cluster.run_for(session, 60)
    recorded_at_stop: list[bool] = []

    def check(name: str) -> None:
        recorded_at_stop.append(name == first and cluster.store.get_launch(second) is not None)

    cluster.backend.fail["stop"] = check
    cluster.run_for(session, 60)
    assert recorded_at_stop == [True] and cluster.backend.submitted == [first, second]


def test_replace_launches_nothing_when_the_previous_launch_cannot_be_stopped() -> None:
    cluster = Cluster()
    cluster.apply(job("swap", concurrency="replace"))
    session, _ = cluster.leader()
    session.promote()
    cluster.run_for(session, 60)
    cluster.backend.fail["stop"] = TransientBackendError("daemon down")
    cluster.run_for(session, 60)
    assert cluster.backend.submitted == ["swap-20261125t060100z"]
    record = cluster.store.get_launch("swap-20261125t060200z")
    assert record is not None and record.outcome is Outcome.FAILED
    assert "could not stop previous launch swap-20261125t060100z" in (record.reason or "")


def test_a_slow_backend_does_not_hold_up_another_backends_launches_in_the_same_herd() -> None:
    """Each backend has its own submit workers: a daemon that answers slowly (all its workers busy) must not delay
    the launches due on another backend in the same second."""
    cluster = Cluster()
    release = threading.Event()
    slow = FakeBackend(on_submit=lambda name, launch: release.wait(10))
    fast = FakeBackend()
    cluster.apply(*[job(f"a-slow-{i}", backend="slow") for i in range(4)], job("z-fast", backend="fast"))
    specs = SpecCache(cluster.store)
    specs.start()
    backends = BackendSet(preset={"slow": slow, "fast": fast})
    session = LeaderSession(
        cluster.store, specs, backends, SoleLeader(epoch=1, replica="r1"), cluster.clock, LeaderConfig(workers=2),
        threading.Event(),
    )  # fmt: skip
    session.promote()
    cluster.clock.advance(60)
    ticking = threading.Thread(target=session.tick)
    ticking.start()
    try:
        deadline = time.monotonic() + 5
        while not fast.submitted and time.monotonic() < deadline:
            time.sleep(0.01)
        assert fast.submitted and len(slow.launches) <= 2  # the fast one went while both slow workers waited
    finally:
        release.set()
        ticking.join(10)
    assert len(slow.submitted) == 4

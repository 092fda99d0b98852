"""The conformance suite every StateStore passes (memory fake, SQLite, ZooKeeper).

A store's test module subclasses `StoreConformance` and provides three fixtures:
- `store`: a fresh, empty store;
- `fence`: a fence that proves current leadership to that store;
- `invalid_fence`: a fence whose leadership is gone (for ZooKeeper: its election znode was deleted).
`wait_until` polls with a deadline, for stores whose watches fire from another thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cronframework.abc import Fence, StateStore
from cronframework.errors import ConflictError, LeadershipLost, StateStoreError
from cronframework.naming import LaunchIdentity
from cronframework.records import (
    Begin,
    JobResults,
    JobState,
    LaunchRecord,
    Notice,
    NoticeState,
    Outcome,
    RecordState,
    ResultBatch,
    SpecChange,
    TaskResult,
)

T0 = datetime(2026, 11, 25, 6, 30, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def make_begin(
    fence: Fence, job: str, scheduled: datetime, *, manual: bool = False, trigger: str | None = None
) -> Begin:
    """Sync point one for `job` at `scheduled`, advancing the job to the next minute."""
    identity = LaunchIdentity(job, scheduled, manual=manual)
    record = LaunchRecord.begin(identity, leader=fence.replica, epoch=fence.epoch, now=scheduled)
    state = JobState(job, next_scheduled=scheduled + MINUTE, last_launch=identity.name)
    return Begin(record=record, next_state=state, consumed_trigger=trigger)


def begun(store: StateStore, fence: Fence, job: str, *offsets: int) -> list[LaunchRecord]:
    """Begin launches of `job` at T0 + each offset in minutes; return their records."""
    items = [make_begin(fence, job, T0 + n * MINUTE) for n in offsets]
    store.begin(fence, items)
    return [item.record for item in items]


def done(record: LaunchRecord, **extra: Any) -> LaunchRecord:
    """Sync point two's record of a submitted launch: its result is still to come (it is followed)."""
    return record.finish(Outcome.SUBMITTED, now=record.scheduled + timedelta(seconds=2), **extra)


def ended(record: LaunchRecord, result: TaskResult = TaskResult.SUCCEEDED, **extra: Any) -> LaunchRecord:
    """A submitted launch with its task's result: concluded."""
    started = record.scheduled + timedelta(seconds=2)
    return done(record).with_result(result, started_at=started, ended_at=started + timedelta(seconds=30), **extra)


def notice(record: LaunchRecord, event: str = "failed", index: int = 0) -> Notice:
    key = f"{record.name}:{event}"
    payload = {"launch": record.name, "event": event, "text": f"cronframework: {record.job} {event}"}
    return Notice(f"{key}:{index}", key, record.job, event, "https://hooks.example/x", payload, T0, "CF_SECRET")


def summary_of(*records: LaunchRecord) -> JobResults:
    summary = JobResults(records[0].job)
    for record in records:
        summary = summary.add(record, final=True, now=T0)
    return summary


class StoreConformance:
    """What the scheduler relies on from any StateStore."""

    # -- empty store
    def test_fresh_store_is_empty(self, store: StateStore) -> None:
        assert store.read_specs() == {}
        assert store.read_job_states() == {}
        assert store.read_paused() == set()
        assert store.open_launches() == []
        assert store.history("nothing") == []
        assert store.get_launch("nothing-20260101t000000z") is None
        assert store.pending_triggers() == []
        assert store.read_takeover() is None

    # -- specs
    def test_spec_create_then_read(self, store: StateStore) -> None:
        store.write_specs([SpecChange("alpha", {"schedule": "* * * * *", "n": 1}, None)])
        specs = store.read_specs()
        assert set(specs) == {"alpha"}
        assert specs["alpha"].name == "alpha"
        assert dict(specs["alpha"].document) == {"schedule": "* * * * *", "n": 1}

    def test_spec_create_of_existing_conflicts(self, store: StateStore) -> None:
        store.write_specs([SpecChange("alpha", {"n": 1}, None)])
        with pytest.raises(ConflictError):
            store.write_specs([SpecChange("alpha", {"n": 2}, None)])
        assert dict(store.read_specs()["alpha"].document) == {"n": 1}

    def test_spec_update_needs_current_version(self, store: StateStore) -> None:
        store.write_specs([SpecChange("alpha", {"n": 1}, None)])
        v1 = store.read_specs()["alpha"].version
        store.write_specs([SpecChange("alpha", {"n": 2}, v1)])
        v2 = store.read_specs()["alpha"].version
        assert v2 != v1
        with pytest.raises(ConflictError):
            store.write_specs([SpecChange("alpha", {"n": 3}, v1)])
        assert dict(store.read_specs()["alpha"].document) == {"n": 2}

    def test_spec_delete_needs_current_version(self, store: StateStore) -> None:
        store.write_specs([SpecChange("alpha", {"n": 1}, None)])
        v1 = store.read_specs()["alpha"].version
        store.write_specs([SpecChange("alpha", {"n": 2}, v1)])
        with pytest.raises(ConflictError):
            store.write_specs([SpecChange("alpha", None, v1)])
        assert "alpha" in store.read_specs()
        store.write_specs([SpecChange("alpha", None, store.read_specs()["alpha"].version)])
        assert store.read_specs() == {}

    def test_spec_batch_is_all_or_nothing(self, store: StateStore) -> None:
        store.write_specs([SpecChange("alpha", {"n": 1}, None)])
        stale = store.read_specs()["alpha"].version + 7
        with pytest.raises(ConflictError):
            store.write_specs([SpecChange("beta", {"n": 1}, None), SpecChange("alpha", {"n": 2}, stale)])
        assert set(store.read_specs()) == {"alpha"}
        assert dict(store.read_specs()["alpha"].document) == {"n": 1}

    def test_watch_fires_on_create_update_and_delete(self, store: StateStore) -> None:
        fired = threading.Event()
        store.watch_specs(fired.set)
        time.sleep(0.2)  # let an implementation's initial registration settle before we observe changes
        for change in self._spec_lifecycle(store):
            fired.clear()
            store.write_specs([change()])
            assert fired.wait(10), "watch_specs callback did not fire after a spec change"

    @staticmethod
    def _spec_lifecycle(store: StateStore) -> list[Callable[[], SpecChange]]:
        def version() -> int:
            return store.read_specs()["alpha"].version

        return [
            lambda: SpecChange("alpha", {"n": 1}, None),
            lambda: SpecChange("alpha", {"n": 2}, version()),
            lambda: SpecChange("alpha", None, version()),
        ]

    # -- schedule state and pause
    def test_job_states_round_trip(self, store: StateStore, fence: Fence) -> None:
        states = [JobState("alpha", T0, "alpha-20261125t062900z"), JobState("beta", None, None)]
        store.put_job_states(fence, states)
        assert store.read_job_states() == {s.job: s for s in states}
        store.put_job_states(fence, [JobState("alpha", T0 + MINUTE, "alpha-20261125t063000z")])
        assert store.read_job_states()["alpha"].next_scheduled == T0 + MINUTE
        assert store.read_job_states(["beta", "nothing"]) == {"beta": states[1]}
        assert store.read_job_states([]) == {}

    def test_pause_and_resume_are_idempotent(self, store: StateStore) -> None:
        store.set_paused("alpha", True)
        store.set_paused("alpha", True)
        store.set_paused("beta", True)
        assert store.read_paused() == {"alpha", "beta"}
        store.set_paused("alpha", False)
        store.set_paused("alpha", False)
        assert store.read_paused() == {"beta"}

    # -- sync point one
    def test_begin_creates_open_records_and_advances_state(self, store: StateStore, fence: Fence) -> None:
        first, second = begun(store, fence, "alpha", 0, 1)
        assert store.get_launch(first.name) == first
        assert [r.name for r in store.open_launches()] == [first.name, second.name]
        state = store.read_job_states()["alpha"]
        assert state.next_scheduled == T0 + 2 * MINUTE
        assert state.last_launch == second.name
        assert all(r.state is RecordState.BEGUN for r in store.open_launches())

    def test_a_prepared_begin_writes_nothing_until_sent(self, store: StateStore, fence: Fence) -> None:
        item = make_begin(fence, "alpha", T0)
        prepared = store.prepare_begin(fence, [item])
        assert store.get_launch(item.record.name) is None and store.read_job_states() == {}
        prepared.send()()
        assert store.get_launch(item.record.name) == item.record
        assert store.read_job_states()["alpha"] == item.next_state

    def test_a_discarded_begin_writes_nothing_and_spoils_no_later_begin(self, store: StateStore, fence: Fence) -> None:
        # a new job in a new hour: a store that makes folders for them must not count them as made after a discard
        dropped = make_begin(fence, "alpha", T0 + 5 * 60 * MINUTE)
        store.prepare_begin(fence, [dropped]).discard()
        assert store.get_launch(dropped.record.name) is None and store.read_job_states() == {}
        later = make_begin(fence, "alpha", T0 + 5 * 60 * MINUTE + MINUTE)
        store.begin(fence, [later])
        assert store.get_launch(later.record.name) == later.record
        assert [r.name for r in store.open_launches()] == [later.record.name]

    def test_begin_of_existing_name_conflicts_and_applies_nothing(self, store: StateStore, fence: Fence) -> None:
        (existing,) = begun(store, fence, "alpha", 0)
        before = store.read_job_states()
        fresh = make_begin(fence, "beta", T0)
        dup = make_begin(fence, "alpha", T0)
        with pytest.raises(ConflictError):
            store.begin(fence, [fresh, dup])
        assert store.get_launch(fresh.record.name) is None
        assert [r.name for r in store.open_launches()] == [existing.name]
        assert store.read_job_states() == before

    def test_begin_of_a_finished_name_conflicts(self, store: StateStore, fence: Fence) -> None:
        (record,) = begun(store, fence, "alpha", 0)
        store.finish(fence, [done(record)])
        with pytest.raises(ConflictError):
            store.begin(fence, [make_begin(fence, "alpha", T0)])
        assert store.get_launch(record.name) == done(record)

    def test_begin_of_an_already_finished_record_is_not_open(self, store: StateStore, fence: Fence) -> None:
        item = make_begin(fence, "alpha", T0)
        skipped = item.record.finish(Outcome.SKIPPED, now=T0, reason="paused")
        store.begin(fence, [Begin(record=skipped, next_state=item.next_state)])
        assert store.get_launch(skipped.name) == skipped
        assert store.open_launches() == []
        assert store.read_job_states()["alpha"] == item.next_state

    def test_manual_launch_record_round_trips(self, store: StateStore, fence: Fence) -> None:
        item = make_begin(fence, "alpha", T0, manual=True)
        store.begin(fence, [item])
        got = store.get_launch(item.record.name)
        assert got == item.record
        assert got is not None and got.manual and got.name.endswith("-m")

    def test_open_launches_oldest_scheduled_first(self, store: StateStore, fence: Fence) -> None:
        late = begun(store, fence, "alpha", 5)
        early = begun(store, fence, "beta", 1, 3)
        expected = sorted(late + early, key=lambda r: r.scheduled)
        assert [r.name for r in store.open_launches()] == [r.name for r in expected]

    # -- sync point two
    def test_finish_closes_records(self, store: StateStore, fence: Fence) -> None:
        first, second = begun(store, fence, "alpha", 0, 1)
        closed = done(first, reason="ok", backend_state="running", exit_code=None)
        store.finish(fence, [closed])
        assert store.get_launch(first.name) == closed
        assert [r.name for r in store.open_launches()] == [second.name]
        failed = second.finish(Outcome.FAILED, now=T0 + 2 * MINUTE, reason="image not found")
        store.finish(fence, [failed])
        assert store.open_launches() == []
        got = store.get_launch(second.name)
        assert got is not None and got.outcome is Outcome.FAILED and got.reason == "image not found"

    def test_history_is_newest_first_and_limited(self, store: StateStore, fence: Fence) -> None:
        records = begun(store, fence, "alpha", 3, 0, 4, 1, 2)
        begun(store, fence, "alpha-other", 9)
        store.finish(fence, [done(records[1])])
        newest = sorted(records, key=lambda r: r.scheduled, reverse=True)
        assert [r.name for r in store.history("alpha", 3)] == [r.name for r in newest[:3]]
        names = [r.name for r in store.history("alpha", 20)]
        assert names == [r.name for r in newest]
        assert store.history("alpha", 20)[-1].state is RecordState.FINISHED

    def test_histories_read_every_record_of_each_job_asked_for(self, store: StateStore, fence: Fence) -> None:
        """A backup's read: all of each job's records in one pass, across hours (here 0 to 2 h), newest first."""
        alpha = begun(store, fence, "alpha", 3, 0, 61, 125)
        begun(store, fence, "alpha-other", 9)
        store.finish(fence, [done(alpha[1])])
        got = store.full_histories(["alpha", "nothing-yet"])
        assert got.keys() == {"alpha", "nothing-yet"} and got["nothing-yet"] == []
        newest = sorted(alpha, key=lambda r: r.scheduled, reverse=True)
        assert [r.name for r in got["alpha"]] == [r.name for r in newest]
        assert got["alpha"][-1].state is RecordState.FINISHED

    def test_histories_are_each_job_s_newest_records_read_together(self, store: StateStore, fence: Fence) -> None:
        """Across hours (on ZooKeeper each hour is a folder), with a manual launch and a retry, for several jobs at
        once; a job without records is absent."""
        alpha = begun(store, fence, "alpha", 200, 0, 45, 100, 101)  # 09:50, 06:30, 07:15, 08:10, 08:11
        manual = make_begin(fence, "alpha", T0 + 100 * MINUTE, manual=True)
        retry = LaunchRecord.begin(alpha[1].identity.retry(2), leader=fence.replica, epoch=fence.epoch, now=T0)
        store.begin(fence, [manual, Begin(retry, manual.next_state)])
        beta = begun(store, fence, "beta", 3)
        begun(store, fence, "beta-other", 5)  # a job whose name starts with another's
        store.finish(fence, [done(alpha[2])])
        newest = [alpha[0], alpha[4], manual.record, alpha[3], alpha[2], retry, alpha[1]]
        for limit in (1, 3, 20):
            got = store.histories(["alpha", "beta", "nothing"], limit)
            assert {job: [r.name for r in records] for job, records in got.items()} == {
                "alpha": [r.name for r in newest[:limit]],
                "beta": [beta[0].name],
            }
        assert store.histories(["alpha", "beta"], 3)["alpha"][2].state is RecordState.BEGUN
        assert store.histories(["alpha", "beta"], 20)["alpha"][4] == done(alpha[2])
        assert store.histories(["alpha"], 0) == {} and store.histories([], 5) == {}

    def test_last_results_are_each_job_s_newest_record_in_one_word(self, store: StateStore, fence: Fence) -> None:
        """What the status page filters and sorts by: the newest record's result, else outcome, else state, across
        hours, for several jobs at once; a job without records is absent."""
        alpha = begun(store, fence, "alpha", 0, 125, 61)
        beta = begun(store, fence, "beta", 3, 9)
        gamma = begun(store, fence, "gamma", 4)
        store.finish(fence, [done(alpha[1]), beta[1].finish(Outcome.FAILED, now=T0, reason="refused")])
        store.finish(fence, [done(gamma[0])])
        result = ended(gamma[0], TaskResult.FAILED, exit_code=1)
        store.record_results(fence, ResultBatch([result], [summary_of(result)]))
        assert store.last_results(["alpha", "beta", "gamma", "nothing"]) == {
            "alpha": "submitted",
            "beta": "failed_to_launch",
            "gamma": "failed",
        }
        assert store.last_results(["beta"]) == {"beta": "failed_to_launch"} and store.last_results([]) == {}
        begun(store, fence, "beta", 10)
        assert store.last_results(["beta"]) == {"beta": "begun"}
        # `now`: where a store may look first; no record is scheduled more than a few minutes after it
        for now in (T0 + 122 * MINUTE, T0 + 126 * MINUTE, T0 + 30 * 24 * 60 * MINUTE):
            assert store.last_results(["alpha", "beta", "gamma"], now) == {
                "alpha": "submitted",
                "beta": "begun",
                "gamma": "failed",
            }

    # -- results
    def test_a_submitted_launch_is_followed_until_its_result_is_recorded(self, store: StateStore, fence: Fence) -> None:
        first, second = begun(store, fence, "alpha", 0, 1)
        store.finish(fence, [done(first), second.finish(Outcome.FAILED, now=T0, reason="refused")])
        assert [r.name for r in store.following_launches()] == [first.name]
        assert store.open_launches() == []
        result = ended(first, TaskResult.FAILED, exit_code=3, reason="exit code 3")
        store.record_results(fence, ResultBatch([result], [summary_of(result)]))
        assert store.following_launches() == []
        got = store.get_launch(first.name)
        assert got == result and got is not None and got.duration == 30.0 and got.exit_code == 3

    def test_job_results_round_trip_and_are_replaced(self, store: StateStore, fence: Fence) -> None:
        first, second = begun(store, fence, "alpha", 0, 1)
        (other,) = begun(store, fence, "beta", 0)
        store.finish(fence, [done(first), done(second), done(other)])
        failed = ended(first, TaskResult.TIMED_OUT)
        store.record_results(fence, ResultBatch([failed], [summary_of(failed)]))
        succeeded, beta = ended(second), ended(other, TaskResult.LOST)
        summaries = [summary_of(failed, succeeded), summary_of(beta)]
        store.record_results(fence, ResultBatch([succeeded, beta], summaries))
        results = store.read_job_results()
        assert results == {"alpha": summaries[0], "beta": summaries[1]}
        assert results["alpha"].failures == 0 and results["alpha"].last_success == succeeded.ended_at
        assert [r.launch for r in results["alpha"].recent] == [second.name, first.name]
        assert results["beta"].failures == 1 and results["beta"].last_result is TaskResult.LOST
        assert store.read_job_results(["beta", "nothing"]) == {"beta": summaries[1]}

    def test_a_launch_with_a_retry_to_come_is_still_followed(self, store: StateStore, fence: Fence) -> None:
        (record,) = begun(store, fence, "alpha", 0)
        store.finish(fence, [done(record)])
        waiting = replace(ended(record, TaskResult.FAILED), retry_at=T0 + MINUTE)
        store.record_results(fence, ResultBatch([waiting]))
        assert store.following_launches() == [waiting]
        store.record_results(fence, ResultBatch([replace(waiting, retry_at=None)]))
        assert store.following_launches() == []

    def test_results_of_a_launch_never_begun_are_refused(self, store: StateStore, fence: Fence) -> None:
        stranger = ended(make_begin(fence, "alpha", T0).record)
        with pytest.raises(StateStoreError):
            store.record_results(fence, ResultBatch([stranger]))
        assert store.get_launch(stranger.name) is None

    def test_a_restored_launch_still_followed_is_followed(self, store: StateStore, fence: Fence) -> None:
        item = make_begin(fence, "alpha", T0)
        store.begin(fence, [Begin(done(item.record), item.next_state)])
        assert [r.name for r in store.following_launches()] == [item.record.name]

    def test_invalid_fence_results_write_nothing(self, store: StateStore, fence: Fence, invalid_fence: Fence) -> None:
        (record,) = begun(store, fence, "alpha", 0)
        store.finish(fence, [done(record)])
        result = ended(record)
        with pytest.raises(LeadershipLost):
            store.record_results(invalid_fence, ResultBatch([result], [summary_of(result)]))
        assert store.get_launch(record.name) == done(record)
        assert store.read_job_results() == {}

    def test_a_retry_is_recorded_under_its_own_name(self, store: StateStore, fence: Fence) -> None:
        first = make_begin(fence, "alpha", T0)
        retry = first.record.identity.retry(2)
        record = LaunchRecord.begin(retry, leader=fence.replica, epoch=fence.epoch, now=T0)
        store.begin(fence, [first, Begin(record, first.next_state)])
        assert store.get_launch(retry.name) == record and record.task_attempt == 2
        assert [r.name for r in store.history("alpha")] == [retry.name, first.record.name]

    # -- the outbox
    def test_notices_are_written_with_what_they_are_about_and_settled(self, store: StateStore, fence: Fence) -> None:
        item = make_begin(fence, "alpha", T0)
        skipped = item.record.finish(Outcome.SKIPPED, now=T0, reason="missed: no leader")
        store.begin(fence, [Begin(skipped, item.next_state, notices=(notice(skipped, "missed"),))])
        failed_launch, launched = begun(store, fence, "alpha", 1, 2)
        refused = failed_launch.finish(Outcome.FAILED, now=T0, reason="image not found")
        store.finish(fence, [refused, done(launched)], [notice(refused, "failed_to_launch")])
        result = ended(launched, TaskResult.FAILED)
        store.record_results(
            fence, ResultBatch([result], [summary_of(result)], [notice(result), notice(result, index=1)])
        )
        outbox = store.read_outbox()
        assert sorted(n.key for n in outbox) == sorted(
            [
                f"{skipped.name}:missed",
                f"{refused.name}:failed_to_launch",
                f"{result.name}:failed",
                f"{result.name}:failed",
            ]
        )
        assert notice(result) in outbox and all(n.state is NoticeState.PENDING for n in outbox)
        given_up = replace(notice(result), state=NoticeState.UNDELIVERABLE, attempts=5, last_error="HTTP 500")
        store.settle_notices(
            fence, [notice(skipped, "missed").id, notice(refused, "failed_to_launch").id, "gone"], [given_up]
        )
        assert {n.id: n for n in store.read_outbox()} == {
            given_up.id: given_up,
            notice(result, index=1).id: notice(result, index=1),
        }

    def test_a_results_batch_written_again_creates_no_notice_twice(self, store: StateStore, fence: Fence) -> None:
        (record,) = begun(store, fence, "alpha", 0)
        store.finish(fence, [done(record)])
        result = ended(record, TaskResult.FAILED)
        batch = ResultBatch([result], [summary_of(result)], [notice(result)])
        store.record_results(fence, batch)
        store.record_results(fence, batch)  # its first answer was lost: the leader writes it again
        assert store.read_outbox() == [notice(result)]

    def test_a_result_may_suspend_its_job_even_if_paused_already(self, store: StateStore, fence: Fence) -> None:
        first, second = begun(store, fence, "alpha", 0, 1)
        (other,) = begun(store, fence, "beta", 0)
        store.finish(fence, [done(first), done(second), done(other)])
        store.set_paused("beta", True)
        batch = ResultBatch([ended(first, TaskResult.FAILED), ended(other, TaskResult.LOST)], pause=["alpha", "beta"])
        store.record_results(fence, batch)
        assert store.read_paused() == {"alpha", "beta"}

    def test_invalid_fence_settles_no_notice(self, store: StateStore, fence: Fence, invalid_fence: Fence) -> None:
        (record,) = begun(store, fence, "alpha", 0)
        store.finish(fence, [record.finish(Outcome.FAILED, now=T0, reason="refused")], [notice(record)])
        with pytest.raises(LeadershipLost):
            store.settle_notices(invalid_fence, [notice(record).id], [])
        assert store.read_outbox() == [notice(record)]

    # -- retention
    def test_prune_deletes_finished_records(self, store: StateStore, fence: Fence) -> None:
        old, keep = begun(store, fence, "alpha", 0, 1)
        store.finish(fence, [done(old), done(keep)])
        store.prune(fence, "alpha", [old.name])
        assert store.get_launch(old.name) is None
        assert [r.name for r in store.history("alpha")] == [keep.name]

    def test_prune_refuses_open_records_and_deletes_nothing(self, store: StateStore, fence: Fence) -> None:
        finished, still_open = begun(store, fence, "alpha", 0, 1)
        store.finish(fence, [done(finished)])
        with pytest.raises(StateStoreError):
            store.prune(fence, "alpha", [finished.name, still_open.name])
        assert store.get_launch(still_open.name) == still_open
        assert store.get_launch(finished.name) == done(finished)

    # -- manual triggers
    def test_triggers_are_pending_until_dropped(self, store: StateStore, fence: Fence) -> None:
        first = store.request_trigger("alpha", force=False, now=T0)
        second = store.request_trigger("beta", force=True, now=T0 + MINUTE)
        assert first.id != second.id
        pending = store.pending_triggers()
        assert [(t.id, t.job, t.force) for t in pending] == [
            (first.id, "alpha", False),
            (second.id, "beta", True),
        ]
        assert pending[0].requested_at == T0
        store.drop_trigger(fence, first.id)
        assert [t.id for t in store.pending_triggers()] == [second.id]

    def test_begin_consumes_its_trigger(self, store: StateStore, fence: Fence) -> None:
        trigger = store.request_trigger("alpha", force=False, now=T0)
        item = make_begin(fence, "alpha", T0, manual=True, trigger=trigger.id)
        store.begin(fence, [item])
        assert store.pending_triggers() == []
        assert store.get_launch(item.record.name) == item.record

    # -- takeover report and clock
    def test_takeover_report_round_trips(self, store: StateStore, fence: Fence) -> None:
        store.write_takeover(fence, {"epoch": fence.epoch, "concluded": ["a"], "caught_up": 2})
        assert dict(store.read_takeover() or {}) == {"epoch": fence.epoch, "concluded": ["a"], "caught_up": 2}
        store.write_takeover(fence, {"epoch": fence.epoch, "concluded": []})
        assert dict(store.read_takeover() or {}) == {"epoch": fence.epoch, "concluded": []}

    def test_server_time_is_near_now(self, store: StateStore) -> None:
        server = store.server_time()
        assert server.tzinfo is not None
        assert abs(server - datetime.now(UTC)) < timedelta(seconds=60)

    # -- fencing: a deposed leader writes nothing
    def test_fence_epoch_and_replica_are_exposed(self, fence: Fence, invalid_fence: Fence) -> None:
        assert isinstance(fence.epoch, int) and isinstance(fence.replica, str)
        assert isinstance(invalid_fence.epoch, int)

    def test_invalid_fence_begin_writes_nothing(self, store: StateStore, invalid_fence: Fence) -> None:
        item = make_begin(invalid_fence, "alpha", T0)
        with pytest.raises(LeadershipLost):
            store.begin(invalid_fence, [item])
        assert store.get_launch(item.record.name) is None
        assert store.open_launches() == []
        assert store.read_job_states() == {}

    def test_invalid_fence_finish_writes_nothing(self, store: StateStore, fence: Fence, invalid_fence: Fence) -> None:
        (record,) = begun(store, fence, "alpha", 0)
        with pytest.raises(LeadershipLost):
            store.finish(invalid_fence, [done(record)])
        assert store.get_launch(record.name) == record

    def test_invalid_fence_other_leader_writes_nothing(
        self, store: StateStore, fence: Fence, invalid_fence: Fence
    ) -> None:
        (record,) = begun(store, fence, "alpha", 0)
        store.finish(fence, [done(record)])
        trigger = store.request_trigger("alpha", force=False, now=T0)
        states = store.read_job_states()
        with pytest.raises(LeadershipLost):
            store.put_job_states(invalid_fence, [JobState("alpha", T0 + 9 * MINUTE)])
        with pytest.raises(LeadershipLost):
            store.prune(invalid_fence, "alpha", [record.name])
        with pytest.raises(LeadershipLost):
            store.drop_trigger(invalid_fence, trigger.id)
        with pytest.raises(LeadershipLost):
            store.write_takeover(invalid_fence, {"epoch": invalid_fence.epoch})
        assert store.read_job_states() == states
        assert store.get_launch(record.name) == done(record)
        assert [t.id for t in store.pending_triggers()] == [trigger.id]
        assert store.read_takeover() is None

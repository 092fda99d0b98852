"""A tick's decisions as values (engine.plan): no store, no backend, no clock; named instants.

`plan_tick` says what launches, what is skipped and which previous launches must be asked about; `settle` turns the
backend's answers into the items sync point one writes. Each case asserts on those values.
"""

from __future__ import annotations

from collections.abc import Sequence, Set
from datetime import UTC, datetime, timedelta

import pytest

from cronframework.engine.concurrency import ALLOWED, Verdict
from cronframework.engine.dispatcher import Entry
from cronframework.engine.plan import DueRetry, Planned, TickPlan, decide_retry, hold_unanswered, plan_tick, settle
from cronframework.launch import BackendStatus, LaunchState
from cronframework.naming import LaunchIdentity, launch_name
from cronframework.records import JobState, LaunchRecord, Outcome, TaskResult, TriggerRequest
from cronframework.schedule.expression import parse_schedule
from cronframework.spec.model import JobSpec

NINE = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
NINE_01 = NINE + timedelta(minutes=1)
TOLERANCE = timedelta(seconds=30)
PREVIOUS = launch_name("j", NINE - timedelta(minutes=1))
AT_NINE = launch_name("j", NINE)
STILL_RUNNING = Verdict(False, f"skipped: previous launch {PREVIOUS} is still running (concurrency: forbid)")


def entry(concurrency: str = "allow", last: str | None = PREVIOUS, name: str = "j", **fields: object) -> Entry:
    spec = JobSpec.model_validate(
        {"name": name, "schedule": "* * * * *", "concurrency": concurrency, "task": {"command": ["/bin/true"]}} | fields
    )
    return Entry(spec, parse_schedule(spec.schedule, job=name), NINE, last)


def trigger(job: str = "j", *, seconds: float = 0.5, force: bool = False) -> TriggerRequest:
    return TriggerRequest(f"t-{job}", job, NINE + timedelta(seconds=seconds), force)


def tick(due: list[Entry], triggers: Sequence[TriggerRequest] = (), *, paused: Set[str] = frozenset()) -> TickPlan:
    """The tick one second after nine, with `due` the due jobs and also the jobs triggers may name."""
    jobs = {e.spec.name: e for e in due}
    return plan_tick(due, triggers, jobs.get, now=NINE + timedelta(seconds=1), tolerance=TOLERANCE, paused=paused)


def outcome(items: list[Planned]) -> list[tuple[str, str | None, str | None]]:
    """(launch, skip reason, last launch after it) per item."""
    return [(p.identity.name, p.skip_reason, p.next_state.last_launch) for p in items]


def test_an_allow_job_on_time_launches_and_asks_nothing() -> None:
    plan = tick([entry()])
    assert plan.lookups == {} and plan.dropped == []
    items = settle(plan, {})
    assert outcome(items) == [(AT_NINE, None, AT_NINE)]
    assert items[0].next_state == JobState("j", NINE_01, AT_NINE) and items[0].deadline == NINE_01


def test_a_forbid_job_with_a_previous_launch_asks_about_exactly_that_launch() -> None:
    plan = tick([entry("forbid")])
    assert list(plan.lookups) == [PREVIOUS]
    assert outcome(settle(plan, {PREVIOUS: ALLOWED})) == [(AT_NINE, None, AT_NINE)]
    assert outcome(settle(plan, {PREVIOUS: STILL_RUNNING})) == [(AT_NINE, STILL_RUNNING.reason, PREVIOUS)]


def test_a_forbid_job_with_no_previous_launch_asks_nothing() -> None:
    plan = tick([entry("forbid", last=None)])
    assert plan.lookups == {}
    assert outcome(settle(plan, {})) == [(AT_NINE, None, AT_NINE)]


def test_replace_carries_the_launch_to_stop_after_sync_point_one() -> None:
    plan = tick([entry("replace")])
    [item] = settle(plan, {PREVIOUS: Verdict(True, replaces=(PREVIOUS,))})
    assert item.skip_reason is None and item.replaces == (PREVIOUS,)


OLDER = launch_name("j", NINE - timedelta(minutes=5))  # e.g. started by recovery after a restore


def live_tick(concurrency: str, last: str | None = PREVIOUS) -> TickPlan:
    jobs = {"j": entry(concurrency, last=last), "k": entry(concurrency, last=None, name="k")}
    live = {"j": {OLDER, PREVIOUS}}
    return plan_tick(
        list(jobs.values()),
        (),
        jobs.get,
        now=NINE + timedelta(seconds=1),
        tolerance=TOLERANCE,
        live=lambda job: live.get(job, set()),
    )


def test_a_forbid_job_asks_about_every_launch_that_may_still_run_not_only_its_last() -> None:
    plan = live_tick("forbid")
    assert plan.alongside == {"j": (OLDER,)}, "k has nothing else that may run"
    assert set(plan.lookups) == {PREVIOUS, OLDER}
    verdicts = {name: ALLOWED for name in plan.lookups}
    older_runs = Verdict(False, f"skipped: previous launch {OLDER} is still running (concurrency: forbid)")
    assert outcome(settle(plan, verdicts))[0] == (AT_NINE, None, AT_NINE)
    assert outcome(settle(plan, {**verdicts, OLDER: older_runs}))[0] == (AT_NINE, older_runs.reason, PREVIOUS)
    assert outcome(settle(live_tick("forbid", last=None), {PREVIOUS: ALLOWED, OLDER: older_runs}))[0] == (
        AT_NINE,
        older_runs.reason,
        None,
    )


def test_replace_stops_every_launch_that_still_runs() -> None:
    plan = live_tick("replace")
    verdicts = {name: ALLOWED for name in plan.lookups}
    verdicts |= {PREVIOUS: Verdict(True, replaces=(PREVIOUS,)), OLDER: Verdict(True, replaces=(OLDER,))}
    assert settle(plan, verdicts)[0].replaces == (PREVIOUS, OLDER)


def test_a_trigger_in_the_tick_of_its_forbid_jobs_instant_loses_to_it() -> None:
    plan = tick([entry("forbid")], [trigger()])
    assert list(plan.lookups) == [PREVIOUS]  # one lookup: the trigger needs none
    instant, manual = settle(plan, {PREVIOUS: ALLOWED})
    assert (instant.skip_reason, instant.next_state.last_launch) == (None, AT_NINE)
    assert manual.identity.manual and manual.trigger_id == "t-j"
    assert "begun in the same tick" in (manual.skip_reason or "") and manual.next_state.last_launch == AT_NINE


def test_when_the_previous_launch_still_runs_both_the_instant_and_the_trigger_are_skipped() -> None:
    plan = tick([entry("forbid")], [trigger()])
    items = settle(plan, {PREVIOUS: STILL_RUNNING})
    assert [p.skip_reason for p in items] == [STILL_RUNNING.reason, STILL_RUNNING.reason]
    assert {p.next_state.last_launch for p in items} == {PREVIOUS}


def test_two_triggers_of_a_replace_job_in_one_tick_start_one_run() -> None:
    due = entry("replace")
    plan = plan_tick([], [trigger(seconds=0.2), trigger(seconds=0.4)], {"j": due}.get, now=NINE, tolerance=TOLERANCE)
    first, second = settle(plan, {PREVIOUS: Verdict(True, replaces=(PREVIOUS,))})
    assert first.skip_reason is None and first.replaces == (PREVIOUS,)
    assert "begun in the same tick" in (second.skip_reason or "") and second.replaces == ()


def test_a_forced_trigger_launches_without_asking() -> None:
    due = entry("forbid")
    plan = plan_tick([], [trigger(force=True)], {"j": due}.get, now=NINE, tolerance=TOLERANCE)
    assert plan.lookups == {}
    [item] = settle(plan, {})
    assert item.skip_reason is None and item.next_state == JobState("j", NINE, item.identity.name)


def test_a_trigger_for_a_job_that_is_not_scheduled_is_dropped() -> None:
    plan = tick([entry()], [trigger("gone")])
    assert [r.job for r in plan.dropped] == ["gone"] and len(settle(plan, {})) == 1


def test_a_paused_job_records_its_instant_skipped_and_asks_nothing() -> None:
    plan = tick([entry("forbid")], paused={"j"})
    assert plan.lookups == {}
    assert outcome(settle(plan, {})) == [(AT_NINE, "paused", PREVIOUS)]


def test_a_trigger_sees_the_watermark_its_jobs_due_instant_left() -> None:
    plan = tick([entry()], [trigger()])
    instant, manual = settle(plan, {})
    assert instant.next_state.next_scheduled == manual.next_state.next_scheduled == NINE_01
    assert manual.next_state.last_launch == manual.identity.name  # allow: both run


def test_a_staged_launch_counts_as_begun_for_a_trigger_read_at_the_instant() -> None:
    due = entry("forbid", last=None)
    staged = settle(tick([due]), {})
    plan = plan_tick([], [trigger()], {"j": due}.get, now=NINE, tolerance=TOLERANCE, earlier=staged)
    assert plan.lookups == {}
    [manual] = settle(plan, {}, staged)
    assert "begun in the same tick" in (manual.skip_reason or "") and manual.next_state.last_launch == AT_NINE


def test_instants_missed_together_under_forbid_keep_only_the_latest_and_ask_once() -> None:
    late = Entry(entry("forbid").spec, entry().schedule, NINE - timedelta(minutes=3), PREVIOUS)
    plan = tick([late])
    items = settle(plan, {PREVIOUS: ALLOWED})
    launched = [p.identity.name for p in items if p.skip_reason is None]
    assert launched == [AT_NINE] and list(plan.lookups) == [PREVIOUS]
    assert items[-1].next_state.next_scheduled == NINE_01


@pytest.mark.parametrize("concurrency", ["allow", "forbid"])
def test_only_a_job_s_last_item_of_the_tick_moves_its_watermark(concurrency: str) -> None:
    """Sync point one may apply part of a tick: after a conflict its launches are begun one by one, and ZooKeeper
    can go away midway. Each record carries its job's state; had every one carried the tick's final watermark, the
    first one written would have moved the job past the instants whose records never were (found by the
    60-minute process run: 14 instants of a job with no record at all). A record newer than its watermark is
    refused as already recorded when the instant is decided again."""
    late = Entry(entry(concurrency).spec, entry().schedule, NINE - timedelta(minutes=3), PREVIOUS)
    items = settle(tick([late]), {PREVIOUS: ALLOWED})
    assert len(items) == 4
    assert [p.next_state.next_scheduled for p in items] == [late.watermark] * 3 + [NINE_01]


# -- retries (`retry:`) -------------------------------------------------------------------------------------------
FAILED_RUN = LaunchIdentity("j", NINE - timedelta(minutes=1))


def ended_run(
    result: TaskResult = TaskResult.FAILED, attempt: int = 1, ended: datetime = NINE - timedelta(seconds=50)
) -> LaunchRecord:
    launched = LaunchRecord.begin(FAILED_RUN.retry(attempt), leader="r1", epoch=1, now=FAILED_RUN.scheduled)
    return launched.finish(Outcome.SUBMITTED, now=FAILED_RUN.scheduled).with_result(result, ended_at=ended)


def spec_with(retry: dict[str, object] | None) -> JobSpec:
    return entry(retry=retry).spec


@pytest.mark.parametrize(
    ("record", "retry", "at"),
    [
        (ended_run(TaskResult.SUCCEEDED), {"attempts": 3, "backoff": "10s"}, None),
        (ended_run(), None, None),
        (ended_run(TaskResult.LOST), {"attempts": 3, "backoff": "10s", "on": ["failed"]}, None),
        (ended_run(attempt=3), {"attempts": 3, "backoff": "10s"}, None),
        (ended_run(), {"attempts": 3, "backoff": "10s"}, NINE - timedelta(seconds=40)),
        (ended_run(attempt=2), {"attempts": 3, "backoff": "10s"}, NINE - timedelta(seconds=30)),  # doubled
        (ended_run(attempt=4), {"attempts": 9, "backoff": "10s", "max_backoff": "25s"}, NINE - timedelta(seconds=25)),
        (ended_run(), {"attempts": 3, "backoff": "50s"}, None),  # at nine: the job's next instant comes first
        (ended_run(), {"attempts": 3, "backoff": "50s", "past_next": True}, NINE),
    ],
)
def test_a_retry_is_decided_from_the_run_that_ended(
    record: LaunchRecord, retry: dict[str, object] | None, at: datetime | None
) -> None:
    assert decide_retry(record, spec_with(retry), next_instant=NINE).at == at


def due_retry(deadline: datetime | None = NINE_01) -> DueRetry:
    return DueRetry(FAILED_RUN.retry(2), FAILED_RUN.name, deadline)


def retry_tick(target: Entry, *, paused: Set[str] = frozenset(), at: datetime = NINE) -> TickPlan:
    jobs = {target.spec.name: target}
    return plan_tick([], [], jobs.get, now=at, tolerance=TOLERANCE, paused=paused, retries=[due_retry()])


def test_a_due_retry_launches_under_its_own_name_and_becomes_the_job_s_last_launch() -> None:
    plan = retry_tick(entry(last=FAILED_RUN.name))
    assert plan.lookups == {}
    [item] = settle(plan, {})
    assert (item.identity.name, item.skip_reason, item.retry_of) == (f"{FAILED_RUN.name}-a2", None, FAILED_RUN.name)
    assert item.next_state == JobState("j", NINE, f"{FAILED_RUN.name}-a2") and item.deadline == NINE_01


def test_a_retry_of_a_forbid_job_asks_about_the_job_s_last_launch_and_waits_for_it() -> None:
    plan = retry_tick(entry("forbid", last=AT_NINE))
    assert list(plan.lookups) == [AT_NINE]
    still = Verdict(False, f"skipped: previous launch {AT_NINE} is still running (concurrency: forbid)")
    [item] = settle(plan, {AT_NINE: still})
    assert item.skip_reason == still.reason and item.retry_of == FAILED_RUN.name


def test_a_retry_under_replace_stops_nothing() -> None:
    plan = retry_tick(entry("replace", last=AT_NINE))
    [item] = settle(plan, {AT_NINE: Verdict(True, replaces=(AT_NINE,))})
    assert item.replaces == () and item.skip_reason is not None and "stops nothing" in item.skip_reason


def test_a_retry_is_skipped_when_paused_or_past_its_deadline_and_dropped_when_unscheduled() -> None:
    [paused] = settle(retry_tick(entry(), paused={"j"}), {})
    assert paused.skip_reason == "paused"
    [late] = settle(retry_tick(entry(), at=NINE_01), {})
    assert late.skip_reason is not None and "next instant" in late.skip_reason
    plan = plan_tick([], [], {}.get, now=NINE, tolerance=TOLERANCE, retries=[due_retry()])
    assert plan.intents == [] and plan.dropped_retries == [due_retry()]


# -- after a restore: what the old cluster may have launched is found by name before it is decided -----------------
RESTORED = NINE + timedelta(minutes=2, seconds=30)
DONE = BackendStatus(LaunchState.SUCCEEDED)
RUNNING = BackendStatus(LaunchState.RUNNING)


def replay(concurrency: str, replayed_before: datetime | None = RESTORED) -> TickPlan:
    """A forbid/replace job replaying 09:00, 09:01 and 09:02 at once (catch-up: all), the store restored at 09:02:30."""
    due = entry(concurrency, catchup={"policy": "all"})
    now = NINE + timedelta(minutes=2, seconds=1)
    return plan_tick([due], [], {}.get, now=now, tolerance=TOLERANCE, replayed_before=replayed_before)


def test_a_restore_s_replayed_instants_that_may_be_skipped_are_to_be_found_by_name() -> None:
    minutes = [launch_name("j", NINE + timedelta(minutes=m)) for m in range(3)]
    assert list(replay("forbid").finds) == minutes
    assert replay("forbid", replayed_before=None).finds == {}
    assert replay("forbid", replayed_before=NINE + timedelta(seconds=30)).finds.keys() == {minutes[0]}
    assert replay("allow").finds == {}, "a launch by name finds what exists anyway; nothing of it is skipped"
    due = entry("forbid", last=None)
    plan = plan_tick([], [trigger()], {"j": due}.get, now=NINE_01, tolerance=TOLERANCE, replayed_before=RESTORED)
    assert list(plan.finds) == [launch_name("j", trigger().requested_at, manual=True)], "a trigger left pending"


def test_a_replayed_instant_the_backend_has_is_launched_by_name_and_is_the_next_one_s_previous() -> None:
    at_01, at_02 = (launch_name("j", NINE + timedelta(minutes=m)) for m in (1, 2))
    plan = replay("forbid")
    found = {AT_NINE: None, at_01: DONE, at_02: None}
    items = settle(plan, {PREVIOUS: ALLOWED}, found=found)
    assert [(name, reason is None) for name, reason, _ in outcome(items)] == [
        (AT_NINE, False),  # superseded, and nobody launched it
        (at_01, True),  # launched before the loss: its submit by name finds it
        (at_02, True),  # its previous launch, found, has ended
    ]
    assert items[1].deadline is None
    items = settle(plan, {PREVIOUS: ALLOWED}, found={**found, at_01: RUNNING})
    assert items[2].skip_reason == f"skipped: previous launch {at_01} is still running (concurrency: forbid)"
    assert settle(replay("replace"), {PREVIOUS: ALLOWED}, found={**found, at_01: RUNNING})[2].replaces == (at_01,)


def test_a_replay_the_backend_answered_in_part_is_decided_up_to_its_first_unanswered_launch() -> None:
    at_01, at_02 = (launch_name("j", NINE + timedelta(minutes=m)) for m in (1, 2))
    plan, waiting = hold_unanswered(replay("forbid"), {AT_NINE: None, at_02: DONE})
    assert waiting == {"j"}
    assert [i.identity.name for i in plan.intents] == [AT_NINE], "09:01 unanswered: nothing from it on"
    assert plan.watermarks["j"] == plan.intents[0].watermark == NINE + timedelta(minutes=1), "09:01 comes again"
    assert plan.finds.keys() == {AT_NINE}, "09:02's answer is not used up: it is kept for the next tick"
    assert plan.lookups == {} and plan.alongside == {}, "the previous launch is asked about by the launch it serves"
    [skipped] = settle(plan, {}, found={AT_NINE: None})
    assert skipped.skip_reason is not None and skipped.next_state.next_scheduled == NINE + timedelta(minutes=1)
    none, waiting = hold_unanswered(replay("forbid"), {at_01: None, at_02: None})
    assert waiting == {"j"} and none.intents == [] and "j" not in none.watermarks, "09:00 unanswered: held whole"
    whole, waiting = hold_unanswered(replay("forbid"), {AT_NINE: None, at_01: None, at_02: None})
    assert waiting == set() and len(whole.intents) == 3 and whole.lookups.keys() == {PREVIOUS}


def test_a_retry_past_its_deadline_after_a_restore_is_found_first() -> None:
    target = entry()
    plan = plan_tick(
        [], [], {"j": target}.get, now=NINE_01, tolerance=TOLERANCE, retries=[due_retry()], replayed_before=RESTORED
    )
    name = FAILED_RUN.retry(2).name
    assert list(plan.finds) == [name]
    [skipped] = settle(plan, {}, found={name: None})
    assert skipped.skip_reason is not None and "next instant" in skipped.skip_reason
    [made] = settle(plan, {}, found={name: DONE})
    assert made.skip_reason is None and made.retry_of == FAILED_RUN.name


def test_a_restore_s_instants_older_than_the_catch_up_window_are_each_found_by_name() -> None:
    """A snapshot older than the catch-up window: its instants from the watermark up to the restore were not
    summarised as one stale record (the old cluster may have launched each); each is found by name, launched by
    name when the backend has it, and skipped on its own record when it has not."""
    due = entry("allow", catchup={"policy": "all", "window": "1m"})
    now = NINE + timedelta(minutes=5)
    restored = NINE + timedelta(minutes=2, seconds=30)
    plan = plan_tick([due], [], {}.get, now=now, tolerance=TOLERANCE, replayed_before=restored)
    replayed = [launch_name("j", NINE + timedelta(minutes=m)) for m in range(3)]
    assert list(plan.finds) == replayed
    items = settle(plan, {}, found={replayed[0]: None, replayed[1]: DONE, replayed[2]: None})
    decided = {p.identity.name: p.skip_reason for p in items}
    assert decided[replayed[1]] is None, "launched before the loss: recorded as launched by name"
    assert decided[replayed[0]] is not None and decided[replayed[2]] is not None
    stale = [p for p in items if p.identity.scheduled >= restored and p.skip_reason is not None]
    assert [p.identity.name for p in stale] == [launch_name("j", NINE + timedelta(minutes=3))], "one stale record"
    assert items[-1].identity.name == launch_name("j", now) and items[-1].skip_reason is None

"""Deciding apart from doing: one tick of the leader as a value.

`plan_tick` reads nothing and calls nothing: given the due jobs, the manual triggers, the pause flags and the time,
it says which instants launch, which are skipped and why, and which launches wait for the previous launch's status
(`concurrency: forbid | replace`). The leader then asks the backend about exactly those previous launches and
`settle` turns the plan and the answers into the sync-point-one items the launcher runs. Both are pure, so every
scheduling decision is tested on values (tests/test_plan.py) and the leader only carries them out.

Order inside a tick: the due instants first, then the triggers, then the retries whose time has come. Within one job
a launch decided earlier in the tick is not in the backend yet, so a later `forbid`/`replace` launch of the same job
in that tick is skipped without a lookup (`concurrency.begun_in_the_same_tick`): a trigger read in the tick of its
job's instant loses to it.

Retries (`retry:`) are decided here too: `decide_retry` says whether and when a run that ended is run again, and a
due retry is an intent like a trigger's, with its own name (`<launch>-a<N>`), through both sync points.

After a restore (docs/backups.md) the store's records end with the snapshot, while the backend may hold what the old
cluster launched after it. An instant, a trigger or a retry from before the restore (`replayed_before`) that the tick
would skip, or launch only after asking about its previous launch, is first found by name (`TickPlan.finds`): one the
backend has is launched by name, which finds it (`already_existed`), instead of being recorded skipped; it is then
the previous launch the job's next launch asks about. A job with such a launch the backend cannot answer about is
decided in that tick up to that launch and no further (`hold_unanswered`): its watermark stops there until an answer
comes, and what the answers so far allowed is written down, so a leader deposed after one tick still moves it on.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence, Set
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import NamedTuple

from cronframework.engine.concurrency import ALLOWED, Verdict, after_previous, begun_in_the_same_tick, together
from cronframework.engine.dispatcher import Entry
from cronframework.engine.policy import decide_instants
from cronframework.launch import BackendStatus
from cronframework.naming import LaunchIdentity
from cronframework.records import JobState, LaunchRecord, TaskResult, TriggerRequest
from cronframework.spec.model import Concurrency, JobSpec

TRIGGER_DEADLINE = timedelta(minutes=5)  # a manual launch's submit retries stop this long after it was read


@dataclass(frozen=True, slots=True)
class Planned:
    """One decided instant, as sync point one writes it: launch it (`skip_reason` None) or record it skipped.
    `replaces` names the launches that `concurrency: replace` stops once this record is written."""

    identity: LaunchIdentity
    spec: JobSpec
    next_state: JobState
    skip_reason: str | None = None
    trigger_id: str | None = None
    deadline: datetime | None = None
    replaces: tuple[str, ...] = ()
    retry_of: str | None = None  # a retry: the run it retries
    replayed: bool = False  # decided again after a restore: the cluster the restore replaced may have launched it


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """Whether a run that ended is run again: at `at` (None: not retried), and why, for the log."""

    at: datetime | None
    why: str


@dataclass(frozen=True, slots=True)
class DueRetry:
    """A retry whose time has come: `identity` is the next run of `previous`; it may not start at or after
    `deadline` (the job's next instant; None with `retry.past_next`)."""

    identity: LaunchIdentity
    previous: str
    deadline: datetime | None


def decide_retry(record: LaunchRecord, spec: JobSpec | None, next_instant: datetime | None) -> RetryDecision:
    """For a record whose result was just learned: its next run's time, after `retry.backoff` doubled per run and
    capped, from when it ended. Never at or past the job's next instant (`next_instant`), unless `retry.past_next`."""
    policy = spec.retry if spec is not None else None
    if record.result is None or record.result is TaskResult.SUCCEEDED or policy is None:
        return RetryDecision(None, "no retry: succeeded, or no retry policy")
    if record.result.value not in policy.on:
        return RetryDecision(None, f"no retry: a {record.result.value} result is not retried (retry.on)")
    if record.task_attempt >= policy.attempts:
        return RetryDecision(None, f"no retry: {policy.attempts} attempt(s) made (retry.attempts)")
    ended = record.ended_at or record.finished_at or record.scheduled
    at = ended + policy.delay(record.task_attempt)
    if not policy.past_next and next_instant is not None and at >= next_instant:
        return RetryDecision(None, f"no retry: it would start at {at.isoformat()}, not before the job's next instant")
    return RetryDecision(at, f"attempt {record.task_attempt + 1} of {policy.attempts} at {at.isoformat()}")


class Intent(NamedTuple):
    """An instant of the tick before its verdict: a skip already decided, a launch, or a launch that waits for the
    previous launch's status (`checked`). A tuple: a herd makes ten thousand of them per tick."""

    identity: LaunchIdentity
    spec: JobSpec
    watermark: datetime  # the job's next watermark once this tick is done
    skip: str | None = None
    checked: bool = False
    trigger_id: str | None = None
    deadline: datetime | None = None
    retry_of: str | None = None


@dataclass(frozen=True)
class TickPlan:
    intents: list[Intent] = field(default_factory=list)
    before: dict[str, str | None] = field(default_factory=dict)  # each job's last launch before this tick
    watermarks: dict[str, datetime] = field(default_factory=dict)  # each due job's next watermark
    lookups: dict[str, JobSpec] = field(default_factory=dict)  # previous launches to ask the backend about
    # each checked job's older launches that may still run (followed to their end, or open), asked about too
    alongside: dict[str, tuple[str, ...]] = field(default_factory=dict)
    dropped: list[TriggerRequest] = field(default_factory=list)  # triggers for jobs that are not scheduled
    dropped_retries: list[DueRetry] = field(default_factory=list)  # retries of jobs that are not scheduled
    finds: dict[str, JobSpec] = field(default_factory=dict)  # a restore's replayed launches to find by name
    replayed_before: datetime | None = None  # the restore the store came from, if any


def plan_tick(
    due: Sequence[Entry],
    triggers: Sequence[TriggerRequest],
    scheduled: Callable[[str], Entry | None],
    *,
    now: datetime,
    tolerance: timedelta,
    paused: Set[str] = frozenset(),
    earlier: Sequence[Planned] = (),
    retries: Sequence[DueRetry] = (),
    replayed_before: datetime | None = None,
    live: Callable[[str], Collection[str]] | None = None,
) -> TickPlan:
    """The tick's decisions. `scheduled` finds a job the leader schedules (for triggers and retries); `earlier` are
    the items this tick already decided (a stage built before the instant), which later decisions must see;
    `replayed_before` is the time of the restore the store came from, if any (module docstring); `live` names a
    job's launches that may still run (followed, or open): a checked launch asks about each, not only the last."""
    plan = TickPlan(replayed_before=replayed_before)
    watermarks = {p.spec.name: p.next_state.next_scheduled for p in earlier}
    for entry in due:
        watermarks[entry.spec.name] = plan.watermarks[entry.spec.name] = _plan_due(
            plan, entry, now, tolerance, entry.spec.name in paused, replayed_before
        )
    for request in triggers:
        target = scheduled(request.job)
        if target is None:
            plan.dropped.append(request)
            continue
        _note(plan, target)
        watermark = watermarks.get(target.spec.name) or target.watermark
        checked = not request.force and target.spec.concurrency is not Concurrency.ALLOW
        identity = LaunchIdentity(target.spec.name, request.requested_at, manual=True)
        plan.intents.append(
            Intent(identity, target.spec, watermark, None, checked, request.id, deadline=now + TRIGGER_DEADLINE)
        )
        if checked:  # a trigger the snapshot holds pending may have been launched by the old cluster since
            _find_replayed(plan, target.spec, [identity], replayed_before)
    for retry in retries:
        _plan_retry(plan, retry, scheduled, watermarks, now, paused, replayed_before)
    _add_lookups(plan, live)
    return plan


def _plan_retry(
    plan: TickPlan,
    retry: DueRetry,
    scheduled: Callable[[str], Entry | None],
    watermarks: Mapping[str, datetime | None],
    now: datetime,
    paused: Set[str],
    replayed_before: datetime | None,
) -> None:
    """A due retry: launched like a trigger (through `concurrency`), or recorded skipped when its job is paused or
    its deadline has passed (the leader was away); dropped when its job is no longer scheduled. After a restore the
    old cluster may have launched it already: found by name first (module docstring)."""
    target = scheduled(retry.identity.job)
    if target is None:
        plan.dropped_retries.append(retry)
        return
    _note(plan, target)
    spec = target.spec
    skip = None
    if spec.name in paused:
        skip = "paused"
    elif retry.deadline is not None and now >= retry.deadline:
        skip = "skipped: the retry's time passed the job's next instant (retry.past_next: false)"
    checked = spec.concurrency is not Concurrency.ALLOW
    watermark = watermarks.get(spec.name) or target.watermark
    plan.intents.append(
        Intent(retry.identity, spec, watermark, skip, checked, deadline=retry.deadline, retry_of=retry.previous)
    )
    if skip is not None or checked:
        _find_replayed(plan, spec, [retry.identity], replayed_before)


def _plan_due(
    plan: TickPlan, entry: Entry, now: datetime, tolerance: timedelta, paused: bool, replayed_before: datetime | None
) -> datetime:
    spec = entry.spec
    first = len(plan.intents)
    decided = decide_instants(
        spec, entry.schedule, entry.watermark, now, tolerance=tolerance, paused=paused, replayed_before=replayed_before
    )
    watermark = decided.watermark or entry.watermark
    _note(plan, entry)
    exclusive = spec.concurrency is not Concurrency.ALLOW
    if replayed_before is not None:  # a stale range is one record for many instants: nothing to find by one name
        maybe_skipped = [s.identity for s in decided.skips if not s.stale] + (decided.launches if exclusive else [])
        _find_replayed(plan, spec, maybe_skipped, replayed_before)
    if decided.skips:
        plan.intents.extend([Intent(skip.identity, spec, watermark, skip.reason) for skip in decided.skips])
    launches = decided.launches
    if exclusive and len(launches) > 1:
        reason = f"skipped: superseded by a later instant in the same tick (concurrency: {spec.concurrency})"
        plan.intents.extend(Intent(identity, spec, watermark, reason) for identity in launches[:-1])
        launches = launches[-1:]
    plan.intents.extend([Intent(i, spec, watermark, None, exclusive, None, watermark) for i in launches])
    _hold_watermark(plan.intents, first, entry.watermark)
    return watermark


def _hold_watermark(intents: list[Intent], first: int, held: datetime) -> None:
    """Every one of a job's items but its last keeps the job's watermark where it was: each is written with its own
    record, and sync point one may apply only some of them (one by one after a conflict, ZooKeeper lost midway).
    A watermark ahead of a record never written would lose that instant; a record ahead of its watermark is only
    refused as already recorded when the instant is decided again."""
    for index in range(first, len(intents) - 1):
        intents[index] = intents[index]._replace(watermark=held)


def _find_replayed(
    plan: TickPlan, spec: JobSpec, identities: Sequence[LaunchIdentity], replayed_before: datetime | None
) -> None:
    """The launches among `identities` that the cluster a restore replaced may have made: scheduled before it."""
    if replayed_before is None:
        return
    for identity in identities:
        if _replayed(identity, replayed_before):
            plan.finds[identity.name] = spec


def _replayed(identity: LaunchIdentity, replayed_before: datetime | None) -> bool:
    """Scheduled before the restore: the cluster it replaced may have launched it (module docstring)."""
    return replayed_before is not None and identity.scheduled < replayed_before


def _note(plan: TickPlan, entry: Entry) -> None:
    plan.before.setdefault(entry.spec.name, entry.last_launch)


def hold_unanswered(plan: TickPlan, found: Mapping[str, BackendStatus | None]) -> tuple[TickPlan, set[str]]:
    """The plan decided up to each job's first replayed launch the backend could not answer about (in
    `plan.finds`, absent from `found`), and the jobs with such a launch. Deciding past it on the plan's word alone
    could record skipped a launch the old cluster made (module docstring). A job's items before it are kept and its
    watermark stops at it, so the answers one tenure got are written down and the next leader goes on from there;
    a job none of whose items is kept is decided in a later tick, its watermark where it was."""
    unanswered = {name for name in plan.finds if name not in found}
    if not unanswered:
        return plan, set()
    cut: dict[str, Intent] = {}  # each waiting job's first unanswered item
    intents: list[Intent] = []
    last: dict[str, int] = {}  # each job's last kept item, by index in `intents`
    for intent in plan.intents:
        job = intent.spec.name
        if job in cut:
            continue
        if intent.identity.name in unanswered:
            cut[job] = intent
            continue
        last[job] = len(intents)
        intents.append(intent)
    watermarks = {job: at for job, at in plan.watermarks.items() if job not in cut or job in last}
    for job, first in cut.items():
        if job in last and job in watermarks and _due_instant(first):
            watermarks[job] = first.identity.scheduled  # every instant before it is decided
            intents[last[job]] = intents[last[job]]._replace(watermark=first.identity.scheduled)
    # a job's lookups serve its first launch of the tick: not needed when none of its launches is kept
    unasked = cut.keys() - {i.spec.name for i in intents if i.skip is None}
    decided = {i.identity.name for i in intents}
    kept = replace(
        plan,
        intents=intents,
        watermarks=watermarks,
        lookups={name: spec for name, spec in plan.lookups.items() if spec.name not in unasked},
        alongside={job: older for job, older in plan.alongside.items() if job not in unasked},
        finds={name: spec for name, spec in plan.finds.items() if name in decided},  # the rest's answers are kept
    )
    return kept, set(cut)


def _due_instant(intent: Intent) -> bool:
    """An item of the job's schedule, not a trigger or a retry (those come after the schedule's in a tick)."""
    return intent.trigger_id is None and intent.retry_of is None and not intent.identity.manual


def _add_lookups(plan: TickPlan, live: Callable[[str], Collection[str]] | None) -> None:
    """A lookup for each job whose first launch of the tick is checked: of its previous launch, and of every older
    one that may still run (`live`). After a restore, recovery may start an old launch the snapshot held open while
    the replay finds later ones the old cluster made: the job's last launch is then not the only one that may run.
    A checked launch after another launch of the same tick needs none (see `settle`); staged launches never have a
    previous launch to ask about (`staging.stageable`)."""
    seen: set[str] = set()
    for intent in plan.intents:
        job = intent.spec.name
        if intent.skip is not None or job in seen:
            continue
        seen.add(job)
        if not intent.checked:
            continue
        previous = plan.before[job]
        if previous is not None:
            plan.lookups[previous] = intent.spec
        others = tuple(sorted(name for name in live(job) if name != previous)) if live is not None else ()
        if others:
            plan.alongside[job] = others
            plan.lookups.update(dict.fromkeys(others, intent.spec))


def settle(
    plan: TickPlan,
    verdicts: Mapping[str, Verdict],
    earlier: Sequence[Planned] = (),
    found: Mapping[str, BackendStatus | None] | None = None,
) -> list[Planned]:
    """The plan's items once the backend has answered about each previous launch in `plan.lookups` (`verdicts`,
    keyed by that launch's name) and about the launches in `plan.finds` (`found`: its status, None when it has no
    such launch; a launch it could not answer about is left out, and the plan's decision stands). Each item carries
    the job's state after it: the running last launch."""
    found = found or {}
    running = dict(plan.before)
    for item in earlier:
        running[item.spec.name] = item.next_state.last_launch
    out: list[Planned] = []
    for intent in plan.intents:
        job = intent.spec.name
        last = running[job]
        made = found.get(intent.identity.name) is not None  # by the cluster the store was restored from
        verdict = ALLOWED if intent.skip is None or made else Verdict(False, intent.skip)
        others = plan.alongside.get(job, ())
        if intent.skip is None and intent.checked and (last is not None or others) and not made:
            verdict = _after(intent.spec, last, plan.before[job], others, verdicts, found)
        if intent.retry_of is not None and verdict.replaces:
            verdict = Verdict(
                False,
                f"skipped: a later launch {', '.join(verdict.replaces)} runs, and a retry stops nothing "
                "(concurrency: replace)",
            )
        if verdict.launch:
            running[job] = intent.identity.name
        state = JobState(job, intent.watermark, running[job])
        reason = None if verdict.launch else verdict.reason
        out.append(
            Planned(
                intent.identity,
                intent.spec,
                state,
                reason,
                intent.trigger_id,
                None if made else intent.deadline,
                verdict.replaces,
                intent.retry_of,
                _replayed(intent.identity, plan.replayed_before),
            )
        )
    return out


def _after(
    spec: JobSpec,
    last: str | None,
    before: str | None,
    others: Sequence[str],
    verdicts: Mapping[str, Verdict],
    found: Mapping[str, BackendStatus | None],
) -> Verdict:
    """The verdict on a checked launch whose job's last launch is `last`: the backend's word on a launch found in
    this tick, on the launch before the tick (`verdicts`), or a launch decided in this tick that is not submitted
    yet; with the backend's word on each older launch that may still run (`others`)."""
    status = found.get(last) if last is not None else None
    if last is not None and status is not None:
        # found made by the old cluster earlier in this tick: the launch before the tick may still run beside it
        # (one recovery started after the restore), so its verdict counts too
        earlier = [verdicts[before]] if before is not None and before != last and before in verdicts else []
        first = together([after_previous(spec, last, status), *earlier])
    elif last is not None and last != before:
        return begun_in_the_same_tick(spec, last)
    else:
        first = verdicts[last] if last is not None else ALLOWED
    return together([first, *(verdicts[name] for name in others)])

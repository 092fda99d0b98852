"""The invariants of a chaos run, checked against evidence gathered from outside the replicas.

1. at most once: no launch identity has two backend launches, no task ran twice (its own output), no name was
   recorded submitted by two different epochs in the replicas' logs;
2. accounted for: every scheduled instant in the checked window has a finished record -- launched, or skipped /
   failed with a reason; a vanished or still-open instant is a violation; the store and the backend agree;
3. fenced: every backend launch was created by an epoch while that epoch led (after its start, before its end or
   any successor's start); zombie windows (a stopped or partitioned leader resumed) contain no launch of its epoch;
4. forbid held: no two runs of a `concurrency: forbid` job overlap, judged from the runs' own start and end lines;
5. followed to the end: every launched attempt in the window has its task's result recorded, and every failed
   attempt whose retry was due (`retry:`, before the job's next instant) has its next attempt recorded -- each
   attempt once, by name (invariant 1 covers its backend launches and task runs). An attempt whose run the backend
   had not ended when the results were judged owes no result yet, and is counted apart (`unended`).
6. on time by ZooKeeper's clock: no launch of a scheduled instant was created earlier than the instant minus the
   clock guard's bound (`max_clock_skew`), by the host's clock, which is ZooKeeper's; and a leader whose clock was
   off by more than that bound launched nothing while it was, and said why in its log;
7. a restore from a snapshot repeats no more than the snapshot's age: no instant before a job's watermark in the
   snapshot is decided again, and what was launched before the loss is found by name, not launched again; and the
   snapshot itself holds a record of every instant before each watermark (one it lacks is never decided again).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from cronframework.naming import LaunchIdentity, parse_launch_name
from cronframework.records import LaunchRecord, Outcome
from cronframework.schedule.expression import parse_schedule
from cronframework.spec.model import Retry
from integration.chaos_evidence import BackendLaunch, Evidence, Interval
from integration.chaos_faults import GUARD_SAYS, FaultEvent

LAUNCHED = (Outcome.SUBMITTED, Outcome.ALREADY_EXISTED)


@dataclass(frozen=True)
class Violation:
    invariant: str
    detail: str


@dataclass(frozen=True)
class Window:
    """Instants in (start, end] are checked: after the first leader's promotion, before the end margin."""

    start: datetime
    end: datetime


def _fmt(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%H:%M:%S.%f")[:-3]


# -- 1. at most once --------------------------------------------------------------------------------------------
def at_most_once(ev: Evidence) -> list[Violation]:
    out = []
    for name, n in Counter(launch.name for launch in ev.launches).items():
        if n > 1:
            out.append(Violation("at-most-once", f"{name}: {n} backend launches"))
    for name, n in Counter(line[0] for line in ev.task_lines).items():
        if n > 1:
            out.append(Violation("at-most-once", f"{name}: the task ran {n} times (its own output)"))
    epochs: dict[str, set[int]] = defaultdict(set)
    for event in ev.recorded:
        if event.get("outcome") == Outcome.SUBMITTED.value:
            epochs[str(event["launch"])].add(int(event["epoch"]))
    for name, seen in epochs.items():
        if len(seen) > 1:
            out.append(Violation("at-most-once", f"{name}: submitted by epochs {sorted(seen)} (replica logs)"))
    return out


# -- 2. accounted for -------------------------------------------------------------------------------------------
def accounted(ev: Evidence, schedules: dict[str, str], window: Window) -> tuple[list[Violation], Counter[str]]:
    out: list[Violation] = []
    outcomes: Counter[str] = Counter()
    for job, expression in schedules.items():
        records = {r.scheduled: r for r in ev.history.get(job, []) if not r.manual and r.task_attempt == 1}
        for instant in parse_schedule(expression, job=job).between(window.start, window.end):
            record = records.get(instant)
            name = f"{job}@{instant:%H:%M:%S}"
            if record is None:
                out.append(Violation("accounted", f"{name}: vanished (no record)"))
            elif record.open:
                out.append(Violation("accounted", f"{name}: still open at the end (begun by epoch {record.epoch})"))
            elif record.outcome not in LAUNCHED and not record.reason:
                out.append(Violation("accounted", f"{name}: {record.outcome} without a reason"))
            else:
                outcomes[str(record.outcome)] += 1
    return out, outcomes


def agreement(ev: Evidence, window: Window) -> list[Violation]:
    """The store and the backend tell the same story about which instants were launched."""
    out = []
    backend = {launch.name for launch in ev.launches}
    records = {r.name: r for history in ev.history.values() for r in history}
    for name in sorted(backend - set(records)):
        out.append(Violation("accounted", f"{name}: a backend launch with no record in the store"))
    for record in records.values():
        inside = window.start < record.scheduled <= window.end
        if inside and record.outcome in LAUNCHED and record.name not in backend:
            out.append(Violation("accounted", f"{record.name}: recorded {record.outcome} but the backend has none"))
        if inside and record.outcome not in LAUNCHED and record.outcome is not None and record.name in backend:
            out.append(Violation("accounted", f"{record.name}: recorded {record.outcome} but the backend has it"))
    return out


# -- 5. followed to the end ------------------------------------------------------------------------------------
def followed(ev: Evidence, jobs: Mapping[str, tuple[str, Retry | None]], window: Window) -> tuple[int, list[Violation]]:
    """(attempts judged, violations) for the scheduled instants of `jobs` (name -> schedule, retry policy) in the
    window: each launched attempt has a result; each failed one due a retry has its next attempt."""
    records = {r.name: r for history in ev.history.values() for r in history}
    running = _not_ended(ev)
    judged, out = 0, []
    for job, (expression, policy) in jobs.items():
        schedule = parse_schedule(expression, job=job)
        for instant in schedule.between(window.start, window.end):
            attempt = LaunchIdentity(job, instant)
            record = records.get(attempt.name)
            while record is not None and record.outcome in LAUNCHED and record.name not in running:
                judged += 1
                if record.result is None:
                    out.append(Violation("followed", f"{record.name}: launched, and no result recorded"))
                    break
                following = _retry_due(record, policy, schedule.next_after(instant))
                if following is None:
                    break
                attempt = attempt.retry(following)
                record = records.get(attempt.name)
                if record is None:
                    out.append(Violation("followed", f"{attempt.name}: a retry due and never recorded (lost)"))
    return judged, out


def unended(ev: Evidence, window: Window) -> int:
    """Launched attempts of the window that `followed` leaves out: the backend had not ended their run when the
    results were judged (not placed yet, or still running), so no result was owed."""
    records = {r.name: r for history in ev.history.values() for r in history}
    return sum(
        1
        for name in _not_ended(ev)
        if (record := records.get(name)) is not None and window.start < record.scheduled <= window.end
    )


def _not_ended(ev: Evidence) -> set[str]:
    return {launch.name for launch in ev.launches if launch.ended is False}


def _retry_due(record: LaunchRecord, policy: Retry | None, next_instant: datetime) -> int | None:
    """The attempt number `retry:` owes after `record`, or None (succeeded, not retried, out of attempts, or its
    time would have been the job's next instant or later)."""
    if policy is None or record.result is None or record.result.value not in policy.on:
        return None
    if record.task_attempt >= policy.attempts or record.ended_at is None:
        return None
    if record.ended_at + policy.delay(record.task_attempt) >= next_instant and not policy.past_next:
        return None
    return record.task_attempt + 1


# -- 3. fenced --------------------------------------------------------------------------------------------------
def fenced(ev: Evidence) -> list[Violation]:
    out = []
    by_epoch = {i.epoch: i for i in ev.intervals}
    for launch in ev.launches:
        if launch.epoch is None and launch.submitter_pid is not None:
            out += _fenced_by_pid(ev, launch)
            continue
        interval = by_epoch.get(launch.epoch) if launch.epoch is not None else None
        if interval is None:
            out.append(Violation("fenced", f"{launch.name}: created by epoch {launch.epoch}, which never led"))
        elif not interval.start <= launch.submitted_at <= interval.end:
            out.append(Violation("fenced", _outside(launch.name, launch.submitted_at, interval)))
    return out


def _fenced_by_pid(ev: Evidence, launch: BackendLaunch) -> list[Violation]:
    """A launch whose submit died between its claim and its spec (the process backend; a leader killed -9 in
    between) names no epoch, only the process that claimed it: it must have led then."""
    led = [i for i in ev.intervals if i.pid == launch.submitter_pid]
    if any(i.start <= launch.submitted_at <= i.end for i in led):
        return []
    at = _fmt(launch.submitted_at)
    return [Violation("fenced", f"{launch.name}: claimed at {at} by pid {launch.submitter_pid}, not leading then")]


def _outside(name: str, at: float, interval: Interval) -> str:
    return (
        f"{name}: created at {_fmt(at)} by epoch {interval.epoch} ({interval.replica}), "
        f"which led only {_fmt(interval.start)}..{_fmt(interval.end)}"
    )


def zombie_calls(ev: Evidence, faults: list[FaultEvent]) -> tuple[int, list[Violation]]:
    """Per zombie window (a leader resumed after its successor was elected): launches of the stale epoch after it."""
    windows = [f.zombie for f in faults if f.zombie is not None]
    out = []
    for replica, epoch, resumed in windows:
        for launch in ev.launches:
            if launch.epoch == epoch and launch.submitted_at >= resumed:
                out.append(Violation("fenced", f"{launch.name}: zombie {replica} (epoch {epoch}) launched it"))
    return len(windows), out


# -- 4. forbid held ---------------------------------------------------------------------------------------------
def no_overlap(ev: Evidence, forbid_jobs: Iterable[str]) -> tuple[int, list[Violation]]:
    """(runs judged, violations): a run of a `forbid` job that started before an earlier-started run of the same
    job had ended. A run without an end line (killed with its container, say) cannot be judged and is left out."""
    jobs = set(forbid_jobs)
    runs: dict[str, list[tuple[float, float, str]]] = defaultdict(list)  # job -> (start, end, launch)
    for span in ev.spans:
        job = parse_launch_name(span.launch).job
        if job in jobs and span.end is not None:
            runs[job].append((span.start, span.end, span.launch))
    out = []
    for job, spans in runs.items():
        spans.sort()
        longest = spans[0]  # of the runs started so far, the one that ended last
        for run in spans[1:]:
            if run[0] < longest[1]:
                detail = f"{job}: {run[2]} ({_span(run)}) started while {longest[2]} ({_span(longest)}) still ran"
                out.append(Violation("forbid", detail + " (the tasks' own lines; seconds of host uptime)"))
            longest = max(longest, run, key=lambda r: r[1])
    return sum(len(s) for s in runs.values()), out


def _span(run: tuple[float, float, str]) -> str:
    return f"{run[0]:.2f}..{run[1]:.2f}"


# -- 5. on time, by ZooKeeper's clock ------------------------------------------------------------------------------
# a launch the skewed leader had already begun when its clock jumped may still land just after the jump
IN_FLIGHT_AT_JUMP = 1.0


def not_early(ev: Evidence, tolerance: float) -> list[Violation]:
    out = []
    for launch in ev.launches:
        identity = parse_launch_name(launch.name)
        early = identity.scheduled.timestamp() - launch.submitted_at
        if not identity.manual and early > tolerance:
            out.append(Violation("on-time", f"{launch.name}: created {early:.1f}s before its instant"))
    return out


def clock_guarded(ev: Evidence, faults: list[FaultEvent], tolerance: float) -> list[Violation]:
    """A leader whose clock was off by more than `tolerance` launched no instant that only its clock found due
    (one scheduled after the skew took effect) while it was, and logged why. A backlog it had decided before the
    skew (a catch-up of hundreds of launches takes seconds) may still go out."""
    out = []
    for fault in faults:
        c = fault.clock
        if c is None or abs(c.skew) <= tolerance or c.epoch < 0:
            continue
        where = f"{c.replica} (epoch {c.epoch}) led with its clock {c.skew:+.0f}s off"
        if c.kept_leading and not c.guard_said:
            out.append(Violation("clock-guard", f"{where}; its log never said {GUARD_SAYS!r}"))
        for launch in ev.launches:
            identity = parse_launch_name(launch.name)
            if identity.manual or identity.scheduled.timestamp() <= c.applied or launch.epoch != c.epoch:
                continue
            if c.applied + IN_FLIGHT_AT_JUMP <= launch.submitted_at <= c.restored:
                at = _fmt(launch.submitted_at)
                out.append(Violation("clock-guard", f"{where} and launched {launch.name} at {at}"))
    return out


# -- 6. a restore repeats no more than the snapshot's age -----------------------------------------------------------
def restore_bounded(ev: Evidence, faults: list[FaultEvent]) -> tuple[int, list[Violation]]:
    """(instants before a loss decided again after its restore, violations): a restored cluster decided no instant
    before a job's watermark in the snapshot, and every launch made before the loss that it decided again it found
    by name (`already_existed`), never launched a second time. A launch is made when its task started: a Docker
    container created before the loss and started by the restored cluster is recorded `submitted`. A retry
    (`<launch>-aN`) is decided from its run's result, not from the watermark: a run the snapshot holds with its
    retry still to come is retried after the restore, and only the by-name rule judges it. An instant the snapshot
    placed before a watermark without its record (`Restore.unrecorded`) is lost with that snapshot."""
    repeated, out = 0, []
    for restore in (f.restore for f in faults if f.restore is not None):
        for name in restore.unrecorded:
            job = parse_launch_name(name).job
            detail = f"{name}: before {job}'s watermark in snapshot {restore.snapshot}, and no record of it there"
            out.append(Violation("restore", detail))
        # a container the old cluster created and never started was not made: whoever starts it submits it
        made = {launch.name for launch in ev.launches if launch.ran_from < restore.restored}
        for record in (r for records in ev.history.values() for r in records):
            if record.manual or record.begun_at is None or record.begun_at.timestamp() < restore.restored:
                continue
            mark = restore.watermarks.get(record.job)
            if mark is not None and record.scheduled < mark and record.task_attempt == 1:
                detail = f"{record.name}: decided again after the restore, before the snapshot's watermark {mark}"
                out.append(Violation("restore", detail))
            repeated += record.scheduled.timestamp() <= restore.lost
            # an undecided record is judged by `accounted` (still open at the end); a second run by at-most-once
            if record.name in made and record.outcome not in (Outcome.ALREADY_EXISTED, None):
                detail = f"{record.name}: launched before the loss, recorded {record.outcome} after the restore"
                out.append(Violation("restore", detail))
    return repeated, out


def launch_lags(ev: Evidence) -> list[float]:
    lags = []
    for launch in ev.launches:
        identity = parse_launch_name(launch.name)
        if not identity.manual and identity.attempt == 1:  # a retry starts late by design
            lags.append(launch.submitted_at - identity.scheduled.timestamp())
    return lags


def takeovers(ev: Evidence, faults: list[FaultEvent]) -> list[tuple[str, float, float | None]]:
    """(fault kind, seconds until a successor led, seconds until it had also finished promotion)."""
    out = []
    for fault in faults:
        for loss in fault.losses:
            nxt = [i for i in ev.intervals if i.epoch > loss.epoch and i.start >= loss.at]
            if nxt:
                first = min(nxt, key=lambda i: i.start)
                ready = first.took_over - loss.at if first.took_over is not None else None
                out.append((fault.kind, first.start - loss.at, ready))
    return out

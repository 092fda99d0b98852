"""Pure decisions for one job at one instant of the leader's loop: which due instants launch, which are skipped, why.

An instant is *missed* when a later instant of the same job is also due by the time the leader looks, or when it is
more than `tolerance` late. Missed instants follow the job's `catchup` policy; nothing is dropped without a record
(docs/design.md, "Catch-up"). Instants older than the catch-up window are summarised as one stale range, so a leader
that was away for a month writes one record, not a million. After a restore, the instants from the restored
watermark up to the restore (`replayed_before`) are never summarised: the cluster the restore replaced may have
launched each, so each is decided on its own record and found by name first (engine.plan).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import islice

from cronframework.naming import LaunchIdentity
from cronframework.schedule.duration import format_duration
from cronframework.schedule.expression import Schedule
from cronframework.spec.model import CatchupPolicy, JobSpec

MAX_ENUMERATED = 10_000  # due instants looked at one by one per job and tick; older ones join the stale range
ONE_SECOND = timedelta(seconds=1)


@dataclass(frozen=True)
class Skip:
    identity: LaunchIdentity
    reason: str
    stale: bool = False  # one record for a whole range of instants older than the catch-up window


@dataclass(frozen=True)
class InstantDecisions:
    job: str
    launches: list[LaunchIdentity] = field(default_factory=list)
    skips: list[Skip] = field(default_factory=list)
    watermark: datetime | None = None  # every instant before this one is decided

    @property
    def empty(self) -> bool:
        return not self.launches and not self.skips


def decide_instants(
    spec: JobSpec,
    schedule: Schedule,
    watermark: datetime,
    now: datetime,
    *,
    tolerance: timedelta,
    paused: bool = False,
    replayed_before: datetime | None = None,
) -> InstantDecisions:
    """Decide every instant in [watermark, now]; the next watermark is the first instant after now.
    `replayed_before`: the restore the store came from, if any (module docstring)."""
    single = _single_on_time(schedule, watermark, now, tolerance)
    if single is not None and not paused:  # the common case, kept to two schedule calls for herds
        instant, following = single
        return InstantDecisions(spec.name, [_id(spec, instant)], [], following)
    replayed, stale, instants = _due_instants(spec, schedule, watermark, now, replayed_before)
    next_watermark = schedule.next_after(now)
    if not instants and stale is None and not replayed:
        return InstantDecisions(spec.name, watermark=max(watermark, next_watermark) if watermark <= now else watermark)
    skips = replayed + ([stale] if stale else [])
    if paused:
        skips += [Skip(_id(spec, t), "paused") for t in instants]
        return InstantDecisions(spec.name, [], skips, next_watermark)
    launch_times, more_skips = _apply_catchup(spec, instants, now, tolerance)
    return InstantDecisions(spec.name, [_id(spec, t) for t in launch_times], skips + more_skips, next_watermark)


def _single_on_time(
    schedule: Schedule, watermark: datetime, now: datetime, tolerance: timedelta
) -> tuple[datetime, datetime] | None:
    """(instant, the one after it) when exactly one instant is due and it is on time; None otherwise."""
    if watermark > now or now - watermark > tolerance:
        return None
    instant = schedule.next_after(watermark - ONE_SECOND)
    if instant > now or now - instant > tolerance:
        return None
    following = schedule.next_after(instant)
    return (instant, following) if following > now else None


def _id(spec: JobSpec, instant: datetime) -> LaunchIdentity:
    return LaunchIdentity(spec.name, instant)


def _due_instants(
    spec: JobSpec, schedule: Schedule, watermark: datetime, now: datetime, replayed_before: datetime | None
) -> tuple[list[Skip], Skip | None, list[datetime]]:
    """(instants older than the catch-up window that a restore replays, each its own skip; the stale range of
    the older ones left; the instants within the window)."""
    cutoff = now - spec.catchup.window
    start = watermark - ONE_SECOND  # `between` excludes its start; the watermark itself may be an instant
    replayed: list[Skip] = []
    stale: Skip | None = None
    if watermark < cutoff:
        old = f"older than the catch-up window ({spec.catchup.window})"
        if replayed_before is not None and replayed_before > watermark:
            last = min(cutoff, replayed_before - timedelta(microseconds=1))
            times = list(islice(schedule.between(start, last), MAX_ENUMERATED))  # any after them: the stale range
            replayed = [Skip(_id(spec, t), f"missed: {old}, decided again after a restore") for t in times]
            start = times[-1] if len(times) == MAX_ENUMERATED else max(start, last)
        last_stale = schedule.latest_at_or_before(cutoff, not_before=start + ONE_SECOND)
        if last_stale is not None:
            first = schedule.next_after(start)
            stale = Skip(
                _id(spec, first),
                f"missed: instants from {first.isoformat()} to {last_stale.isoformat()} are {old} and were not "
                "replayed",
                stale=True,
            )
        start = cutoff
    recent: deque[datetime] = deque(maxlen=MAX_ENUMERATED)
    recent.extend(schedule.between(start, now))
    return replayed, stale, list(recent)


def _missed_without_catchup(
    spec: JobSpec, missed: list[datetime], latest: datetime, now: datetime, tolerance: timedelta
) -> list[Skip]:
    """Each missed instant with its own why: too late to run, or on time but overtaken by a later instant that
    was due too when the leader got to it (the leader runs only the latest of those)."""
    late = f"missed: more than the tolerance ({format_duration(tolerance)}) late (catchup: none)"
    superseded = (
        f"missed: superseded by {_id(spec, latest).name}, also due by the time the leader got to it; "
        "only the latest instant runs (catchup: none)"
    )
    return [Skip(_id(spec, t), late if now - t > tolerance else superseded) for t in missed]


def _apply_catchup(
    spec: JobSpec, instants: list[datetime], now: datetime, tolerance: timedelta
) -> tuple[list[datetime], list[Skip]]:
    latest = instants[-1]
    on_time = now - latest <= tolerance
    missed = instants[:-1] if on_time else instants
    policy = spec.catchup.policy
    if policy is CatchupPolicy.NONE:
        return ([latest] if on_time else []), _missed_without_catchup(spec, missed, latest, now, tolerance)
    if policy is CatchupPolicy.LATEST:
        keep = _id(spec, latest).name
        reason = f"missed: superseded by {keep} (catchup: latest)"
        return [latest], [Skip(_id(spec, t), reason) for t in instants[:-1]]
    replay = missed[-spec.catchup.max :]
    dropped = missed[: -spec.catchup.max] if len(missed) > spec.catchup.max else []
    reason = f"missed: beyond the catch-up bound of {spec.catchup.max} replays (catchup: all)"
    launches = replay + ([latest] if on_time else [])
    return launches, [Skip(_id(spec, t), reason) for t in dropped]

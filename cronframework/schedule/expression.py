"""The schedule engine: when a job's launches fall, as UTC instants, under its time zone and DST policy.

A cron schedule matches LOCAL wall-clock times. Absolute time is cut into segments of constant UTC offset
(`schedule_zone`); inside one segment wall time is instant + offset, so a match there is one bisect-driven
search (`schedule_match`). The DST policy only decides what happens at segment edges: a wall time repeated
after a fall-back fires at its first occurrence (or both), a wall time skipped by a spring-forward fires once
at the first instant after the gap (or not at all). `@every` is absolute time (the Unix epoch plus a per-job
offset) and ignores all of this.
Documented in docs/schedules.md; pure functions of their arguments, so every replica computes the same
launches.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronframework.errors import ScheduleError
from cronframework.schedule.dst import DstChoice, DstDefault, RepeatedTime, SkippedTime
from cronframework.schedule.duration import format_duration, parse_duration
from cronframework.schedule.fields import DOM, expand, hashed_value, resolve
from cronframework.schedule.match import CronPattern, next_match, pattern_from, prev_match
from cronframework.schedule.zone import Segment, segment_at

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)
_MAX_SEGMENTS = 64  # a valid pattern matches within 8 years: at most ~3 segments a year
# next_after answers each engine keeps: a herd asks it the same two questions per job (its instant, and the one
# after), and an answer about an instant long past is never asked for again. 256 kept ~27 KB per distinct schedule
# for as long as it lived, filled a launch or a status page at a time (benchmarks/bench_memory.py).
_RECENT_ANSWERS = 4


def _floor_seconds(instant: datetime) -> int:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"schedule instants must be timezone-aware, got naive {instant.isoformat()}")
    return (instant - _EPOCH) // _SECOND


def _ceil_seconds(instant: datetime) -> int:
    whole = _floor_seconds(instant)
    return whole if instant.microsecond == 0 else whole + 1


def _to_datetime(seconds: int) -> datetime:
    return _EPOCH + timedelta(seconds=seconds)


class _Every:
    """`@every <period> +<offset>`: the instants t with t - offset a multiple of the period. Anchored to the Unix
    epoch, not to a replica's start, so replicas agree; the offset (hashed from the job's name unless written) keeps
    a thousand jobs sharing a period from firing in the same second."""

    def __init__(self, period: int, offset: int) -> None:
        self.period = period
        self.offset = offset

    def next_after(self, after: int) -> int:
        return ((after - self.offset) // self.period + 1) * self.period + self.offset

    def at_or_before(self, at: int, floor: int) -> int | None:
        found = (at - self.offset) // self.period * self.period + self.offset
        return found if found >= floor else None


class _Cron:
    """A wall-clock pattern in a zone, under a DST policy; all arguments and results in Unix seconds."""

    def __init__(self, pattern: CronPattern, zone: ZoneInfo, skipped: SkippedTime, repeated: RepeatedTime) -> None:
        self.pattern = pattern
        self.zone = zone
        self.first_only = repeated is RepeatedTime.FIRST
        self.shift = skipped is SkippedTime.SHIFT
        self._recent: dict[int, int] = {}  # the last few next_after answers (_RECENT_ANSWERS)

    def next_after(self, after: int) -> int:
        found = self._recent.get(after)
        if found is None:
            if len(self._recent) >= _RECENT_ANSWERS:
                self._recent.clear()
            found = self._recent[after] = self._next_after(after)
        return found

    def _next_after(self, after: int) -> int:
        low = after + 1
        seg = segment_at(self.zone, low)
        if low == seg.start and self._shifted_gap_before(seg):
            return low
        for _ in range(_MAX_SEGMENTS):
            found = self._first_in(seg, low)
            if found is not None:
                return found
            if (
                self.shift
                and seg.offset_after > seg.offset
                and self._gap_matches(seg.end, seg.offset, seg.offset_after)
            ):
                return seg.end  # the first instant after the gap stands in for every skipped match in it
            low = seg.end
            seg = segment_at(self.zone, low)
        raise ScheduleError("no launch within the search horizon")  # parse_schedule rules such patterns out

    def at_or_before(self, at: int, floor: int) -> int | None:
        cursor = at
        while cursor >= floor:
            seg = segment_at(self.zone, cursor)
            found = self._last_in(seg, cursor)
            if found is not None:
                return found if found >= floor else None
            if self._shifted_gap_before(seg):
                return seg.start if seg.start >= floor else None
            cursor = seg.start - 1
        return None

    def _low(self, seg: Segment) -> int:
        """The first instant of `seg` whose wall time may fire: after a fall-back, repeats do not."""
        if self.first_only and seg.offset_before > seg.offset:
            return seg.start + seg.offset_before - seg.offset
        return seg.start

    def _first_in(self, seg: Segment, low: int) -> int | None:
        """The first wall-clock match at or after `low` inside `seg`."""
        low = max(low, self._low(seg))
        if low >= seg.end:
            return None
        wall = next_match(self.pattern, low + seg.offset)
        return wall - seg.offset if wall is not None and wall - seg.offset < seg.end else None

    def _last_in(self, seg: Segment, high: int) -> int | None:
        """The last wall-clock match at or before `high` inside `seg`."""
        low = self._low(seg)
        if high < low:
            return None
        wall = prev_match(self.pattern, high + seg.offset)
        return wall - seg.offset if wall is not None and wall - seg.offset >= low else None

    def _shifted_gap_before(self, seg: Segment) -> bool:
        return (
            self.shift
            and seg.offset_before < seg.offset
            and self._gap_matches(seg.start, seg.offset_before, seg.offset)
        )

    def _gap_matches(self, instant: int, before: int, after: int) -> bool:
        """Does any wall time skipped at `instant` (those in [instant+before, instant+after)) match?"""
        wall = next_match(self.pattern, instant + before)
        return wall is not None and wall < instant + after


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule. Instants in are timezone-aware; instants out are UTC, whole seconds."""

    expression: str
    resolved: str
    timezone: str
    dst: DstChoice = field(default_factory=DstDefault)
    _engine: _Cron | _Every | None = field(default=None, repr=False, compare=False)

    def _run(self) -> _Cron | _Every:
        if self._engine is None:
            raise ScheduleError("Schedule objects come from parse_schedule()")
        return self._engine

    def next_after(self, after: datetime) -> datetime:
        """The first launch strictly after `after`."""
        return _to_datetime(self._run().next_after(_floor_seconds(after)))

    def iter_after(self, after: datetime) -> Iterator[datetime]:
        engine, cursor = self._run(), _floor_seconds(after)
        while True:
            cursor = engine.next_after(cursor)
            yield _to_datetime(cursor)

    def between(self, start: datetime, end: datetime) -> Iterator[datetime]:
        """Launches in (start, end], ascending."""
        engine, cursor, last = self._run(), _floor_seconds(start), _floor_seconds(end)
        while (cursor := engine.next_after(cursor)) <= last:
            yield _to_datetime(cursor)

    def latest_at_or_before(self, at: datetime, not_before: datetime) -> datetime | None:
        """The most recent launch in [not_before, at], or None."""
        found = self._run().at_or_before(_floor_seconds(at), _ceil_seconds(not_before))
        return None if found is None else _to_datetime(found)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"unknown IANA time zone {name!r}") from None


def _every(expression: str, job: str) -> tuple[_Every, str]:
    """`@every <period> [+<offset> | +?]` -> the engine and its resolved text (the offset always written out)."""
    text = expression.strip()[len("@every") :].strip()
    period_text, plus, offset_text = (part.strip() for part in text.partition("+"))
    period = _whole_seconds(period_text, "period", 1)
    if not plus or offset_text == "?":
        offset = hashed_value(f"{job}/@every", 0, period - 1)
    else:
        offset = _whole_seconds(offset_text, "offset", 0)
        if offset >= period:
            raise ScheduleError(f"@every: offset must be below the period {period_text}, got {offset_text!r}")
    resolved = f"@every {period_text} +{format_duration(timedelta(seconds=offset)) if offset else '0s'}"
    return _Every(period, offset), resolved


def _whole_seconds(text: str, what: str, least: int) -> int:
    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise ScheduleError(f"@every: {what}: {exc}") from None
    if value < least * _SECOND or value % _SECOND:
        floor = f", at least {least}s" if least else ""
        raise ScheduleError(f"@every: {what} must be whole seconds{floor}, got {text!r}")
    return value // _SECOND


@lru_cache(maxsize=4096)
def _pattern(fields: tuple[str, ...]) -> CronPattern:
    """Shared by every job with the same resolved fields (and so is its per-month day cache)."""
    pattern = pattern_from(expand(fields))
    if next_match(pattern, 946684800) is None:  # from 2000-01-01: a pattern idle for 9 years never fires
        raise ScheduleError(
            f"{DOM.name} field: {fields[2]!r} never occurs in month field {fields[3]!r}, so the job never fires"
        )
    return pattern


def parse_schedule(expression: str, *, job: str, timezone: str = "UTC", dst: DstChoice | None = None) -> Schedule:
    """Parse and validate; raises ScheduleError with a one-line reason naming the bad field.

    The last schedules parsed are remembered: compiling a stored spec parses its schedule twice (the model's own
    check, then the scheduler's), and a leader starting over 100k specs compiles them all before its first launch."""
    policy = dst if dst is not None else DstDefault()
    if not isinstance(policy, Hashable):  # a DST policy that cannot be a key
        return _parse(expression, job, timezone, policy)
    return _parse_remembered(expression, job, timezone, policy)


@lru_cache(maxsize=1024)
def _parse_remembered(expression: str, job: str, timezone: str, policy: Hashable) -> Schedule:
    return _parse(expression, job, timezone, cast(DstChoice, policy))


def _parse(expression: str, job: str, timezone: str, policy: DstChoice) -> Schedule:
    zone = _zone(timezone)
    head = expression.strip().split(maxsplit=1)[:1]
    if head and head[0].lower() == "@every":
        engine, resolved_every = _every(expression, job)
        return Schedule(expression, resolved_every, timezone, policy, engine)
    resolved = resolve(expression, job)
    return Schedule(
        expression, resolved.resolved, timezone, policy, _cron(resolved.fields, zone, policy.skipped, policy.repeated)
    )


@lru_cache(maxsize=4096)
def _cron(fields: tuple[str, ...], zone: ZoneInfo, skipped: SkippedTime, repeated: RepeatedTime) -> _Cron:
    """One engine per distinct (fields, zone, DST policy): 10k jobs on `0 * * * *` share it and its answers."""
    return _Cron(_pattern(fields), zone, skipped, repeated)

"""The engine against a brute-force reference that looks at the wall clock of every UTC minute in a window.

The reference knows nothing of segments, croniter or bisecting: for each minute it asks zoneinfo what the
clock on the wall shows, matches that against plain value sets, and applies the DST policy as
docs/schedules.md states it. Windows are drawn around DST transitions, leap days, and at random, in zones
with and without DST.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cronframework.schedule.dst import RepeatedTime, SkippedTime
from cronframework.schedule.expression import parse_schedule
from cronframework.spec.model import DstPolicy

ZONES = ["America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "Asia/Kolkata", "UTC"]
MINUTE = 60


@dataclass(frozen=True)
class Spec:
    """A 5-field schedule as text and as the value sets it means."""

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # cron numbering, 0 = Sunday
    day_or: bool

    def matches(self, wall: datetime) -> bool:
        if wall.minute not in self.minutes or wall.hour not in self.hours or wall.month not in self.months:
            return False
        dom, dow = wall.day in self.days, (wall.weekday() + 1) % 7 in self.weekdays
        return (dom or dow) if self.day_or else (dom and dow)

    def can_fire(self) -> bool:
        """parse_schedule rejects day/month combinations that never occur (e.g. 30 and 31 of February)."""
        return self.day_or or any(day <= calendar.monthrange(2024, m)[1] for day in self.days for m in self.months)


@st.composite
def field(draw: st.DrawFn, low: int, high: int, favourites: list[str]) -> tuple[str, frozenset[int]]:
    """A cron field as (text, values): `*`, a favourite, a value, a list, a range, or a stepped range."""
    kind = draw(st.sampled_from(["star", "favourite", "value", "list", "range", "step"]))
    if kind == "star":
        return "*", frozenset(range(low, high + 1))
    if kind == "favourite":
        text = draw(st.sampled_from(favourites))
        return text, _values(text, low, high)
    if kind == "value":
        value = draw(st.integers(low, high))
        return str(value), frozenset({value})
    if kind == "list":
        values = sorted(draw(st.sets(st.integers(low, high), min_size=1, max_size=4)))
        return ",".join(map(str, values)), frozenset(values)
    a, b = sorted(draw(st.lists(st.integers(low, high), min_size=2, max_size=2, unique=True)))
    if kind == "range":
        return f"{a}-{b}", frozenset(range(a, b + 1))
    step = draw(st.integers(1, max(1, (high - low) // 2)))
    return f"{a}-{b}/{step}", frozenset(range(a, b + 1, step))


def _values(text: str, low: int, high: int) -> frozenset[int]:
    """Favourites are `*/n`, `a-b` or a list; enough to read them back."""
    if text.startswith("*/"):
        return frozenset(range(low, high + 1, int(text[2:])))
    if "-" in text:
        a, b = text.split("-")
        return frozenset(range(int(a), int(b) + 1))
    return frozenset(int(v) for v in text.split(","))


@st.composite
def specs(draw: st.DrawFn) -> Spec:
    minute = draw(field(0, 59, ["*/15", "0", "30", "*/7", "0,30", "15,45", "*/20"]))
    hour = draw(field(0, 23, ["1-3", "2", "1", "2,3", "*/2", "0-3", "1,2"]))
    dom = draw(st.one_of(st.just(("*", frozenset(range(1, 32)))), field(1, 31, ["29", "28,29", "1-15", "30,31"])))
    month = draw(st.one_of(st.just(("*", frozenset(range(1, 13)))), field(1, 12, ["2", "3,10", "2-4", "*/3"])))
    dow = draw(st.one_of(st.just(("*", frozenset(range(7)))), field(0, 6, ["0", "1-5", "0,6", "4"])))
    text = " ".join(part[0] for part in (minute, hour, dom, month, dow))
    day_or = dom[0] != "*" and dow[0] != "*"
    return Spec(text, minute[1], hour[1], dom[1], month[1], dow[1], day_or)


@cache
def transitions(zone_name: str, year: int) -> tuple[int, ...]:
    """Instants (to the minute) where the offset changes, found by walking the year hour by hour."""
    zone, found = ZoneInfo(zone_name), []
    start = int(datetime(year, 1, 1, tzinfo=UTC).timestamp())
    previous = datetime.fromtimestamp(start, zone).utcoffset()
    for hour in range(start, start + 366 * 86400, 3600):
        offset = datetime.fromtimestamp(hour, zone).utcoffset()
        if offset != previous:
            found.append(next(m for m in range(hour - 3600, hour + 1, 60) if _offset(zone, m) == offset))
        previous = offset
    return tuple(found)


def _offset(zone: ZoneInfo, instant: int) -> timedelta | None:
    return datetime.fromtimestamp(instant, zone).utcoffset()


@st.composite
def windows(draw: st.DrawFn, zone_name: str) -> tuple[int, int]:
    """(start, end] in Unix seconds: up to 3 days around a DST change, a leap day, or anywhere."""
    year = draw(st.integers(1995, 2060))
    anchors = list(transitions(zone_name, year))
    kind = draw(st.sampled_from(["transition", "leap", "random"]))
    if kind == "transition" and anchors:
        anchor = draw(st.sampled_from(anchors))
    elif kind == "leap":
        leap_year = year - year % 4 if calendar.isleap(year - year % 4) else 2024
        anchor = int(datetime(leap_year, 2, 29, 12, tzinfo=UTC).timestamp())
    else:
        anchor = int(datetime(year, 1, 1, tzinfo=UTC).timestamp()) + draw(st.integers(0, 365 * 86400))
    start = anchor - draw(st.integers(0, 36 * 3600))
    return start, start + draw(st.integers(1, 3 * 86400))


def reference(spec: Spec, zone: ZoneInfo, start: int, end: int, dst: DstPolicy) -> list[int]:
    """Every launch in (start, end]: a walk over UTC minutes, reading the wall clock of each."""
    launches = []
    first = (start // MINUTE + 1) * MINUTE
    previous_wall = datetime.fromtimestamp(first - MINUTE, zone).replace(tzinfo=None)
    for instant in range(first, end + 1, MINUTE):
        aware = datetime.fromtimestamp(instant, zone)
        wall = aware.replace(tzinfo=None)
        repeated = aware.fold == 1  # zoneinfo marks the second pass over a repeated wall time
        fire = spec.matches(wall) and not (repeated and dst.repeated is RepeatedTime.FIRST)
        if dst.skipped is SkippedTime.SHIFT and wall - previous_wall > timedelta(minutes=1):
            skipped = previous_wall + timedelta(minutes=1)
            while skipped < wall and not fire:
                fire = spec.matches(skipped)
                skipped += timedelta(minutes=1)
        if fire:
            launches.append(instant)
        previous_wall = wall
    return launches


def _utc(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def check(spec: Spec, zone_name: str, window: tuple[int, int], dst: DstPolicy, probe: float) -> None:
    start, end = window
    assume(spec.can_fire())
    schedule = parse_schedule(spec.text, job="prop", timezone=zone_name, dst=dst)
    expected = [_utc(s) for s in reference(spec, ZoneInfo(zone_name), start, end, dst)]
    assert list(schedule.between(_utc(start), _utc(end))) == expected, spec.text
    at = start + int((end - start) * probe)
    before = [t for t in expected if t <= _utc(at)]
    latest = schedule.latest_at_or_before(_utc(at), _utc(start + 1))
    assert latest == (before[-1] if before else None), spec.text


SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(data=st.data(), spec=specs(), zone_name=st.sampled_from(ZONES), probe=st.floats(0, 1))
def test_default_policy_matches_reference(data: st.DataObject, spec: Spec, zone_name: str, probe: float) -> None:
    check(spec, zone_name, data.draw(windows(zone_name)), DstPolicy(), probe)


@settings(SETTINGS, max_examples=200)
@given(
    data=st.data(),
    spec=specs(),
    zone_name=st.sampled_from(ZONES[:3]),
    skipped=st.sampled_from(list(SkippedTime)),
    repeated=st.sampled_from(list(RepeatedTime)),
    probe=st.floats(0, 1),
)
def test_overrides_match_reference(
    data: st.DataObject,
    spec: Spec,
    zone_name: str,
    skipped: SkippedTime,
    repeated: RepeatedTime,
    probe: float,
) -> None:
    dst = DstPolicy(skipped=skipped, repeated=repeated)
    check(spec, zone_name, data.draw(windows(zone_name)), dst, probe)


@settings(SETTINGS, max_examples=60)
@given(spec=specs(), zone_name=st.sampled_from(ZONES), day=st.dates(date(1996, 1, 1), date(2060, 12, 31)))
def test_next_after_is_the_first_launch_of_iter_after(spec: Spec, zone_name: str, day: date) -> None:
    assume(spec.can_fire())
    schedule = parse_schedule(spec.text, job="prop", timezone=zone_name)
    after = datetime(day.year, day.month, day.day, 7, 13, 29, 500, tzinfo=UTC)
    launches = schedule.iter_after(after)
    first, second = next(launches), next(launches)
    assert after < first < second
    assert schedule.next_after(after) == first and schedule.next_after(first) == second
    assert first.microsecond == 0 and first.tzinfo is UTC

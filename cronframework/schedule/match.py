"""Fast search of wall-clock matches over croniter's expanded value sets.

Wall-clock instants are integer "wall seconds": seconds since 1970-01-01T00:00 of the naive local clock.
Profiling showed croniter's own get_next at 60-130 µs a call; bisecting sorted value tuples, with each month's
matching days cached on the pattern, costs a few.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from calendar import monthrange
from dataclasses import dataclass, field
from datetime import date
from typing import Any

DAY = 86400
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
HORIZON_MONTHS = 9 * 12  # Feb 29 recurs within 8 years (2096 -> 2104); anything rarer never fires


@dataclass(frozen=True)
class CronPattern:
    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    months: frozenset[int]
    days: frozenset[int]  # plain day-of-month values
    last_day: bool  # `L`
    weekday_near: frozenset[int]  # `NW`
    weekdays: frozenset[int]  # plain day-of-week values, 0 = Sunday
    nth: tuple[tuple[int, int], ...]  # (weekday, n) for `D#N`; n = -1 for `LD` (last D of the month)
    dom_star: bool
    dow_star: bool
    month_order: tuple[int, ...]  # sorted months, for jumping over the rest
    month_cache: dict[int, tuple[int, ...]] = field(default_factory=dict, compare=False, repr=False)

    @property
    def day_or(self) -> bool:
        """Vixie cron: both day fields restricted means either may match."""
        return not self.dom_star and not self.dow_star


def _values(expanded: list[Any], low: int, high: int) -> tuple[int, ...]:
    return (
        tuple(range(low, high + 1)) if expanded == ["*"] else tuple(sorted(v for v in expanded if isinstance(v, int)))
    )


def pattern_from(itr: Any) -> CronPattern:
    """Translate a croniter object's expansion (order minute, hour, dom, month, dow[, second])."""
    exp = itr.expanded
    near = frozenset(itr.nearest_weekday)
    nth_map: dict[int, set[Any]] = itr.nth_weekday_of_month
    nth = tuple(sorted((day, -1 if n == "l" else int(n)) for day, ns in nth_map.items() for n in ns))
    dow_values = frozenset(_values(exp[4], 0, 6))
    return CronPattern(
        seconds=_values(exp[5], 0, 59) if len(exp) > 5 else (0,),
        minutes=_values(exp[0], 0, 59),
        hours=_values(exp[1], 0, 23),
        months=frozenset(_values(exp[3], 1, 12)),
        month_order=_values(exp[3], 1, 12),
        days=frozenset() if near else frozenset(_values(exp[2], 1, 31)),
        last_day="l" in exp[2],
        weekday_near=near,
        weekdays=dow_values - {day for day, _ in nth},
        nth=nth,
        dom_star=exp[2] == ["*"],
        dow_star=exp[4] == ["*"],
    )


def _nearest_weekday(year: int, month: int, day: int, last: int) -> int:
    """Quartz `W`: Saturday -> Friday, Sunday -> Monday, never leaving the month."""
    if day > last:
        return -1
    weekday = date(year, month, day).weekday()  # Monday = 0
    if weekday == 5:
        return day - 1 if day > 1 else day + 2
    if weekday == 6:
        return day + 1 if day < last else day - 2
    return day


def _dom_ok(p: CronPattern, d: date, last: int) -> bool:
    if d.day in p.days or (p.last_day and d.day == last):
        return True
    return any(_nearest_weekday(d.year, d.month, n, last) == d.day for n in p.weekday_near)


def _dow_ok(p: CronPattern, d: date, weekday: int, last: int) -> bool:
    if weekday in p.weekdays:
        return True
    for day, n in p.nth:
        if day == weekday and ((n == -1 and d.day + 7 > last) or (n > 0 and (d.day - 1) // 7 + 1 == n)):
            return True
    return False


def _day_ok(p: CronPattern, d: date, day: int) -> bool:
    """Day-of-month and day-of-week of a day whose month already matched."""
    last = monthrange(d.year, d.month)[1]
    weekday = (day + 4) % 7  # 1970-01-01 was a Thursday; cron counts Sunday as 0
    if p.day_or:
        return _dom_ok(p, d, last) or _dow_ok(p, d, weekday, last)
    return (p.dom_star or _dom_ok(p, d, last)) and (p.dow_star or _dow_ok(p, d, weekday, last))


def day_matches(p: CronPattern, day: int) -> bool:
    d = date.fromordinal(_EPOCH_ORDINAL + day)
    return d.day in _month_days(p, d.year, d.month)


def _next_tod(p: CronPattern, tod: int) -> int | None:
    """First matching second of the day at or after `tod`."""
    hour, rest = divmod(tod, 3600)
    minute, second = divmod(rest, 60)
    hs, ms, ss = p.hours, p.minutes, p.seconds
    i = bisect_left(hs, hour)
    if i < len(hs) and hs[i] == hour:
        j = bisect_left(ms, minute)
        if j < len(ms) and ms[j] == minute:
            k = bisect_left(ss, second)
            if k < len(ss):
                return tod - second + ss[k]
            j += 1
        if j < len(ms):
            return hour * 3600 + ms[j] * 60 + ss[0]
        i += 1
    return hs[i] * 3600 + ms[0] * 60 + ss[0] if i < len(hs) else None


def _prev_tod(p: CronPattern, tod: int) -> int | None:
    """Last matching second of the day at or before `tod`."""
    hour, rest = divmod(tod, 3600)
    minute, second = divmod(rest, 60)
    hs, ms, ss = p.hours, p.minutes, p.seconds
    i = bisect_right(hs, hour) - 1
    if i >= 0 and hs[i] == hour:
        j = bisect_right(ms, minute) - 1
        if j >= 0 and ms[j] == minute:
            k = bisect_right(ss, second) - 1
            if k >= 0:
                return tod - second + ss[k]
            j -= 1
        if j >= 0:
            return hour * 3600 + ms[j] * 60 + ss[-1]
        i -= 1
    return hs[i] * 3600 + ms[-1] * 60 + ss[-1] if i >= 0 else None


def _month_days(p: CronPattern, year: int, month: int) -> tuple[int, ...]:
    """Matching days of one month, cached on the pattern: the day search then jumps a month at a time."""
    key = year * 12 + month
    days = p.month_cache.get(key)
    if days is None:
        if len(p.month_cache) > 512:
            p.month_cache.clear()
        first = date(year, month, 1).toordinal() - _EPOCH_ORDINAL
        last = monthrange(year, month)[1]
        matching = (n for n in range(1, last + 1) if _day_ok(p, date(year, month, n), first + n - 1))
        days = tuple(matching) if month in p.months else ()
        p.month_cache[key] = days
    return days


def _following_month(p: CronPattern, year: int, month: int) -> tuple[int, int]:
    """The next (year, month) after this one whose month the pattern allows."""
    order = p.month_order
    i = bisect_right(order, month)
    return (year, order[i]) if i < len(order) else (year + 1, order[0])


def _next_day(p: CronPattern, day: int) -> int | None:
    d = date.fromordinal(_EPOCH_ORDINAL + day)
    year, month, start = d.year, d.month, d.day
    if month not in p.months:
        (year, month), start = _following_month(p, year, month), 1
    for _ in range(HORIZON_MONTHS):
        days = _month_days(p, year, month)
        i = bisect_left(days, start)
        if i < len(days):
            return date(year, month, days[i]).toordinal() - _EPOCH_ORDINAL
        (year, month), start = _following_month(p, year, month), 1
    return None


def _prev_day(p: CronPattern, day: int) -> int | None:
    d = date.fromordinal(_EPOCH_ORDINAL + day)
    year, month, end = d.year, d.month, d.day
    for _ in range(HORIZON_MONTHS):
        days = _month_days(p, year, month)
        i = bisect_right(days, end) - 1
        if i >= 0:
            return date(year, month, days[i]).toordinal() - _EPOCH_ORDINAL
        year, month, end = (year - 1, 12, 31) if month == 1 else (year, month - 1, 31)
    return None


def next_match(p: CronPattern, wall: int) -> int | None:
    """The first matching wall second at or after `wall` (None: none within the horizon)."""
    day, tod = divmod(wall, DAY)
    if day_matches(p, day):
        found = _next_tod(p, tod)
        if found is not None:
            return day * DAY + found
    nxt = _next_day(p, day + 1)
    return None if nxt is None else nxt * DAY + p.hours[0] * 3600 + p.minutes[0] * 60 + p.seconds[0]


def prev_match(p: CronPattern, wall: int) -> int | None:
    """The last matching wall second at or before `wall` (None: none within the horizon)."""
    day, tod = divmod(wall, DAY)
    if day_matches(p, day):
        found = _prev_tod(p, tod)
        if found is not None:
            return day * DAY + found
    prv = _prev_day(p, day - 1)
    return None if prv is None else prv * DAY + p.hours[-1] * 3600 + p.minutes[-1] * 60 + p.seconds[-1]

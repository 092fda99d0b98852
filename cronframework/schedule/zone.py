"""UTC-offset segments of a time zone: the stretches of absolute time during which the offset is constant.

zoneinfo answers "offset at instant t" but does not list transitions, so each (zone, year) is sampled every
six hours and every change is bisected to the exact second, then cached. Two transitions less than six hours
apart that cancel out would be missed; no zone in the tz database has one since 1970.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

_STEP = 6 * 3600


@dataclass(frozen=True)
class Segment:
    """[start, end) in Unix seconds, during which wall = instant + offset. Unchanged ends are padding."""

    start: int
    offset_before: int  # offset just before `start` (== offset when `start` is only padding)
    offset: int
    end: int
    offset_after: int  # offset from `end` on (== offset when `end` is only padding)


def utc_offset(zone: ZoneInfo, instant: int) -> int:
    delta = datetime.fromtimestamp(instant, zone).utcoffset()
    return int(delta.total_seconds()) if delta is not None else 0


@lru_cache(maxsize=1024)
def _year_start(year: int) -> int:
    return int(datetime(year, 1, 1, tzinfo=UTC).timestamp())


def _bisect_change(zone: ZoneInfo, lo: int, hi: int) -> int:
    """The first second in (lo, hi] whose offset differs from lo's."""
    before = utc_offset(zone, lo)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if utc_offset(zone, mid) == before:
            lo = mid
        else:
            hi = mid
    return hi


@lru_cache(maxsize=8192)
def _year_transitions(zone: ZoneInfo, year: int) -> tuple[tuple[int, int, int], ...]:
    """(instant, offset before, offset after) for every change in (Jan 1 of `year`, Jan 1 of `year + 1`]."""
    start, end = _year_start(year), _year_start(year + 1)
    found: list[tuple[int, int, int]] = []
    previous = utc_offset(zone, start)
    for lo in range(start, end, _STEP):
        hi = min(lo + _STEP, end)
        offset = utc_offset(zone, hi)
        if offset != previous:
            found.append((_bisect_change(zone, lo, hi), previous, offset))
            previous = offset
    return tuple(found)


@lru_cache(maxsize=8192)
def _window(zone: ZoneInfo, year: int) -> tuple[tuple[int, ...], tuple[tuple[int, int, int], ...]]:
    """Transitions of years year-1 .. year+1, with their instants separately for bisecting."""
    changes = _year_transitions(zone, year - 1) + _year_transitions(zone, year) + _year_transitions(zone, year + 1)
    return tuple(c[0] for c in changes), changes


def segment_at(zone: ZoneInfo, instant: int) -> Segment:
    """The segment containing `instant`: bounded by transitions or, failing those, padding ~1 year away."""
    year = datetime.fromtimestamp(instant, UTC).year
    instants, changes = _window(zone, year)
    i = bisect_right(instants, instant)
    offset = utc_offset(zone, instant)
    if i > 0:
        start, before = changes[i - 1][0], changes[i - 1][1]
    else:
        start, before = _year_start(year - 1), offset
    if i < len(changes):
        end, after = changes[i][0], changes[i][2]
    else:
        end, after = _year_start(year + 2), offset
    return Segment(start, before, offset, end, after)

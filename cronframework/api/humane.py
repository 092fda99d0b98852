"""Times and durations as people read them on the status page: in the job's own zone to the second, relative to
now ("in 5 min", "2 h ago"), durations in the two largest units. Pure: `now` is passed in."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_UNITS = (("d", 86400), ("h", 3600), ("min", 60), ("s", 1))


def parse(iso: str | None) -> datetime | None:
    if not iso:
        return None
    try:
        value = datetime.fromisoformat(iso)
    except ValueError:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def local(at: datetime, zone_name: str | None) -> str:
    """2026-11-26 03:30:00 CET"""
    return at.astimezone(zone(zone_name)).strftime("%Y-%m-%d %H:%M:%S %Z")


def utc(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def relative(at: datetime, now: datetime) -> str:
    """ "in 5 min", "2 h ago", "now": the largest unit, rounded down."""
    seconds = round((at - now).total_seconds())
    if seconds == 0:
        return "now"
    amount = _largest(abs(seconds))
    return f"in {amount}" if seconds > 0 else f"{amount} ago"


def _largest(seconds: int) -> str:
    for unit, size in _UNITS:
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def duration(seconds: float | None) -> str:
    """ "1 h 5 min", "42 s", "0.3 s": the two largest units."""
    if seconds is None:
        return ""
    if seconds < 10:
        return f"{seconds:.1f} s"
    rest, parts = int(seconds), []
    for unit, size in _UNITS:
        if rest >= size:
            parts.append(f"{rest // size} {unit}")
            rest %= size
    return " ".join(parts[:2])


def duration_of(item: Mapping[str, Any]) -> float | None:
    """How long a launch ran, from what its record or result carries: a `duration` in seconds, or its start and end
    instants; None when neither is there (the backend has not said, or the launch is still running)."""
    if isinstance(item.get("duration"), int | float):
        return float(item["duration"])
    start, end = parse(item.get("started_at")), parse(item.get("ended_at"))
    if start is not None and end is not None:
        return max((end - start).total_seconds(), 0.0)
    return None

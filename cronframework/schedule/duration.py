"""Go-style durations ("90s", "1h30m", "500ms") used by `@every`, windows, timeouts and backoff."""

from __future__ import annotations

import re
from datetime import timedelta

_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


def parse_duration(text: str) -> timedelta:
    """Parse a duration; raises ValueError with the reason (the spec layer adds file/line/field)."""
    value = text.strip()
    if not value:
        raise ValueError("empty duration")
    pos, total = 0, 0.0
    for match in _PART.finditer(value):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(value):
        raise ValueError(f"invalid duration {text!r}: expected e.g. '90s', '10m', '1h30m', '2d'")
    return timedelta(seconds=total)


def format_duration(delta: timedelta) -> str:
    """The shortest exact spelling, for plan output and logs."""
    seconds = int(delta.total_seconds())
    if seconds == 0 or delta != timedelta(seconds=seconds):
        return f"{int(delta.total_seconds() * 1000)}ms"
    out = ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            out += f"{count}{unit}"
    return out

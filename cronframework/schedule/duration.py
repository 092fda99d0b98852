"""Go-style durations ("90s", "1h30m", "500ms") used by `@every`, windows, timeouts and backoff.

Durations are exact and bounded: whole milliseconds from 0 to MAX_DURATION. Parsing is done in exact fractions,
never floats, so what a file says is what is stored: `format_duration` spells every such value so that
`parse_duration` reads it back unchanged (a spec is stored in that spelling and compiled again by the leader).
Anything outside the bounds is a ValueError with the reason, never an OverflowError.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from fractions import Fraction
from functools import lru_cache
from typing import Final

MAX_DURATION: Final = timedelta(days=366)
RESOLUTION: Final = timedelta(milliseconds=1)
_MAX_MS: Final = MAX_DURATION // RESOLUTION
_MAX_TEXT: Final = 64  # characters; a longer spelling is refused before any arithmetic on its digits
_UNIT_MS: Final = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_EXAMPLES = "expected e.g. '90s', '10m', '1h30m', '2d'"


@lru_cache(maxsize=1024)
def parse_duration(text: str) -> timedelta:
    """Parse a duration; raises ValueError with the reason (the spec layer adds file/line/field). Remembered: a
    stored spec spells out every default duration, so 100k specs repeat a few spellings half a million times."""
    value = text.strip()
    if not value:
        raise ValueError("empty duration")
    if value.startswith("-"):
        raise ValueError(f"a duration cannot be negative, got {text!r}")
    if len(value) > _MAX_TEXT:
        raise ValueError(f"duration {value[:20]}... is longer than {_MAX_TEXT} characters")
    pos, total = 0, Fraction(0)
    for match in _PART.finditer(value):
        if match.start() != pos:
            break
        total += Fraction(match.group(1)) * _UNIT_MS[match.group(2)]
        pos = match.end()
    if pos != len(value):
        raise ValueError(f"invalid duration {text!r}: {_EXAMPLES}")
    return _bounded(total, repr(text))


def seconds_duration(seconds: int | float) -> timedelta:
    """A plain number of seconds (`timeout: 30`) as a duration, under the same bounds as a written one."""
    if isinstance(seconds, float) and not math.isfinite(seconds):
        raise ValueError(f"a duration must be finite, got {seconds}")
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative, got {seconds}")
    # repr() is the shortest decimal that reads back as this float: 1.001 means 1001ms, not the binary nearby
    exact = Fraction(repr(seconds)) if isinstance(seconds, float) else Fraction(seconds)
    return _bounded(exact * 1000, str(seconds))


def checked_duration(delta: timedelta) -> timedelta:
    """A timedelta built in code, held to the bounds of a written duration."""
    if delta < timedelta(0):
        raise ValueError(f"a duration cannot be negative, got {delta}")
    return _bounded(Fraction(delta // timedelta(microseconds=1), 1000), format_duration(delta))


def _bounded(milliseconds: Fraction, shown: str) -> timedelta:
    if milliseconds > _MAX_MS:
        raise ValueError(f"duration {shown} is longer than the maximum, {format_duration(MAX_DURATION)}")
    if milliseconds.denominator != 1:
        raise ValueError(f"duration {shown} is finer than a millisecond, the smallest unit")
    return timedelta(milliseconds=int(milliseconds))


def format_duration(delta: timedelta) -> str:
    """An exact spelling of whole milliseconds (`1h30m`, `1500ms`), for stored specs, plan output and logs."""
    if delta < timedelta(0):
        return "-" + format_duration(-delta)
    if delta % RESOLUTION:
        return f"{delta // timedelta(microseconds=1)}us"  # not a duration a spec can hold; shown, never parsed
    milliseconds = delta // RESOLUTION
    if milliseconds == 0 or milliseconds % 1000:
        return f"{milliseconds}ms"
    seconds, out = milliseconds // 1000, ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            out += f"{count}{unit}"
    return out

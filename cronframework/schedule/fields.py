"""The cron language: split, check each field with a message naming it, resolve `?`, expand with croniter.

Validation is ours (croniter's messages do not name the field, and it accepts `R`, random per process, which
would make replicas disagree); expansion of ranges, steps, names, `L` and `#` is croniter's. The result is a
`CronPattern` of plain value sets that `schedule_match` searches quickly.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache

from croniter import CroniterError, croniter

from cronframework.errors import ScheduleError

MACROS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}


@dataclass(frozen=True)
class Field:
    name: str
    index: int  # canonical index, used by the `?` hash (docs/schedules.md): never renumber
    low: int
    high: int
    names: tuple[str, ...] = ()  # names[i] spells value low + i

    def value(self, text: str) -> int:
        """One value (a number or a name), range-checked."""
        lowered = text.lower()
        if lowered in self.names:
            return self.low + self.names.index(lowered)
        if not text.isdigit():
            raise ScheduleError(f"{self.name} field: invalid value {text!r}")
        number = int(text)
        if not self.low <= number <= self.high:
            raise ScheduleError(f"{self.name} field: {number} out of range {self.low}-{self.high}")
        return number


_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
SECOND = Field("second", 5, 0, 59)
MINUTE = Field("minute", 0, 0, 59)
HOUR = Field("hour", 1, 0, 23)
DOM = Field("day-of-month", 2, 1, 31)
MONTH = Field("month", 3, 1, 12, _MONTHS)
DOW = Field("day-of-week", 4, 0, 7, _DAYS)  # 7 is Sunday too
FIVE = (MINUTE, HOUR, DOM, MONTH, DOW)
SIX = (SECOND, *FIVE)

_VALUE = r"[0-9]+|[a-zA-Z]{3}"
_ITEM = re.compile(rf"^(?:(?P<star>\*)|(?P<lo>{_VALUE})(?:-(?P<hi>{_VALUE}))?)(?:/(?P<step>[0-9]+))?$")
_QUESTION = re.compile(rf"^\?(?:\((?P<lo>{_VALUE})-(?P<hi>{_VALUE})\))?$")
_DOM_EXTRA = re.compile(r"^(?:l|(?P<w>[0-9]+)w)$", re.IGNORECASE)
_DOW_NTH = re.compile(rf"^(?P<day>{_VALUE})#(?P<nth>[0-9]+)$")
_DOW_LAST = re.compile(rf"^(?:l(?P<a>{_VALUE})|(?P<b>{_VALUE})l)$", re.IGNORECASE)
_HASHED = re.compile(r"^[hr](?:$|[(/])", re.IGNORECASE)  # croniter's H (crc32) and R (random per process)


def question_value(job: str, field: Field, low: int, high: int) -> int:
    """The `?` contract: low + (first 8 bytes of SHA-256("<job>/<index>"), big-endian) mod (high-low+1)."""
    return hashed_value(f"{job}/{field.index}", low, high)


def hashed_value(key: str, low: int, high: int) -> int:
    """low + (first 8 bytes of SHA-256(key), big-endian) mod (high-low+1): stable across releases and machines."""
    digest = hashlib.sha256(key.encode()).digest()
    return low + int.from_bytes(digest[:8], "big") % (high - low + 1)


def resolve_question(text: str, field: Field, job: str) -> str:
    """`?` / `?(a-b)` -> the chosen value; anything else unchanged. Day-of-month `?` stays in 1-28."""
    match = _QUESTION.match(text)
    if match is None:
        if "?" in text:
            raise ScheduleError(f"{field.name} field: '?' must stand alone as '?' or '?(a-b)', got {text!r}")
        return text
    if match["lo"] is None:
        high = 28 if field is DOM else (6 if field is DOW else field.high)
        return str(question_value(job, field, field.low, high))
    low, high = field.value(match["lo"]), field.value(match["hi"])
    if low > high:
        raise ScheduleError(f"{field.name} field: empty range in {text!r}")
    return str(question_value(job, field, low, high))


def check_item(item: str, field: Field) -> str:
    """Validate one list item; return it in the spelling croniter gets (equal ranges collapsed)."""
    match = _ITEM.match(item)
    if match is None:
        return _check_extra(item, field)
    if match["step"] is not None and int(match["step"]) < 1:
        raise ScheduleError(f"{field.name} field: step must be at least 1 in {item!r}")
    if match["star"]:
        return item
    low = field.value(match["lo"])
    if match["hi"] is None:
        return item
    high = field.value(match["hi"])
    # croniter reads an equal range ("5-5") as the whole field; cron means the single value.
    return str(low) if low == high else item


def _check_extra(item: str, field: Field) -> str:
    """The croniter extensions we allow: `L` and `NW` in day-of-month, `D#N` and `LD`/`DL` in day-of-week."""
    if field is DOM and (extra := _DOM_EXTRA.match(item)):
        if extra["w"] is not None:
            field.value(extra["w"])
        return item.lower()
    if field is DOW and (nth := _DOW_NTH.match(item)):
        if not 1 <= int(nth["nth"]) <= 5:
            raise ScheduleError(f"{field.name} field: #{nth['nth']} out of range 1-5 in {item!r}")
        return f"{field.value(nth['day'])}#{nth['nth']}"
    if field is DOW and (last := _DOW_LAST.match(item)):
        return f"l{field.value(last['a'] or last['b'])}"
    raise ScheduleError(f"{field.name} field: invalid value {item!r}")


@lru_cache(maxsize=4096)
def check_field(text: str, field: Field) -> str:
    if _HASHED.match(text):
        raise ScheduleError(f"{field.name} field: {text!r} is not supported; use '?' for a stable spread value")
    return ",".join(check_item(item, field) for item in text.split(","))


@dataclass(frozen=True)
class Resolved:
    """An expression after macros and `?`: what the user sees in `plan`, and what croniter expands."""

    resolved: str  # the user's fields with `?` replaced
    fields: tuple[str, ...]  # checked fields in croniter order (minute..day-of-week[, second])


def resolve(expression: str, job: str) -> Resolved:
    text = expression.strip()
    if not text:
        raise ScheduleError("empty schedule")
    if text.startswith("@"):
        if text.lower() not in MACROS:
            raise ScheduleError(f"unknown macro {text!r} (expected one of {', '.join(MACROS)} or @every <duration>)")
        return Resolved(text, tuple(MACROS[text.lower()].split()))
    parts = text.split()
    if len(parts) not in (5, 6):
        raise ScheduleError(
            f"expected 5 fields (minute hour day-of-month month day-of-week) or 6 (second first), got {len(parts)}"
        )
    layout = FIVE if len(parts) == 5 else SIX
    chosen = [resolve_question(part, field, job) for part, field in zip(parts, layout, strict=True)]
    checked = [check_field(part, field) for part, field in zip(chosen, layout, strict=True)]
    if len(parts) == 6:
        checked = [*checked[1:], checked[0]]  # croniter's own order puts seconds last
    return Resolved(" ".join(chosen), tuple(checked))


def expand(fields: tuple[str, ...]) -> croniter:
    """croniter's expansion of checked fields; what fails only here cannot name its field."""
    try:
        return croniter(" ".join(fields), 0.0)
    except (CroniterError, ValueError) as exc:
        raise ScheduleError(f"invalid schedule: {exc}") from None

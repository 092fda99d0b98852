"""What a wall-clock schedule does when its zone's clock jumps: the choices a job makes, as the schedule reads them."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class SkippedTime(StrEnum):
    """A wall time that does not exist (spring forward): run at the first instant after the gap, or not at all."""

    SHIFT = "shift"
    SKIP = "skip"


class RepeatedTime(StrEnum):
    """A wall time that happens twice (fall back): run at the first of the two, or at both."""

    FIRST = "first"
    BOTH = "both"


class DstChoice(Protocol):
    """The job spec's `dst` block (`spec.model.DstPolicy`) as the schedule reads it."""

    @property
    def skipped(self) -> SkippedTime: ...

    @property
    def repeated(self) -> RepeatedTime: ...


@dataclass(frozen=True)
class DstDefault:
    skipped: SkippedTime = SkippedTime.SHIFT
    repeated: RepeatedTime = RepeatedTime.FIRST

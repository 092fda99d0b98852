"""Time as a parameter: every loop takes a Clock, so tests drive schedules with a FakeClock (cronframework.testing)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps; for timeouts and measured intervals."""
        ...

    def sleep(self, seconds: float, wake: threading.Event | None = None) -> bool:
        """Sleep up to `seconds`; return True when `wake` was set (early wake-up), False on timeout."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float, wake: threading.Event | None = None) -> bool:
        seconds = max(0.0, seconds)
        if wake is None:
            time.sleep(seconds)
            return False
        return wake.wait(seconds)

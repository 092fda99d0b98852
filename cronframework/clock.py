"""Time as a parameter: every loop takes a Clock, so tests drive schedules with a FakeClock (cronframework.testing)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime


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

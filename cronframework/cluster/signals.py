"""SIGTERM/SIGINT -> a stop event: the loop finishes the batch it is in (so sync point two is written), then exits."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

log = logging.getLogger("cronframework.signals")


def stop_on_signals(stop: threading.Event, also: Callable[[], None] | None = None) -> None:
    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info("shutdown requested", extra={"signal": signal.Signals(signum).name})
        stop.set()
        if also is not None:
            also()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)

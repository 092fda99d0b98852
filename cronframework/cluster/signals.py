"""Signals -> events: SIGTERM/SIGINT stop (the loop finishes the batch it is in, so sync point two is written, then
exits); SIGHUP asks for the job files to be read again."""

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


def reload_on_hangup(requested: threading.Event) -> None:
    """SIGHUP -> `requested`, as daemons re-read their files on it (its default action would end the process).

    Only an event is set: the handler runs in the main thread between two bytecodes of whatever it was doing, maybe
    inside a store transaction, so the reload itself belongs to a thread of its own.
    """

    def handler(_signum: int, _frame: FrameType | None) -> None:
        requested.set()

    signal.signal(signal.SIGHUP, handler)

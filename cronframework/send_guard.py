"""The last check before a backend call that cannot be taken back.

A leader checks its leadership, then builds and sends a launch's request. A process frozen in between (SIGSTOP, a
stalled VM) and thawed after its session expired sent it anyway: launches by a deposed leader, one to four an hour
in the 60-minute fault runs (docs/reliability.md). The engine arms this guard on the submitting thread with the check
it made; an adapter calls `before_send()` right before its irreversible request. When more than `STALE` seconds
have passed since the check -- a freeze shows as a jump of the monotonic clock -- leadership is checked again (the
session lease then asks ZooKeeper), and LeadershipLost stops the send. What is left is the time between this call
and the request leaving the process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

STALE = 0.25  # seconds after a check that a send checks again; a submit's own work takes milliseconds

_local = threading.local()


@contextmanager
def armed(check: Callable[[], None], monotonic: Callable[[], float]) -> Iterator[None]:
    """On this thread, for the block: sends made through `before_send` are guarded by `check` (just made)."""
    previous = getattr(_local, "guard", None)
    _local.guard = (check, monotonic, monotonic())
    try:
        yield
    finally:
        _local.guard = previous


def before_send() -> None:
    """Check leadership again if the last check on this thread is stale; a no-op outside `armed` (tools, tests)."""
    guard = getattr(_local, "guard", None)
    if guard is None:
        return
    check, monotonic, checked_at = guard
    if monotonic() - checked_at > STALE:
        check()
        _local.guard = (check, monotonic, monotonic())

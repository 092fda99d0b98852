"""The clock guard: no launches while this replica's clock and the store's disagree by more than the bound.

The store's clock is the cluster's reference (ZooKeeper's mtime of a fresh write). It is asked before the first
launch, then only every `every` seconds and after a tick's launches: the check is a write, and one queued behind a
herd's transactions had put up to 0.3 s on every launch of the second it ran in. While the clocks disagree it is
asked on every tick, and nothing launches; instants are not lost, they are decided (per catch-up) once it agrees.

Between two checks the wall clock is held against the monotonic clock: a step (NTP, a resumed VM, `date -s`) of
more than `STEP` is asked about at once, before the tick uses it. A step of 90 s ahead, trusted until the next
periodic check, made a leader launch every instant of the next 90 s early.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from cronframework.abc import Clock, LeaderStore

log = logging.getLogger("cronframework.leader")
STEP = timedelta(seconds=1)  # the wall clock moved apart from the monotonic one by more: check again now


class ClockGuard:
    def __init__(self, store: LeaderStore, clock: Clock, max_skew: timedelta, every: float) -> None:
        self._store, self._clock, self._max_skew, self._every = store, clock, max_skew, every
        self._next_check = 0.0
        self._checked: tuple[datetime, float] | None = None  # (wall, monotonic) clocks at the last check
        self.ok = True

    def allows(self, now: datetime) -> bool:
        """May this tick launch? Asks the store before the first launch, after a step of the wall clock and while
        the clocks disagree."""
        if self._next_check and self.ok and not self._stepped(now):
            return True
        return self._check(now)

    def recheck(self) -> None:
        """After a tick's launches: ask again when `every` has passed."""
        if self._clock.monotonic() >= self._next_check:
            self._check(self._clock.now())

    def _stepped(self, now: datetime) -> bool:
        if self._checked is None:
            return True
        wall, mono = self._checked
        return abs(now - wall - timedelta(seconds=self._clock.monotonic() - mono)) > STEP

    def _check(self, now: datetime) -> bool:
        self._next_check = self._clock.monotonic() + self._every
        self._checked = (now, self._clock.monotonic())
        skew = abs((self._store.server_time() - now).total_seconds())
        self.ok = skew <= self._max_skew.total_seconds()
        if not self.ok:
            log.error("clock skew with the state store too large; not launching", extra={"skew_seconds": skew})
        return self.ok

"""What the leader does after a tick's launches, apart from deciding them: run-time limits, retention, snapshots,
and keeping the cyclic GC away from the job tables."""

from __future__ import annotations

import gc
from collections.abc import Sequence
from datetime import datetime

from cronframework.engine.dispatcher import Dispatcher
from cronframework.engine.plan import Planned
from cronframework.engine.retention import Pruner
from cronframework.engine.runtime_limits import RuntimeLimits
from cronframework.ops.snapshot import PeriodicSnapshots
from cronframework.records import LaunchRecord


class Housekeeping:
    def __init__(self, limits: RuntimeLimits, pruner: Pruner, snapshots: PeriodicSnapshots | None) -> None:
        self.limits, self.pruner, self.snapshots = limits, pruner, snapshots

    def launched(self, records: Sequence[LaunchRecord], planned: Sequence[Planned]) -> None:
        """Launches to watch for `task.timeout`."""
        self.limits.watch(records, {p.identity.name: p.spec for p in planned})

    def snapshot(self) -> None:
        """A snapshot now if one is due (a new leader's is due at once); written in its own thread."""
        if self.snapshots is not None:
            self.snapshots.maybe_run()

    def after_tick(self, records: Sequence[LaunchRecord], jobs: Dispatcher, now: datetime) -> list[str]:
        """Returns the launches stopped past their run-time limit (their result is a time-out)."""
        stopped = self.limits.check()
        self.pruner.note(records)
        self.pruner.step(jobs, now)
        self.snapshot()  # guarded by time
        if records:
            settle_heap()
        return stopped


def freeze_heap() -> None:
    """Move what is alive now (specs, schedules, the heap of 100k jobs) out of the cyclic GC's reach: otherwise a
    full collection in the middle of a herd walks all of it, a pause of a few hundred ms at 10k jobs. Garbage is
    still freed by reference counting; only cycles among frozen objects would wait, and the job tables have none.
    A follower freezes its warm specs too (replica.py), so the collection at promotion walks only what is new."""
    gc.collect()
    gc.freeze()


def settle_heap() -> None:
    """After a tick that launched: collect the young generations, then freeze what survived. Every launch replaces
    its job's heap entry and state, so at 100k jobs a minute the survivors reached the oldest generation by the
    hundred thousand and CPython walked them all in a full collection every ~2 s, 110-160 ms each (steady 100k).
    Frozen, they are still freed by reference counting when replaced. Young cycles are collected first, so only a
    cycle reaching back into frozen objects could outlive its use; the leader makes none in steady state, and
    `benchmarks memory` watches for growth."""
    gc.collect(1)
    gc.freeze()

"""Sync point one applied in part: every instant still gets its record from the next leader.

Found by the 60-minute process run: after a restore, the first tick's batch hit a record newer than its watermark,
its launches were begun one by one, and ZooKeeper's quorum went away midway. The one launch written had moved its
job's watermark to the end of the tick, and the next leader never decided the 14 instants in between.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pytest

from cronframework.abc import Fence
from cronframework.errors import ConflictError, StateStoreUnavailable
from cronframework.naming import launch_name
from cronframework.records import Begin
from cronframework.testing import MemoryStore
from tests.leader_harness import T0, Cluster, job


class CutMidway(MemoryStore):
    """Refuses the first batch as a conflict, then goes away after `singles` launches begun one by one."""

    def __init__(self, cluster: Cluster, singles: int) -> None:
        super().__init__(cluster.clock)
        self.singles = singles
        self.armed = False

    def begin(self, fence: Fence, items: Sequence[Begin]) -> None:
        if self.armed and len(items) > 1:
            raise ConflictError("a record of this batch already exists")
        if self.armed and self.singles == 0:
            self.armed = False
            raise StateStoreUnavailable("quorum lost")
        if self.armed:
            self.singles -= 1
        super().begin(fence, items)


@pytest.mark.parametrize("concurrency", ["allow", "forbid"])
def test_a_tick_begun_in_part_loses_no_instant(concurrency: str) -> None:
    cluster = Cluster()
    store = cluster.store = CutMidway(cluster, singles=1)
    cluster.apply(job("j", concurrency=concurrency, catchup={"policy": "all", "window": "1h"}))
    first, _ = cluster.leader()
    first.promote()
    cluster.clock.advance(6 * 60)  # six instants missed while no leader ran
    store.armed = True
    second, _ = cluster.leader()
    with pytest.raises(StateStoreUnavailable):
        second.promote()
    third, _ = cluster.leader()
    third.promote()
    names = {r.name for r in store.history("j", limit=100)}
    due = [launch_name("j", T0 + timedelta(minutes=m)) for m in range(1, 7)]
    assert [name for name in due if name not in names] == []

"""Sync point one applied in part: every instant still gets its record from the next leader.

Found by the 60-minute process run: after a restore, the first tick's batch hit a record newer than its watermark,
its launches were begun one by one, and ZooKeeper's quorum went away midway. The one launch written had moved its
job's watermark to the end of the tick, and the next leader never decided the 14 instants in between.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any, cast

import pytest

from cronframework.abc import Fence
from cronframework.engine.launcher import FIRST_SLICE
from cronframework.errors import BeginRefused, ConflictError, StateStoreUnavailable
from cronframework.naming import launch_name
from cronframework.records import Begin
from cronframework.spec.model import JobSpec
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
    cluster.store = CutMidway(cluster, singles=1)
    spec = job("j", concurrency=concurrency, catchup={"policy": "all", "window": "1h"})
    names = _recorded_after_a_cut(cluster, spec, 6 * 60)  # six instants missed while no leader ran
    due = [launch_name("j", T0 + timedelta(minutes=m)) for m in range(1, 7)]
    assert [name for name in due if name not in names] == []


def _recorded_after_a_cut(cluster: Cluster, spec: JobSpec, missed: float) -> set[str]:
    """A leader; `missed` seconds with none; a second leader whose catch-up the store (armed) cuts midway; a third
    one. The launch names recorded of `spec`'s job."""
    store = cast(CutMidway, cluster.store)
    cluster.apply(spec)
    first, _ = cluster.leader()
    first.promote()
    cluster.clock.advance(missed)
    store.armed = True
    second, _ = cluster.leader()
    with pytest.raises(StateStoreUnavailable):
        second.promote()
    third, _ = cluster.leader()
    third.promote()
    return {r.name for r in store.history(spec.name, limit=1000)}


class RefusesFirstSlice(CutMidway):
    """Refuses the first multi-launch begin as a conflict and takes the next ones; once armed, goes away after
    `singles` launches begun one by one."""

    refused = False

    def begin(self, fence: Fence, items: Sequence[Begin]) -> None:
        if self.armed and len(items) > 1 and not self.refused:
            self.refused = True
            raise ConflictError("a record of this slice already exists")
        if self.armed and len(items) == 1:
            if self.singles == 0:
                self.armed = False
                raise StateStoreUnavailable("quorum lost")
            self.singles -= 1
        MemoryStore.begin(self, fence, items)


def test_a_slice_refused_in_a_herd_lets_no_later_slice_move_its_job_past_it() -> None:
    """Found by the 60-minute runs (process and Nomad): after a restore the catch-up tick's first slice hit a record
    newer than its watermark while the second slice, sent meanwhile, was applied, moving the job's watermark to the
    end of the tick; the leader died while beginning the first slice one launch at a time, and the next leader never
    decided the rest of that slice's instants."""
    cluster = Cluster()
    cluster.store = RefusesFirstSlice(cluster, singles=0)
    missed = FIRST_SLICE + 50  # more instants missed than the herd's first slice holds
    spec = job("j", "* * * * * *", catchup={"policy": "all", "window": "1h", "max": 1000})
    names = _recorded_after_a_cut(cluster, spec, missed)
    due = [launch_name("j", T0 + timedelta(seconds=s)) for s in range(1, missed + 1)]
    assert [name for name in due if name not in names] == []


class AnswersLater(RefusesFirstSlice):
    """Sync point one answered when awaited, as ZooKeeper does: the first multi-launch slice fails as a conflict when
    its answer is awaited, and a slice sent before that answer was seen is refused untried (`BeginRefused`)."""

    unseen_failure = False

    def prepare_begin(self, fence: Fence, items: Sequence[Begin]) -> Any:
        return _Later(self, fence, items)


@dataclass
class _Later:
    store: AnswersLater
    fence: Fence
    items: Sequence[Begin]

    def send(self) -> Callable[[], None]:
        store = self.store
        if store.armed and len(self.items) > 1 and not store.refused:
            store.refused = store.unseen_failure = True

            def failed() -> None:
                store.unseen_failure = False
                raise ConflictError("a record of this slice already exists")

            return failed
        if store.unseen_failure:
            return partial(_raise, BeginRefused("behind a begin that failed"))
        store.begin(self.fence, self.items)
        return lambda: None

    def discard(self) -> None:
        return None


def _raise(exc: BaseException) -> None:
    raise exc


@pytest.mark.parametrize("singles", [0, 10**6], ids=["leader-lost-midway", "whole-tick"])
def test_a_slice_sent_behind_a_failed_one_is_begun_again_after_it(singles: int) -> None:
    """The same herd on a store that answers later: the second slice, on the wire before the first one's conflict
    was seen, is refused untried and sent again once the first slice's launches are begun one by one."""
    cluster = Cluster()
    store = cluster.store = AnswersLater(cluster, singles=singles)
    cluster.apply(job("j", "* * * * * *", catchup={"policy": "all", "window": "1h", "max": 1000}))
    first, _ = cluster.leader()
    first.promote()
    missed = FIRST_SLICE + 50
    cluster.clock.advance(missed)
    store.armed = True
    second, _ = cluster.leader()
    if singles == 0:
        with pytest.raises(StateStoreUnavailable):
            second.promote()
        second, _ = cluster.leader()
    second.promote()
    names = [r.name for r in store.history("j", limit=1000)]
    due = [launch_name("j", T0 + timedelta(seconds=s)) for s in range(1, missed + 1)]
    assert [name for name in due if name not in names] == [] and len(names) == len(set(names))
    assert store.read_job_states()["j"].next_scheduled == T0 + timedelta(seconds=missed + 1)

"""The StateStore conformance suite run against the in-memory fake and the embedded SQLite store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cronframework.errors import StateStoreError
from cronframework.leadership import SoleLeader
from cronframework.records import Outcome
from cronframework.store import Begin, StateStore
from cronframework.store.embedded import SqliteStore
from cronframework.testing import FakeFence, MemoryStore
from tests.store_conformance import T0, StoreConformance, make_begin


class SkippedRecords:
    """Shared extra: a record begun already finished (a skipped instant) is never listed open."""

    def test_begin_of_a_finished_record_is_not_open(self, store: StateStore, fence: SoleLeader) -> None:
        item = make_begin(fence, "alpha", T0)
        skipped = item.record.finish(Outcome.SKIPPED, now=T0, reason="paused")
        store.begin(fence, [Begin(skipped, item.next_state)])
        assert store.open_launches() == []
        assert store.get_launch(skipped.name) == skipped
        assert store.read_job_states()["alpha"] == item.next_state


class TestMemoryStore(StoreConformance, SkippedRecords):
    @pytest.fixture
    def store(self) -> MemoryStore:
        return MemoryStore()

    @pytest.fixture
    def fence(self) -> FakeFence:
        return FakeFence()

    @pytest.fixture
    def invalid_fence(self) -> FakeFence:
        return FakeFence(epoch=0, replica="old", valid=False)


class TestSqliteStore(StoreConformance, SkippedRecords):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[SqliteStore]:
        store = SqliteStore(tmp_path / "state.sqlite")
        yield store
        store.close()

    @pytest.fixture
    def fence(self, store: SqliteStore) -> SoleLeader:
        return store.acquire_leadership("r1")

    @pytest.fixture
    def invalid_fence(self) -> SoleLeader:
        return SoleLeader(epoch=0, replica="gone", active=False)

    def test_second_process_on_the_same_state_is_refused(self, tmp_path: Path) -> None:
        first = SqliteStore(tmp_path / "s.sqlite")
        second = SqliteStore(tmp_path / "s.sqlite")
        try:
            first.acquire_leadership("a")
            with pytest.raises(StateStoreError, match="another cronframework process"):
                second.acquire_leadership("b")
        finally:
            first.close()
            second.close()

    def test_epoch_grows_with_each_holder(self, tmp_path: Path) -> None:
        epochs = []
        for name in ("a", "b"):
            store = SqliteStore(tmp_path / "s.sqlite")
            epochs.append(store.acquire_leadership(name).epoch)
            store.close()
        assert epochs == [1, 2]

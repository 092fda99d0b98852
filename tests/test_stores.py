"""The StateStore conformance suite run against the in-memory fake and the embedded SQLite store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cronframework.errors import StateStoreError
from cronframework.store.sqlite import SoleLeader, SqliteStore
from cronframework.testing import FakeFence, MemoryStore
from tests.store_conformance import StoreConformance


class TestMemoryStore(StoreConformance):
    @pytest.fixture
    def store(self) -> MemoryStore:
        return MemoryStore()

    @pytest.fixture
    def fence(self) -> FakeFence:
        return FakeFence()

    @pytest.fixture
    def invalid_fence(self) -> FakeFence:
        return FakeFence(epoch=0, replica="old", valid=False)


class TestSqliteStore(StoreConformance):
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

"""The StateStore protocol: specs, schedule state, launch records, trigger requests, all behind one small interface.

Two implementations pass the same conformance suite (tests/store_conformance.py): `zookeeper.ZooKeeperStore`
(kazoo; every leader write is a multi-op transaction that also checks the leader's election znode -- fencing) and
`embedded.SqliteStore` (one machine; fencing by an exclusive file lock). `cronframework.testing.MemoryStore` is the
in-memory fake for fast tests.

Writes split in two families:
- leader writes (`begin`, `finish`, `prune`, `take_triggers`, `put_job_states`, `write_takeover`) are fenced: they raise
  LeadershipLost once this replica no longer leads, and nothing of the batch is applied;
- operator writes (`write_specs`, `set_paused`, `request_trigger`) are plain versioned writes anyone may make.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from cronframework.records import JobState, LaunchRecord, TriggerRequest


@dataclass(frozen=True)
class StoredSpec:
    """A job spec as applied: its JSON document and the version `apply` wrote."""

    name: str
    document: Mapping[str, Any]
    version: int


@dataclass(frozen=True)
class Begin:
    """Sync point one for one launch: the new record, and the job's next scheduled instant after it."""

    record: LaunchRecord
    next_state: JobState
    consumed_trigger: str | None = None


@dataclass(frozen=True)
class SpecChange:
    """One job's change for `apply`: document None deletes. `expected_version` None means "must not exist"."""

    name: str
    document: Mapping[str, Any] | None
    expected_version: int | None


class Fence(Protocol):
    """Proof of leadership that the store checks inside every leader write."""

    @property
    def epoch(self) -> int: ...

    @property
    def replica(self) -> str: ...


class StateStore(Protocol):
    # -- specs: written by `apply`, watched by every replica
    def read_specs(self) -> dict[str, StoredSpec]: ...

    def write_specs(self, changes: Sequence[SpecChange]) -> None:
        """All or nothing; ConflictError when a version moved since it was read."""
        ...

    def watch_specs(self, callback: Callable[[], None]) -> None:
        """Call `callback` (from any thread) after the set of specs or any spec changes."""
        ...

    # -- schedule state
    def read_job_states(self) -> dict[str, JobState]: ...

    def put_job_states(self, fence: Fence, states: Sequence[JobState]) -> None:
        """Fenced; for jobs seen for the first time and for catch-up decisions that launch nothing."""
        ...

    def read_paused(self) -> set[str]: ...

    def set_paused(self, job: str, paused: bool) -> None: ...

    # -- launches
    def begin(self, fence: Fence, items: Sequence[Begin]) -> None:
        """Sync point one, batched: create each record (state begun) and advance each job's state, atomically per
        batch. Raises ConflictError if a record by that name already exists (nothing of the batch is applied)."""
        ...

    def begin_soon(self, fence: Fence, items: Sequence[Begin]) -> Callable[[], None]:
        """`begin`, sent without waiting: the returned call waits for it and raises what `begin` would. Lets a
        herd's next slice be planned while the store commits this one; nothing may be submitted before the
        call returns. Stores without pipelining begin at once and return a no-op."""
        ...

    def finish(self, fence: Fence, records: Sequence[LaunchRecord]) -> None:
        """Sync point two, batched: overwrite each record with its finished form."""
        ...

    def get_launch(self, name: str) -> LaunchRecord | None: ...

    def open_launches(self) -> list[LaunchRecord]:
        """Every record still in state begun, oldest scheduled first."""
        ...

    def history(self, job: str, limit: int = 20) -> list[LaunchRecord]:
        """The newest `limit` records of `job`, newest first; costs O(limit) record reads."""
        ...

    def prune(self, fence: Fence, job: str, names: Sequence[str]) -> None:
        """Delete finished records (retention). Open records are never deleted: the store refuses them."""
        ...

    # -- manual triggers
    def request_trigger(self, job: str, *, force: bool, now: datetime) -> TriggerRequest: ...

    def pending_triggers(self) -> list[TriggerRequest]: ...

    def drop_trigger(self, fence: Fence, trigger_id: str) -> None: ...

    # -- leadership bookkeeping (written by the leader, read by `status`)
    def write_takeover(self, fence: Fence, report: Mapping[str, Any]) -> None: ...

    def read_takeover(self) -> Mapping[str, Any] | None: ...

    def server_time(self) -> datetime:
        """The store's own clock (e.g. ZooKeeper's mtime of a fresh write): the clock guard compares with it."""
        ...

    def close(self) -> None: ...


def already_committed() -> None:
    """`begin_soon`'s waiter for a store that applied the begin before returning."""

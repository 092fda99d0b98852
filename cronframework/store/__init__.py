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


class PreparedBegin(Protocol):
    """A `begin` built by `prepare_begin`, not yet sent."""

    def send(self) -> Callable[[], None]:
        """Send it; the returned call waits for the store and raises what `begin` would. Stores without
        pipelining apply it here (raising here) and return `already_committed`."""
        ...

    def discard(self) -> None:
        """It will not be sent: drop what building it assumed (e.g. folders counted as made by it)."""
        ...


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

    def prepare_begin(self, fence: Fence, items: Sequence[Begin]) -> PreparedBegin:
        """`begin`, built but not sent: the CPU work of sync point one, done ahead of the launches' instant while
        the leader waits for it (a staged herd); `send()` then costs little more than the round trip. Nothing is
        written before `send()`, and nothing may be submitted before the call it returns has returned."""
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
    """`PreparedBegin.send`'s waiter for a store that applied the begin before returning."""


@dataclass(frozen=True)
class BeginNow:
    """`prepare_begin` of a store that applies a begin at once: nothing to build ahead, `send` is `begin`."""

    begin: Callable[[Fence, Sequence[Begin]], None]
    fence: Fence
    items: Sequence[Begin]

    def send(self) -> Callable[[], None]:
        self.begin(self.fence, self.items)
        return already_committed

    def discard(self) -> None:
        return None

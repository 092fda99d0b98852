"""Every protocol the core is built on, in one place: what each side may rely on and what it may raise.

- `Clock`: time as a parameter (`SystemClock` live, `testing.FakeClock` in tests).
- `Fence`, `Leadership`: proof of leadership, checked by the store inside every leader write and by the launch path
  before every backend call.
- The state store, split by who uses it: `ReadStore` (status, API, CLI), `OperatorStore` (apply, pause, trigger),
  `LeaderStore` (the leader's fenced writes); `StateStore` is all three, as the ZooKeeper, SQLite and memory stores
  implement it. Store errors are `errors.StateStoreError` and its kinds (unavailable, conflict, leadership lost).
- `Backend`: a datacenter scheduler seen through deterministic launch names, with its optional capabilities declared
  (`Watching`: it can say which launches ended without being asked about each; `Confirming`: its submit is a write
  and a check that the launcher may split apart).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from cronframework.launch import BackendStatus, Launch, SubmitOutcome
from cronframework.records import (
    Begin,
    JobResults,
    JobState,
    LaunchRecord,
    Notice,
    ResultBatch,
    SpecChange,
    StoredSpec,
    TriggerRequest,
)


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps; for timeouts and measured intervals."""
        ...

    def sleep(self, seconds: float, wake: threading.Event | None = None) -> bool:
        """Sleep up to `seconds`; return True when `wake` was set (early wake-up), False on timeout."""
        ...


class PreparedBegin(Protocol):
    """A `begin` built by `prepare_begin`, not yet sent."""

    def send(self) -> Callable[[], None]:
        """Send it; the returned call waits for the store and raises what `begin` would. Stores without
        pipelining apply it here (raising here) and return `already_committed`."""
        ...

    def discard(self) -> None:
        """It will not be sent: drop what building it assumed (e.g. folders counted as made by it)."""
        ...


class Closeable(Protocol):
    """Something a process starts beside its scheduler and closes on the way out (the HTTP API)."""

    def close(self) -> None: ...


class Fence(Protocol):
    """Proof of leadership that the store checks inside every leader write."""

    @property
    def epoch(self) -> int: ...

    @property
    def replica(self) -> str: ...


class Leadership(Protocol):
    @property
    def fence(self) -> Fence: ...

    def check(self) -> None:
        """Raise LeadershipLost when this replica must not call a backend (SUSPENDED counts: it may be deposed)."""
        ...


class ReadStore(Protocol):
    """What anyone may read: `status`, the API, the CLI, and every replica's spec cache."""

    def read_specs(self) -> dict[str, StoredSpec]: ...

    def watch_specs(self, callback: Callable[[], None]) -> None:
        """Call `callback` (from any thread) after the set of specs or any spec changes."""
        ...

    def read_job_states(self, jobs: Collection[str] | None = None) -> dict[str, JobState]:
        """Every job's schedule state, or only those of `jobs` (a page reads what it shows, not 10,000)."""
        ...

    def read_paused(self) -> set[str]: ...

    def get_launch(self, name: str) -> LaunchRecord | None: ...

    def open_launches(self) -> list[LaunchRecord]:
        """Every record still in state begun, oldest scheduled first."""
        ...

    def following_launches(self) -> list[LaunchRecord]:
        """Every record launched whose task's result (or a retry it asked for) is still to come
        (`LaunchRecord.following`), oldest scheduled first: what a new leader follows on."""
        ...

    def read_job_results(self, jobs: Collection[str] | None = None) -> dict[str, JobResults]:
        """Each job's summary of results (last success and failure, failures in a row, last runs); only those of
        `jobs` when given."""
        ...

    def read_outbox(self) -> list[Notice]:
        """Every notification in the outbox, pending or undeliverable, oldest first."""
        ...

    def history(self, job: str, limit: int = 20) -> list[LaunchRecord]:
        """The newest `limit` records of `job`, newest first; costs O(limit) record reads."""
        ...

    def histories(self, jobs: Collection[str], limit: int) -> dict[str, list[LaunchRecord]]:
        """`history(job, limit)` of each of `jobs` (a job without records is absent), read together: a page of
        10,000 jobs costs a few requests, not one per job."""
        ...

    def last_results(self, jobs: Collection[str], now: datetime | None = None) -> dict[str, str]:
        """Each job's newest record in one word (`LaunchRecord.word`); a job without records is absent. What a
        filter or order by last result needs of 10,000 jobs, without decoding 10,000 records. `now`, when given,
        is where a store may look first: no record is scheduled more than a few minutes after it (a launch is
        begun at its instant or `stage_ahead` before it, a manual one at its request)."""
        ...

    def full_histories(self, jobs: Collection[str]) -> dict[str, list[LaunchRecord]]:
        """Every record of each of `jobs`, newest first (a backup's read): one pass for all of them, not one per job."""
        ...

    def pending_triggers(self) -> list[TriggerRequest]: ...

    def read_takeover(self) -> Mapping[str, Any] | None: ...

    def close(self) -> None: ...


class OperatorStore(ReadStore, Protocol):
    """Plain versioned writes anyone may make (`apply`, `pause`, `trigger`): no fence, no leadership needed."""

    def write_specs(self, changes: Sequence[SpecChange]) -> None:
        """All or nothing; ConflictError when a version moved since it was read."""
        ...

    def set_paused(self, job: str, paused: bool) -> None: ...

    def request_trigger(self, job: str, *, force: bool, now: datetime) -> TriggerRequest: ...


class LeaderStore(ReadStore, Protocol):
    """The leader's writes. Each is fenced: LeadershipLost once this replica no longer leads, with nothing of the
    batch applied; StateStoreUnavailable while the store cannot be reached."""

    def put_job_states(self, fence: Fence, states: Sequence[JobState]) -> None:
        """For jobs seen for the first time and for catch-up decisions that launch nothing."""
        ...

    def begin(self, fence: Fence, items: Sequence[Begin]) -> None:
        """Sync point one, batched: create each record (state begun, or already skipped with its notices) and advance
        each job's state, atomically per batch. Raises ConflictError if a record by that name already exists (nothing
        of the batch is applied)."""
        ...

    def prepare_begin(self, fence: Fence, items: Sequence[Begin]) -> PreparedBegin:
        """`begin`, built but not sent: the CPU work of sync point one, done ahead of the launches' instant while
        the leader waits for it (a staged herd); `send()` then costs little more than the round trip. Nothing is
        written before `send()`, and nothing may be submitted before the call it returns has returned."""
        ...

    def finish(self, fence: Fence, records: Sequence[LaunchRecord], notices: Sequence[Notice] = ()) -> None:
        """Sync point two, batched: overwrite each record with its finished form; each notice (about one of the
        records: a failed launch) goes into the outbox atomically with its record. A notice already in the outbox is
        left as it is, so writing the same batch again is harmless."""
        ...

    def record_results(self, fence: Fence, batch: ResultBatch) -> None:
        """The result follower's write, batched like sync point two: each record (already finished) rewritten with
        its task's result, each job's summary, its notifications (into the outbox) and its suspension (the job's
        pause flag, set unless set), atomically per job. A record no longer following leaves the store's list of
        launches to follow. StateStoreError if a record was never begun."""
        ...

    def settle_notices(self, fence: Fence, remove: Sequence[str], rewrite: Sequence[Notice]) -> None:
        """After deliveries: the notices named in `remove` (delivered, or the oldest undeliverable ones past what is
        kept) leave the outbox; those in `rewrite` (undeliverable) are overwritten with their state and last error.
        A notice already gone is not an error."""
        ...

    def prune(self, fence: Fence, job: str, names: Sequence[str]) -> None:
        """Delete finished records (retention). Open records are never deleted: the store refuses them."""
        ...

    def drop_trigger(self, fence: Fence, trigger_id: str) -> None: ...

    def request_trigger(self, job: str, *, force: bool, now: datetime) -> TriggerRequest:
        """Unfenced, as an operator's: the leader asks for a manual launch it found on the backend after a restore
        (engine/restore_listing.py), which its next tick finds by name and records."""
        ...

    def write_takeover(self, fence: Fence, report: Mapping[str, Any]) -> None: ...

    def server_time(self) -> datetime:
        """The store's own clock (e.g. ZooKeeper's mtime of a fresh write): the clock guard compares with it."""
        ...


class StateStore(LeaderStore, OperatorStore, Protocol):
    """A whole store, as the ZooKeeper, SQLite and memory stores implement it (tests/store_conformance.py)."""


@runtime_checkable
class Backend(Protocol):
    """A datacenter scheduler seen through names. Raise TransientBackendError / PermanentBackendError only.

    Optional capabilities are declared, not probed: `blocking` False says a submit returns at once (the launcher
    then calls it inline instead of through its pool); `enforces_timeout` True says the backend stops a task past
    `task.timeout` itself, so the leader's run-time limits leave it alone; `watches` True says it also implements
    `Watching`, so the result follower need not look every running launch up; `confirms` True says it also
    implements `Confirming`, so the launcher makes a herd's writes first and their checks after."""

    blocking: bool
    enforces_timeout: bool
    watches: bool
    confirms: bool

    def submit(self, name: str, launch: Launch) -> SubmitOutcome:
        """Start the launch unless one by this name exists; never starts two. Call `send_guard.before_send()` right
        before the request that cannot be taken back, so a leader frozen since its check sends nothing."""
        ...

    def lookup(self, name: str) -> BackendStatus | None:
        """The launch's state, or None when the backend has no record of the name."""
        ...

    def stop(self, name: str) -> None:
        """Stop a running launch (for `concurrency: replace` and run-time limits); no error when already gone."""
        ...

    def list(self, job: str) -> list[str]:
        """Names of the launches of `job` that the backend still knows."""
        ...

    def logs(self, name: str) -> str:
        """The launch's output, as far as the backend keeps it."""
        ...

    def remove(self, name: str) -> None:
        """Forget a finished launch (retention cleanup); never called for open launches."""
        ...

    def retention_horizon(self) -> timedelta | None:
        """How long the backend keeps a finished launch (e.g. Nomad's job GC threshold); None = until removed.
        Recovery keeps its window below it, so "not found" never means "already collected"."""
        ...

    def close(self) -> None: ...


class Watching(Protocol):
    """A backend that can tell which of its launches ended (Docker's events, Nomad's blocking queries, the process
    backend's exit files): the result follower asks it instead of looking up every running launch, and keeps a slow
    lookup sweep only as the fallback."""

    def ended(self, names: Collection[str], timeout: float) -> set[str]:
        """Those of `names` that ended, or may have (a hint: the follower looks each up before it writes anything),
        waiting up to `timeout` seconds while none has; an empty set when none did in that time. A launch that ended
        before the first call is reported too, or left to the sweep. TransientBackendError when it cannot watch now
        (the follower then relies on the sweep until it can)."""
        ...


class Confirming(Protocol):
    """A backend whose submit is a write and then a check of it (Nomad: its create-only write is not atomic, so a
    read of the job tells which of two racing writes created it). `submit(name, launch)` is exactly
    `register(name, launch)()`; a launcher with a herd to submit makes every write first and the checks after, so
    that the checks do not hold the herd's writes up."""

    def register(self, name: str, launch: Launch) -> Callable[[], SubmitOutcome]:
        """The write alone, raising what `submit` raises for it. The returned call is its check, with `submit`'s
        outcome and errors; it may be made at any later time, and never starts anything."""
        ...

    def prepare(self, launches: Sequence[Launch]) -> None:
        """Build the writes of `launches` ahead of their instant, while the leader stages a herd, so that at the
        instant its CPU goes to sending them. A later `register` of an equal launch sends what was built; any other
        launch is built then. Sends nothing, never raises for a launch it cannot build (its `register` does), and
        holds a bounded number."""
        ...


class BackendFactory(Protocol):
    def __call__(self, config: Mapping[str, Any]) -> Backend: ...

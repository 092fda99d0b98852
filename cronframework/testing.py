"""Fakes for fast tests: a clock tests advance by hand, an in-memory StateStore, a backend with per-method faults.

They are part of the package (not tests/) so benchmarks and downstream projects can use them too.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from cronframework.abc import Fence
from cronframework.errors import ConflictError, LeadershipLost, PermanentBackendError, StateStoreError
from cronframework.launch import BackendStatus, Launch, LaunchState, SubmitOutcome
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
from cronframework.store import BeginNow

T = TypeVar("T")


class FakeClock:
    """A clock that moves only when told; `sleep` advances it (and returns early when woken)."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._mono = 0.0
        self.sleeps: list[float] = []

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)
        self._mono += seconds

    def step(self, seconds: float) -> None:
        """Step the wall clock alone, as NTP or `date -s` does: the monotonic clock does not move."""
        self._now += timedelta(seconds=seconds)

    def set(self, instant: datetime) -> None:
        self.advance((instant - self._now).total_seconds())

    def sleep(self, seconds: float, wake: threading.Event | None = None) -> bool:
        self.sleeps.append(seconds)
        if wake is not None and wake.is_set():
            return True
        self.advance(max(0.0, seconds))
        return False


@dataclass
class FakeFence:
    epoch: int = 1
    replica: str = "r1"
    valid: bool = True


def _only(items: Mapping[str, T], jobs: Collection[str] | None) -> dict[str, T]:
    """A copy of `items`, only the keys in `jobs` when given."""
    return dict(items) if jobs is None else {job: items[job] for job in set(jobs) if job in items}


class MemoryStore:
    """StateStore in memory, with the same atomicity and fencing rules as the real ones."""

    def __init__(self, clock: FakeClock | None = None) -> None:
        self._clock = clock
        self._lock = threading.RLock()
        self.specs: dict[str, StoredSpec] = {}
        self.states: dict[str, JobState] = {}
        self.paused: set[str] = set()
        self.records: dict[str, LaunchRecord] = {}
        self.results: dict[str, JobResults] = {}
        self.outbox: dict[str, Notice] = {}
        self.triggers: dict[str, TriggerRequest] = {}
        self.takeover: Mapping[str, Any] | None = None
        self._watchers: list[Callable[[], None]] = []
        self._trigger_ids = itertools.count(1)
        self.writes = 0

    def _check(self, fence: Fence) -> None:
        if not getattr(fence, "valid", True):
            raise LeadershipLost(f"replica {fence.replica} no longer leads (epoch {fence.epoch})")
        self.writes += 1

    def read_specs(self) -> dict[str, StoredSpec]:
        with self._lock:
            return dict(self.specs)

    def write_specs(self, changes: Sequence[SpecChange]) -> None:
        with self._lock:
            for change in changes:
                current = self.specs.get(change.name)
                if (current.version if current else None) != change.expected_version:
                    raise ConflictError(f"spec {change.name!r} changed since it was read")
            for change in changes:
                if change.document is None:
                    self.specs.pop(change.name, None)
                else:
                    version = change.expected_version + 1 if change.expected_version is not None else 0
                    self.specs[change.name] = StoredSpec(change.name, dict(change.document), version)
        for callback in list(self._watchers):
            callback()

    def watch_specs(self, callback: Callable[[], None]) -> None:
        self._watchers.append(callback)

    def read_job_states(self, jobs: Collection[str] | None = None) -> dict[str, JobState]:
        with self._lock:
            return _only(self.states, jobs)

    def put_job_states(self, fence: Fence, states: Sequence[JobState]) -> None:
        with self._lock:
            self._check(fence)
            self.states.update({s.job: s for s in states})

    def read_paused(self) -> set[str]:
        with self._lock:
            return set(self.paused)

    def set_paused(self, job: str, paused: bool) -> None:
        with self._lock:
            (self.paused.add if paused else self.paused.discard)(job)

    def prepare_begin(self, fence: Fence, items: Sequence[Begin]) -> BeginNow:
        return BeginNow(self.begin, fence, items)  # nothing to build ahead: applied when sent

    def begin(self, fence: Fence, items: Sequence[Begin]) -> None:
        with self._lock:
            self._check(fence)
            for item in items:
                if item.record.name in self.records:
                    raise ConflictError(f"launch {item.record.name} already recorded")
            for item in items:
                self.records[item.record.name] = item.record  # a skipped instant arrives already finished
                self.states[item.next_state.job] = item.next_state
                if item.consumed_trigger:
                    self.triggers.pop(item.consumed_trigger, None)
                self._add_notices(item.notices)

    def _add_notices(self, notices: Sequence[Notice]) -> None:
        for notice in notices:
            self.outbox.setdefault(notice.id, notice)

    def finish(self, fence: Fence, records: Sequence[LaunchRecord], notices: Sequence[Notice] = ()) -> None:
        with self._lock:
            self._check(fence)
            for record in records:
                if record.name not in self.records:
                    raise StateStoreError(f"launch {record.name} was never begun")
            self.records.update({r.name: r for r in records})
            self._add_notices(notices)

    def record_results(self, fence: Fence, batch: ResultBatch) -> None:
        with self._lock:
            self._check(fence)
            for record in batch.records:
                if record.name not in self.records:
                    raise StateStoreError(f"launch {record.name} was never begun")
            self.records.update({r.name: r for r in batch.records})
            self.results.update({s.job: s for s in batch.summaries})
            self._add_notices(batch.notices)
            self.paused.update(batch.pause)

    def read_outbox(self) -> list[Notice]:
        with self._lock:
            return sorted(self.outbox.values(), key=lambda n: (n.created_at, n.id))

    def settle_notices(self, fence: Fence, remove: Sequence[str], rewrite: Sequence[Notice]) -> None:
        with self._lock:
            self._check(fence)
            for name in remove:
                self.outbox.pop(name, None)
            for notice in rewrite:
                if notice.id in self.outbox:
                    self.outbox[notice.id] = notice

    def get_launch(self, name: str) -> LaunchRecord | None:
        with self._lock:
            return self.records.get(name)

    def open_launches(self) -> list[LaunchRecord]:
        with self._lock:
            return sorted((r for r in self.records.values() if r.open), key=lambda r: (r.scheduled, r.name))

    def following_launches(self) -> list[LaunchRecord]:
        with self._lock:
            return sorted((r for r in self.records.values() if r.following), key=lambda r: (r.scheduled, r.name))

    def read_job_results(self, jobs: Collection[str] | None = None) -> dict[str, JobResults]:
        with self._lock:
            return _only(self.results, jobs)

    def history(self, job: str, limit: int = 20) -> list[LaunchRecord]:
        return self.histories([job], limit).get(job, [])

    def histories(self, jobs: Collection[str], limit: int) -> dict[str, list[LaunchRecord]]:
        asked = set(jobs)
        out: dict[str, list[LaunchRecord]] = {}
        with self._lock:
            for record in self.records.values():
                if record.job in asked:
                    out.setdefault(record.job, []).append(record)
        newest = {
            job: sorted(mine, key=lambda r: (r.scheduled, r.name), reverse=True)[:limit] for job, mine in out.items()
        }
        return {job: mine for job, mine in newest.items() if mine}

    def last_results(self, jobs: Collection[str], now: datetime | None = None) -> dict[str, str]:
        return {job: records[0].word for job, records in self.histories(jobs, 1).items()}

    def full_histories(self, jobs: Collection[str]) -> dict[str, list[LaunchRecord]]:
        return {job: self.history(job, len(self.records)) for job in jobs}

    def prune(self, fence: Fence, job: str, names: Sequence[str]) -> None:
        with self._lock:
            self._check(fence)
            if any(self.records[n].open for n in names if n in self.records):
                raise StateStoreError("refusing to prune an open launch record")
            for name in names:
                self.records.pop(name, None)

    def request_trigger(self, job: str, *, force: bool, now: datetime) -> TriggerRequest:
        with self._lock:
            request = TriggerRequest(f"t-{next(self._trigger_ids):010d}", job, now, force)
            self.triggers[request.id] = request
            return request

    def pending_triggers(self) -> list[TriggerRequest]:
        with self._lock:
            return sorted(self.triggers.values(), key=lambda t: t.id)

    def drop_trigger(self, fence: Fence, trigger_id: str) -> None:
        with self._lock:
            self._check(fence)
            self.triggers.pop(trigger_id, None)

    def write_takeover(self, fence: Fence, report: Mapping[str, Any]) -> None:
        with self._lock:
            self._check(fence)
            self.takeover = dict(report)

    def read_takeover(self) -> Mapping[str, Any] | None:
        return self.takeover

    def server_time(self) -> datetime:
        return self._clock.now() if self._clock else datetime.now(UTC)

    def close(self) -> None:
        pass


@dataclass
class FakeBackend:
    blocking = True
    enforces_timeout = False
    watches = False
    confirms = False
    """A backend whose every method can fail on its own: set `fail[method] = exception` (or a callable)."""

    launches: dict[str, BackendStatus] = field(default_factory=dict)
    submitted: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    fail: dict[str, BaseException | Callable[[str], BaseException | None]] = field(default_factory=dict)
    initial_state: LaunchState = LaunchState.RUNNING
    on_submit: Callable[[str, Launch], None] | None = None
    horizon: timedelta | None = None

    def _maybe_fail(self, method: str, name: str) -> None:
        fault = self.fail.get(method)
        if fault is None:
            return
        error = fault(name) if callable(fault) and not isinstance(fault, BaseException) else fault
        if error is not None:
            raise error

    def submit(self, name: str, launch: Launch) -> SubmitOutcome:
        self._maybe_fail("submit", name)
        if self.on_submit:
            self.on_submit(name, launch)
        if name in self.launches:
            return SubmitOutcome.ALREADY_EXISTED
        self.launches[name] = BackendStatus(self.initial_state)
        self.submitted.append(name)
        return SubmitOutcome.SUBMITTED

    def lookup(self, name: str) -> BackendStatus | None:
        self._maybe_fail("lookup", name)
        return self.launches.get(name)

    def stop(self, name: str) -> None:
        self._maybe_fail("stop", name)
        self.stopped.append(name)
        if name in self.launches and self.launches[name].state.active:
            self.launches[name] = replace(self.launches[name], state=LaunchState.FAILED, reason="stopped")

    def list(self, job: str) -> list[str]:
        self._maybe_fail("list", job)
        return sorted(n for n in self.launches if n.startswith(f"{job}-"))

    def logs(self, name: str) -> str:
        return ""

    def remove(self, name: str) -> None:
        self._maybe_fail("remove", name)
        status = self.launches.get(name)
        if status is not None and status.state.active:
            raise PermanentBackendError(f"refusing to remove {name}: it is still {status.state.value}")
        self.launches.pop(name, None)

    def close(self) -> None:
        pass

    def retention_horizon(self) -> timedelta | None:
        return self.horizon

    def finish_all(self, state: LaunchState = LaunchState.SUCCEEDED) -> None:
        for name, status in self.launches.items():
            if status.state.active:
                self.launches[name] = BackendStatus(state, exit_code=0 if state is LaunchState.SUCCEEDED else 1)

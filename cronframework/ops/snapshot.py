"""Backups: the whole state store as one JSON document, and its restore into an empty store (docs/backups.md).

Consistency. ZooKeeper offers no multi-node read snapshot, so `capture` reads in an order that is safe to restore:
job states first, then pending triggers, then launch records, then job states again. Every `begin` writes a record
and its job's watermark in one transaction, so reading watermarks BEFORE records means a restored watermark never
claims an instant whose record is missing; at worst a record is newer than its watermark, and the restored leader,
reaching that instant, finds the name taken and does not launch it again (the launcher's ConflictError path). A
trigger consumed between the two reads shows up as both a trigger and its manual record; the trigger is dropped.
When the second read of states differs, the whole read is done once more, for a quiescent view; a busy store (a
launch every second) never gives one and still gets the safe order -- reading it over and over only made a large
store's snapshot slower than the faults that cut it. A run's retry is begun before the run is concluded
(engine/results.py), so a run read concluded may have a retry its job's listing came too early to list: each such
retry is asked for by name.

The retry state travels with the records (a run whose result or retry is still to come is followed on by the
restored leader); each job's results summary is read before the records, so that no result is counted twice after a
restore; the notification outbox is read last.

Restore writes pause flags, records (open ones stay open, so the next leader concludes them by lookup), job states,
triggers and the takeover report, and the specs LAST: a restore that dies half-way leaves a store that schedules
nothing, rather than one that launches jobs whose history has not arrived yet. The takeover report names the restore
(`restored`): until that time the old cluster may have launched what the snapshot does not record, so the leaders of
the restored store find by name what they would otherwise record skipped (engine/plan.py).
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import re
import threading
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from cronframework.abc import Clock, Fence, Leadership, ReadStore, StateStore
from cronframework.catalog.apply import spec_batches
from cronframework.errors import CronframeworkError, LeadershipLost, StateStoreUnavailable
from cronframework.naming import job_name_problem, launch_name
from cronframework.records import (
    Begin,
    JobResults,
    JobState,
    LaunchRecord,
    Notice,
    RecordState,
    ResultBatch,
    SpecChange,
    StoredSpec,
    TaskResult,
    TriggerRequest,
)
from cronframework.spec.model import Retry

log = logging.getLogger("cronframework.snapshot")

FORMAT_VERSION = 1
RESTORED = "restored"  # the takeover report's key for the restore the store came from; leaders carry it on
JOBS_PER_READ = 250  # jobs whose records one step of a snapshot reads (a step cut by a fault is read again)
PATIENCE = timedelta(minutes=2)  # the least time a periodic snapshot waits out an unavailable store
STABLE_ATTEMPTS = 2  # a store that moved during the read is read once more; a busy one never settles anyway
BATCH = 500

T = TypeVar("T")


class SnapshotError(CronframeworkError):
    """A snapshot file is unreadable or invalid, or the target store cannot take it."""


@dataclass(frozen=True)
class Snapshot:
    created_at: datetime
    source: str
    specs: list[StoredSpec] = field(default_factory=list)
    job_states: list[JobState] = field(default_factory=list)
    paused: list[str] = field(default_factory=list)
    launches: list[LaunchRecord] = field(default_factory=list)
    triggers: list[TriggerRequest] = field(default_factory=list)
    takeover: Mapping[str, Any] | None = None
    job_results: list[JobResults] = field(default_factory=list)
    outbox: list[Notice] = field(default_factory=list)

    @property
    def jobs(self) -> set[str]:
        return {s.name for s in self.specs} | {s.job for s in self.job_states} | {r.job for r in self.launches}

    def to_document(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "created_at": self.created_at.astimezone(UTC).isoformat(),
            "source": self.source,
            "specs": [{"name": s.name, "document": dict(s.document), "version": s.version} for s in self.specs],
            "job_states": [_state_dict(s) for s in self.job_states],
            "paused": sorted(self.paused),
            "launches": [r.to_dict() for r in self.launches],
            "triggers": [_trigger_dict(t) for t in self.triggers],
            "takeover": dict(self.takeover) if self.takeover is not None else None,
            "job_results": [r.to_dict() for r in self.job_results],
            "outbox": [n.to_dict() for n in self.outbox],
        }


# -- capture ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Patience:
    """How long a read waits out a store that is unavailable (a connection lost, a quorum down). The read is made
    of steps -- each a few pipelined round trips, the records a batch of jobs at a time -- and a step that fails for
    want of the store is tried again on its own, until the clock's monotonic time reaches `until`: under constant
    faults a snapshot resumes where it was cut, rather than start again and be cut again."""

    clock: Clock
    until: float
    pause: float = 0.5

    def read(self, step: Callable[[], T]) -> T:
        while True:
            try:
                return step()
            except StateStoreUnavailable as exc:
                if self.clock.monotonic() + self.pause >= self.until:
                    raise
                log.info("snapshot read cut; that step again", extra={"error": str(exc)})
                self.clock.sleep(self.pause)


def _read(patience: Patience | None, step: Callable[[], T]) -> T:
    return step() if patience is None else patience.read(step)


def capture(store: ReadStore, *, source: str, now: datetime, patience: Patience | None = None) -> Snapshot:
    """Read the whole store in the restore-safe order (module docstring); without `patience`, the first read that
    fails for want of the store fails the capture (a manual export says so at once)."""
    specs = _read(patience, store.read_specs)
    results = _read(patience, store.read_job_results)
    states, triggers, launches = _ordered_read(store, set(specs), patience)
    launches = with_retries_begun(store, launches, specs, patience)
    taken = {r.name for r in launches}
    return Snapshot(
        created_at=now,
        source=source,
        specs=[specs[n] for n in sorted(specs)],
        job_states=[states[j] for j in sorted(states)],
        paused=sorted(_read(patience, store.read_paused)),
        launches=launches,
        triggers=[t for t in triggers if _trigger_launch(t) not in taken],
        takeover=_read(patience, store.read_takeover),
        job_results=[results[j] for j in sorted(results)],
        outbox=_read(patience, store.read_outbox),
    )


def _ordered_read(
    store: ReadStore, jobs: set[str], patience: Patience | None
) -> tuple[dict[str, JobState], list[TriggerRequest], list[LaunchRecord]]:
    """States, then triggers, then records; once more when the states moved meanwhile."""
    for _attempt in range(STABLE_ATTEMPTS):
        states = _read(patience, store.read_job_states)
        triggers = _read(patience, store.pending_triggers)
        launches = read_launches(store, jobs | set(states), patience)
        if _read(patience, store.read_job_states) == states:
            break
    return states, triggers, launches


def read_launches(store: ReadStore, jobs: set[str], patience: Patience | None = None) -> list[LaunchRecord]:
    """Every record of every job, plus open records of jobs that no longer exist; oldest first per job."""
    found: dict[str, LaunchRecord] = {}
    for chunk in _chunks(sorted(jobs), JOBS_PER_READ):
        for records in _read(patience, partial(store.full_histories, chunk)).values():
            found.update((r.name, r) for r in records)
    for record in _read(patience, store.open_launches):
        found.setdefault(record.name, record)
    return sorted(found.values(), key=_record_order)


def with_retries_begun(
    store: ReadStore,
    launches: list[LaunchRecord],
    specs: Mapping[str, StoredSpec],
    patience: Patience | None = None,
) -> list[LaunchRecord]:
    """`launches` and the retries begun while they were read (module docstring), down each chain of attempts."""
    attempts = _retry_attempts(specs)
    found = {r.name: r for r in launches}
    asking = launches
    while asking:
        names = [n for r in asking if (n := _next_attempt(r, attempts)) is not None and n not in found]
        asking = [got for name in names if (got := _read(patience, partial(store.get_launch, name))) is not None]
        found.update((r.name, r) for r in asking)
    return sorted(found.values(), key=_record_order) if len(found) > len(launches) else launches


def _retry_attempts(specs: Mapping[str, StoredSpec]) -> dict[str, int]:
    """Each job with `retry:`: how many runs it makes in all."""
    out = {}
    for name, spec in specs.items():
        retry = spec.document.get("retry")
        if isinstance(retry, Mapping):
            try:
                out[name] = Retry.model_validate(retry).attempts
            except ValueError:  # pydantic's ValidationError: `apply` refuses such a spec; nothing to follow here
                continue
    return out


def _next_attempt(record: LaunchRecord, attempts: Mapping[str, int]) -> str | None:
    """The name of the retry a concluded, failed run may have had begun (None: it could have none)."""
    if record.result is None or record.result is TaskResult.SUCCEEDED or record.retry_at is not None:
        return None
    if record.task_attempt >= attempts.get(record.job, 0):
        return None
    return record.identity.retry(record.task_attempt + 1).name


def _record_order(record: LaunchRecord) -> tuple[str, datetime, bool, str]:
    return (record.job, record.scheduled, record.manual, record.name)


def _trigger_launch(trigger: TriggerRequest) -> str:
    return launch_name(trigger.job, trigger.requested_at, manual=True)


# -- files ------------------------------------------------------------------------------------------------------
def dump(snapshot: Snapshot, path: Path) -> None:
    """Write atomically (tmp + fsync + rename in the same directory); gzip when the name ends in .gz."""
    raw = json.dumps(snapshot.to_document(), indent=1, sort_keys=True).encode()
    if path.name.endswith(".gz"):
        raw = gzip.compress(raw, mtime=0)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as out:
            out.write(raw)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise SnapshotError(f"cannot write snapshot {path}: {exc.strerror or exc}") from None


def load(path: Path) -> Snapshot:
    """Read and validate a snapshot file; any problem is one SnapshotError naming the file and the item."""
    try:
        raw = path.read_bytes()
        if path.name.endswith(".gz"):
            raw = gzip.decompress(raw)
        document = json.loads(raw)
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError: test it first
        raise SnapshotError(f"{path}: not a gzip file, or a truncated one: {exc}") from None
    except OSError as exc:
        raise SnapshotError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise SnapshotError(f"{path}: not valid JSON: {exc}") from None
    try:
        return parse(document)
    except SnapshotError as exc:
        raise SnapshotError(f"{path}: {exc}") from None


# -- validation -------------------------------------------------------------------------------------------------
def parse(document: Any) -> Snapshot:
    if not isinstance(document, dict):
        raise SnapshotError("not a snapshot: the document is not a JSON object")
    version = document.get("format_version")
    if version != FORMAT_VERSION:
        raise SnapshotError(f"unsupported format_version {version!r} (this release reads {FORMAT_VERSION})")
    launches = _items(document, "launches", _record)
    _unique([r.name for r in launches], "launches", "launch")
    specs = _items(document, "specs", _spec)
    _unique([s.name for s in specs], "specs", "job")
    states = _items(document, "job_states", _state)
    _unique([s.job for s in states], "job_states", "job")
    takeover = document.get("takeover")
    if takeover is not None and not isinstance(takeover, dict):
        raise SnapshotError("takeover: not a JSON object")
    results = _items(document, "job_results", _job_results, optional=True)  # absent from files of older releases
    _unique([r.job for r in results], "job_results", "job")
    outbox = _items(document, "outbox", _notice, optional=True)
    _unique([n.id for n in outbox], "outbox", "notification")
    return Snapshot(
        created_at=_instant(_field(document, "created_at", str)),
        source=_field(document, "source", str),
        specs=specs,
        job_states=states,
        paused=_items(document, "paused", _job_name),
        launches=launches,
        triggers=_items(document, "triggers", _trigger),
        takeover=takeover,
        job_results=results,
        outbox=outbox,
    )


def _items(document: dict[str, Any], key: str, parse_one: Callable[[Any], T], *, optional: bool = False) -> list[T]:
    if optional and key not in document:
        return []
    values = _field(document, key, list)
    out = []
    for index, value in enumerate(values):
        try:
            out.append(parse_one(value))
        except KeyError as exc:
            raise SnapshotError(f"{key}[{index}]: missing field {exc.args[0]!r}") from None
        except (TypeError, ValueError, AttributeError, SnapshotError) as exc:
            raise SnapshotError(f"{key}[{index}]: {exc}") from None
    return out


def _unique(names: list[str], key: str, what: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise SnapshotError(f"{key}: {what} {name!r} appears twice")
        seen.add(name)


def _field(data: Mapping[str, Any], key: str, kind: type[T]) -> T:
    if key not in data:
        raise SnapshotError(f"missing field {key!r}")
    value = data[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise SnapshotError(f"field {key!r} must be {kind.__name__}, not {type(value).__name__}")
    return value


def _instant(text: str | None) -> datetime:
    if text is None:
        raise SnapshotError("missing instant")
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise SnapshotError(f"instant {text!r} has no time zone")
    return value


def _job_name(value: Any) -> str:
    if not isinstance(value, str):
        raise SnapshotError(f"job name must be a string, not {type(value).__name__}")
    problem = job_name_problem(value)
    if problem:
        raise SnapshotError(f"{value!r}: {problem}")
    return value


_RECORD_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "job": (str,),
    "leader": (str,),
    "manual": (bool,),
    "epoch": (int,),
    "attempt": (int,),
    "reason": (str, type(None)),
    "backend_state": (str, type(None)),
    "exit_code": (int, type(None)),
}


def _record(value: Any) -> LaunchRecord:
    if not isinstance(value, dict):
        raise SnapshotError("not a JSON object")
    for key, kinds in _RECORD_TYPES.items():
        if key in value and not isinstance(value[key], kinds):
            raise SnapshotError(f"field {key!r} has the wrong type ({type(value[key]).__name__})")
    _instant(_field(value, "scheduled", str))
    record = LaunchRecord.from_dict(value)
    _job_name(record.job)
    expected = launch_name(record.job, record.scheduled, manual=record.manual, attempt=record.task_attempt)
    if record.name != expected:
        raise SnapshotError(f"launch name {record.name!r} does not match its job, instant, manual flag and attempt")
    if (record.state is RecordState.FINISHED) != (record.outcome is not None):
        raise SnapshotError(f"launch {record.name}: a finished record needs an outcome, an open one has none")
    return record


def _spec(value: Any) -> StoredSpec:
    name = _job_name(_field(value, "name", str))
    return StoredSpec(name, _field(value, "document", dict), _field(value, "version", int))


def _state(value: Any) -> JobState:
    job = _job_name(_field(value, "job", str))
    next_at = value.get("next_scheduled")
    last = value.get("last_launch")
    if last is not None and not isinstance(last, str):
        raise SnapshotError("field 'last_launch' must be a string or null")
    return JobState(job, _instant(next_at) if next_at is not None else None, last)


def _trigger(value: Any) -> TriggerRequest:
    job = _job_name(_field(value, "job", str))
    requested = _instant(_field(value, "requested_at", str))
    return TriggerRequest(_field(value, "id", str), job, requested, _field(value, "force", bool))


def _job_results(value: Any) -> JobResults:
    if not isinstance(value, dict):
        raise SnapshotError("not a JSON object")
    return JobResults.from_dict(_job_name(_field(value, "job", str)), value)


def _notice(value: Any) -> Notice:
    if not isinstance(value, dict):
        raise SnapshotError("not a JSON object")
    for key in ("id", "key", "event", "url"):
        _field(value, key, str)
    notice = Notice.from_dict(value)
    _job_name(notice.job)
    return notice


def _state_dict(state: JobState) -> dict[str, Any]:
    next_at = state.next_scheduled.astimezone(UTC).isoformat() if state.next_scheduled else None
    return {"job": state.job, "next_scheduled": next_at, "last_launch": state.last_launch}


def _trigger_dict(trigger: TriggerRequest) -> dict[str, Any]:
    at = trigger.requested_at.astimezone(UTC).isoformat()
    return {"id": trigger.id, "job": trigger.job, "requested_at": at, "force": trigger.force}


# -- restore ----------------------------------------------------------------------------------------------------
def occupied(store: ReadStore, jobs: set[str]) -> str | None:
    """Why `store` is not empty (None when it is): restore never merges into live state."""
    checks: list[tuple[str, Callable[[], object]]] = [
        ("job specs", store.read_specs),
        ("job states", store.read_job_states),
        ("paused jobs", store.read_paused),
        ("open launches", store.open_launches),
        ("pending triggers", store.pending_triggers),
        ("a takeover report", store.read_takeover),
        ("job results", store.read_job_results),
        ("notifications", store.read_outbox),
    ]
    for what, read in checks:
        if read():
            return f"it already holds {what}"
    for job in sorted(jobs):
        if store.history(job, 1):
            return f"it already holds launch records of job {job!r}"
    return None


def restore(store: StateStore, fence: Fence, snapshot: Snapshot, *, now: datetime) -> None:
    """Write `snapshot` into an empty store as its leader at `now` (order: module docstring)."""
    for job in snapshot.paused:
        store.set_paused(job, True)
    states = {s.job: s for s in snapshot.job_states}
    for chunk in _chunks(snapshot.launches, BATCH):
        # begin() honours record.state: a finished record arrives finished and never joins the open index
        store.begin(fence, [Begin(r, states.get(r.job) or JobState(r.job)) for r in chunk])
    for state_chunk in _chunks(snapshot.job_states, BATCH):
        store.put_job_states(fence, state_chunk)
    if snapshot.job_results or snapshot.outbox:
        store.record_results(fence, ResultBatch(summaries=snapshot.job_results, notices=snapshot.outbox))
    for trigger in sorted(snapshot.triggers, key=lambda t: (t.requested_at, t.id)):
        store.request_trigger(trigger.job, force=trigger.force, now=trigger.requested_at)
    marker = {"at": now.astimezone(UTC).isoformat(), "snapshot": snapshot.created_at.astimezone(UTC).isoformat()}
    store.write_takeover(fence, {**(snapshot.takeover or {}), RESTORED: marker})
    for batch in spec_batches([SpecChange(s.name, s.document, None) for s in snapshot.specs]):
        store.write_specs(batch)


def restored_at(marker: Any) -> datetime | None:
    """When the store was restored, from the takeover report's `restored` entry (None: never, or unreadable)."""
    return _marker_time(marker, "at")


def restored_snapshot_at(marker: Any) -> datetime | None:
    """When the snapshot a restore imported was taken (None: no restore, or unreadable)."""
    return _marker_time(marker, "snapshot")


def _marker_time(marker: Any, key: str) -> datetime | None:
    at = marker.get(key) if isinstance(marker, Mapping) else None
    try:
        return datetime.fromisoformat(at) if isinstance(at, str) else None
    except ValueError:
        return None


def _chunks(items: Sequence[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


# -- periodic snapshots (the leader) ----------------------------------------------------------------------------
FENCE_CHECKS = 4  # a finished read asks this often whether its leader still holds its fence, FENCE_PAUSE apart
FENCE_PAUSE = 0.5
FILE_PATTERN = re.compile(r"^cronframework-snapshot-\d{8}t\d{6}z\.json\.gz$")


@dataclass(frozen=True)
class SnapshotPolicy:
    directory: Path
    every: timedelta
    keep: int
    source: str = ""


class PeriodicSnapshots:
    """Called from each leader tick; writes in a background thread so a large store never delays launches."""

    def __init__(
        self, store: ReadStore, policy: SnapshotPolicy, clock: Clock, leadership: Leadership | None = None
    ) -> None:
        self._store, self._policy, self._clock = store, policy, clock
        self._leadership = leadership
        self._next = clock.monotonic()  # a new leader snapshots the state it took over at once
        self._thread: threading.Thread | None = None

    def maybe_run(self) -> bool:
        """Start a snapshot when one is due and none is running; True when one was started."""
        if self._clock.monotonic() < self._next or (self._thread is not None and self._thread.is_alive()):
            return False
        self._next = self._clock.monotonic() + self._policy.every.total_seconds()
        self._thread = threading.Thread(target=self.write_one, name="snapshot", daemon=True)
        self._thread.start()
        return True

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def write_one(self) -> Path | None:
        now = self._clock.now().astimezone(UTC).replace(microsecond=0)
        path = self._policy.directory / f"cronframework-snapshot-{now:%Y%m%dt%H%M%Sz}.json.gz"
        try:
            self._policy.directory.mkdir(parents=True, exist_ok=True)
            budget = max(self._policy.every, PATIENCE).total_seconds()
            patience = Patience(self._clock, self._clock.monotonic() + budget)
            snapshot = capture(self._store, source=self._policy.source, now=now, patience=patience)
            if not snapshot.specs and not snapshot.launches:
                # ZooKeeper's data lost: the replicas make the root again and its new leader finds it empty; that
                # file, the newest, would be the one an operator restores (docs/backups.md)
                log.warning(
                    "periodic snapshot skipped: the store holds no jobs and no launches", extra={"path": str(path)}
                )
                return None
            self._still_leading()
            dump(snapshot, path)
            self._prune()
        except (CronframeworkError, OSError) as exc:  # a failed backup must never stop the scheduler
            log.error("periodic snapshot failed", extra={"path": str(path), "error": str(exc)})
            return None
        log.info("snapshot written", extra={"path": str(path)})
        return path

    def _still_leading(self) -> None:
        """The read resumes each step a lost connection cut; a lost session may mean a lost store (ZooKeeper's
        data gone, the root recreated or restored) and a read that went on in another store. Only a leader that
        still holds the fence it read under -- the same election node, so the same session -- writes the file:
        one written later, stamped with its start, would be the newest file while older than what happened since.
        A reconnection is re-verified by the election within moments: asked a few times."""
        if self._leadership is None:
            return
        for _ in range(FENCE_CHECKS - 1):
            try:
                self._leadership.check()
                return
            except LeadershipLost:
                self._clock.sleep(FENCE_PAUSE)
        self._leadership.check()

    def _prune(self) -> None:
        names = sorted(p.name for p in self._policy.directory.iterdir() if FILE_PATTERN.match(p.name))
        for name in names[: max(0, len(names) - self._policy.keep)]:
            (self._policy.directory / name).unlink(missing_ok=True)

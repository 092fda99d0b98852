"""SqliteStore: the StateStore of the embedded single-machine mode, in one SQLite file that survives a crash.

Same protocol and the same two sync points as ZooKeeper: each batch is one transaction (WAL, synchronous=FULL), so a
crash leaves either all of a batch or none of it. Leadership is an exclusive lock on `<file>.lock` held for the
process's life; `epoch` counts the processes that have held it, so records show which run wrote them.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cronframework.abc import Fence
from cronframework.errors import ConflictError, LeadershipLost, StateStoreError
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
    record_word,
)
from cronframework.store import BeginNow

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS specs (name TEXT PRIMARY KEY, document TEXT NOT NULL, version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS job_states (job TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS paused (job TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS launches (
  name TEXT PRIMARY KEY, job TEXT NOT NULL, scheduled TEXT NOT NULL, open INTEGER NOT NULL, data BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS launches_by_job ON launches (job, scheduled);
CREATE INDEX IF NOT EXISTS launches_open ON launches (open) WHERE open = 1;
CREATE INDEX IF NOT EXISTS launches_following ON launches (open) WHERE open = 2;
CREATE TABLE IF NOT EXISTS job_results (job TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (id TEXT PRIMARY KEY, created TEXT NOT NULL, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS triggers (
  id INTEGER PRIMARY KEY AUTOINCREMENT, job TEXT NOT NULL, requested_at TEXT NOT NULL, force INTEGER NOT NULL);
"""

_ASKED = "WITH asked(job) AS (VALUES {values})"  # the jobs a read asks for, as a table: `_per_thousand` fills it


@dataclass
class SoleLeader:
    """The embedded mode's leadership: one process holding the store's lock always leads."""

    epoch: int
    replica: str
    active: bool = True

    @property
    def fence(self) -> SoleLeader:
        return self

    @property
    def valid(self) -> bool:
        return self.active

    def check(self) -> None:
        if not self.active:
            raise LeadershipLost(f"replica {self.replica} is shutting down")


class SqliteStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise StateStoreError(f"cannot open state file {self.path}: {exc}") from None
        self._lock = threading.RLock()
        self._watchers: list[Callable[[], None]] = []
        self._lock_file: int | None = None

    # -- leadership ---------------------------------------------------------------------------------------------
    def acquire_leadership(self, replica: str) -> SoleLeader:
        """Take the file lock (fails at once if another process runs on this state) and bump the epoch."""
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        if not _flock(fd, fcntl.LOCK_EX, patience=_PROBE_PATIENCE):
            os.close(fd)
            raise StateStoreError(f"another cronframework process is running on {self.path}") from None
        os.ftruncate(fd, 0)
        os.write(fd, replica.encode())  # who holds it, for `status` and the refusals of `apply` and `trigger`
        self._lock_file = fd
        with self._tx() as db:
            row = db.execute("SELECT value FROM meta WHERE key='epoch'").fetchone()
            epoch = int(row[0]) + 1 if row else 1
            db.execute("INSERT OR REPLACE INTO meta VALUES ('epoch', ?)", (str(epoch),))
        return SoleLeader(epoch=epoch, replica=replica)

    def lock_holder(self) -> SoleLeader | None:
        """The leadership of the process holding this state's lock now (its replica, e.g. host:pid, and epoch);
        None when no scheduler holds it.

        A probe takes the lock shared for an instant: an exclusive holder refuses it, and a scheduler starting
        during the probe waits it out (`acquire_leadership` allows for it) instead of failing."""
        if self._lock_file is not None:
            return self._holder(self._lock_file)
        try:
            fd = os.open(self._lock_path, os.O_RDONLY)
        except FileNotFoundError:
            return None  # no process has ever led on this state
        try:
            return None if _flock(fd, fcntl.LOCK_SH, patience=0.0) else self._holder(fd)
        finally:
            os.close(fd)  # releases the probe's shared lock, if it took one

    @property
    def _lock_path(self) -> str:
        return f"{self.path}.lock"

    def _holder(self, fd: int) -> SoleLeader:
        """The holder's epoch is the newest: it bumped it on taking the lock."""
        replica = os.pread(fd, 512, 0).decode(errors="replace").strip() or "unknown"
        row = self._rows("SELECT value FROM meta WHERE key='epoch'")
        return SoleLeader(epoch=int(row[0][0]) if row else 0, replica=replica)

    @contextmanager
    def _tx(self, fence: Fence | None = None) -> Iterator[sqlite3.Connection]:
        if fence is not None and not getattr(fence, "valid", True):
            raise LeadershipLost(f"replica {fence.replica} no longer leads (epoch {fence.epoch})")
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _rows(self, sql: str, *args: Any) -> list[Any]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def _job_rows(self, table: str, jobs: Collection[str] | None) -> list[Any]:
        """(job, data) of every row of `table`, or of the rows of `jobs`."""
        if jobs is None:
            return self._rows(f"SELECT job, data FROM {table}")
        return self._per_thousand(f"{_ASKED} SELECT job, data FROM {table} WHERE job IN (SELECT job FROM asked)", jobs)

    def _per_thousand(self, sql: str, jobs: Collection[str], *args: Any) -> list[Any]:
        """The rows of `sql` (which starts with _ASKED: the jobs asked, as a table) for a thousand jobs at a time."""
        asked, rows = sorted(set(jobs)), []
        for start in range(0, len(asked), 1000):
            part = asked[start : start + 1000]
            rows += self._rows(sql.format(values=",".join(["(?)"] * len(part))), *part, *args)
        return rows

    # -- specs ------------------------------------------------------------------------------------------------
    def read_specs(self) -> dict[str, StoredSpec]:
        rows = self._rows("SELECT name, document, version FROM specs")
        return {n: StoredSpec(n, json.loads(d), v) for n, d, v in rows}

    def write_specs(self, changes: Sequence[SpecChange]) -> None:
        with self._tx() as db:
            for change in changes:
                row = db.execute("SELECT version FROM specs WHERE name=?", (change.name,)).fetchone()
                if (row[0] if row else None) != change.expected_version:
                    raise ConflictError(f"spec {change.name!r} changed since it was read")
                if change.document is None:
                    db.execute("DELETE FROM specs WHERE name=?", (change.name,))
                    continue
                version = (row[0] + 1) if row else 0
                document = json.dumps(change.document, separators=(",", ":"))
                db.execute("INSERT OR REPLACE INTO specs VALUES (?, ?, ?)", (change.name, document, version))
        for callback in list(self._watchers):
            callback()

    def watch_specs(self, callback: Callable[[], None]) -> None:
        self._watchers.append(callback)

    # -- schedule state -----------------------------------------------------------------------------------------
    def read_job_states(self, jobs: Collection[str] | None = None) -> dict[str, JobState]:
        rows = self._job_rows("job_states", jobs)
        return {job: JobState.from_bytes(job, data) for job, data in rows}

    def put_job_states(self, fence: Fence, states: Sequence[JobState]) -> None:
        with self._tx(fence) as db:
            db.executemany("INSERT OR REPLACE INTO job_states VALUES (?, ?)", [(s.job, s.to_bytes()) for s in states])

    def read_paused(self) -> set[str]:
        return {row[0] for row in self._rows("SELECT job FROM paused")}

    def set_paused(self, job: str, paused: bool) -> None:
        with self._tx() as db:
            sql = "INSERT OR IGNORE INTO paused VALUES (?)" if paused else "DELETE FROM paused WHERE job=?"
            db.execute(sql, (job,))

    # -- launches -----------------------------------------------------------------------------------------------
    def prepare_begin(self, fence: Fence, items: Sequence[Begin]) -> BeginNow:
        return BeginNow(self.begin, fence, items)  # nothing to build ahead: applied when sent

    def begin(self, fence: Fence, items: Sequence[Begin]) -> None:
        with self._tx(fence) as db:
            for item in items:
                self._insert(db, item.record)
                db.execute(
                    "INSERT OR REPLACE INTO job_states VALUES (?, ?)",
                    (item.next_state.job, item.next_state.to_bytes()),
                )
                if item.consumed_trigger:
                    db.execute("DELETE FROM triggers WHERE id=?", (_trigger_number(item.consumed_trigger),))
                _add_notices(db, item.notices)

    @staticmethod
    def _insert(db: sqlite3.Connection, record: LaunchRecord) -> None:
        row = (record.name, record.job, record.scheduled.isoformat(), _listed(record), record.to_bytes())
        try:
            db.execute("INSERT INTO launches VALUES (?, ?, ?, ?, ?)", row)
        except sqlite3.IntegrityError:
            raise ConflictError(f"launch {record.name} already recorded") from None

    def finish(self, fence: Fence, records: Sequence[LaunchRecord], notices: Sequence[Notice] = ()) -> None:
        with self._tx(fence) as db:
            self._update(db, records)
            _add_notices(db, notices)

    @staticmethod
    def _update(db: sqlite3.Connection, records: Sequence[LaunchRecord]) -> None:
        for record in records:
            cursor = db.execute(
                "UPDATE launches SET open=?, data=? WHERE name=?",
                (_listed(record), record.to_bytes(), record.name),
            )
            if cursor.rowcount != 1:
                raise StateStoreError(f"launch {record.name} was never begun")

    def record_results(self, fence: Fence, batch: ResultBatch) -> None:
        with self._tx(fence) as db:
            self._update(db, batch.records)
            db.executemany(
                "INSERT OR REPLACE INTO job_results VALUES (?, ?)", [(s.job, s.to_bytes()) for s in batch.summaries]
            )
            _add_notices(db, batch.notices)
            db.executemany("INSERT OR IGNORE INTO paused VALUES (?)", [(job,) for job in batch.pause])

    def read_outbox(self) -> list[Notice]:
        return [Notice.from_bytes(r[0]) for r in self._rows("SELECT data FROM outbox ORDER BY created, id")]

    def settle_notices(self, fence: Fence, remove: Sequence[str], rewrite: Sequence[Notice]) -> None:
        with self._tx(fence) as db:
            db.executemany("DELETE FROM outbox WHERE id=?", [(name,) for name in remove])
            db.executemany("UPDATE outbox SET data=? WHERE id=?", [(n.to_bytes(), n.id) for n in rewrite])

    def following_launches(self) -> list[LaunchRecord]:
        rows = self._rows("SELECT data FROM launches WHERE open=2 ORDER BY scheduled, name")
        return [LaunchRecord.from_bytes(r[0]) for r in rows]

    def read_job_results(self, jobs: Collection[str] | None = None) -> dict[str, JobResults]:
        rows = self._job_rows("job_results", jobs)
        return {job: JobResults.from_bytes(job, data) for job, data in rows}

    def get_launch(self, name: str) -> LaunchRecord | None:
        rows = self._rows("SELECT data FROM launches WHERE name=?", name)
        return LaunchRecord.from_bytes(rows[0][0]) if rows else None

    def open_launches(self) -> list[LaunchRecord]:
        rows = self._rows("SELECT data FROM launches WHERE open=1 ORDER BY scheduled, name")
        return [LaunchRecord.from_bytes(r[0]) for r in rows]

    def history(self, job: str, limit: int = 20) -> list[LaunchRecord]:
        rows = self._rows(
            "SELECT data FROM launches WHERE job=? ORDER BY scheduled DESC, name DESC LIMIT ?", job, limit
        )
        return [LaunchRecord.from_bytes(r[0]) for r in rows]

    def histories(self, jobs: Collection[str], limit: int) -> dict[str, list[LaunchRecord]]:
        """A query per thousand jobs, each an index search per job for its newest `limit` names."""
        sql = (
            f"{_ASKED} SELECT l.job, l.scheduled, l.name, l.data FROM asked JOIN launches AS l ON l.name IN "
            "(SELECT name FROM launches WHERE job=asked.job ORDER BY scheduled DESC, name DESC LIMIT ?)"
        )
        rows = self._per_thousand(sql, jobs, limit) if limit > 0 else []
        out: dict[str, list[LaunchRecord]] = {}
        for job, _scheduled, _name, data in sorted(rows, key=lambda r: (r[0], r[1], r[2]), reverse=True):
            out.setdefault(job, []).append(LaunchRecord.from_bytes(data))
        return out

    def last_results(self, jobs: Collection[str], now: datetime | None = None) -> dict[str, str]:
        sql = (
            f"{_ASKED} SELECT asked.job, (SELECT data FROM launches WHERE job=asked.job "
            "ORDER BY scheduled DESC, name DESC LIMIT 1) AS data FROM asked"
        )
        return {job: record_word(data) for job, data in self._per_thousand(sql, jobs) if data is not None}

    def full_histories(self, jobs: Collection[str]) -> dict[str, list[LaunchRecord]]:
        out: dict[str, list[LaunchRecord]] = {job: [] for job in jobs}
        for job, data in self._rows("SELECT job, data FROM launches ORDER BY scheduled DESC, name DESC"):
            if job in out:
                out[job].append(LaunchRecord.from_bytes(data))
        return out

    def prune(self, fence: Fence, job: str, names: Sequence[str]) -> None:
        with self._tx(fence) as db:
            marks = ",".join("?" * len(names))
            still_open = db.execute(f"SELECT COUNT(*) FROM launches WHERE open=1 AND name IN ({marks})", names)
            if still_open.fetchone()[0]:
                raise StateStoreError("refusing to prune an open launch record")
            db.execute(f"DELETE FROM launches WHERE job=? AND name IN ({marks})", (job, *names))

    # -- triggers and bookkeeping -------------------------------------------------------------------------------
    def request_trigger(self, job: str, *, force: bool, now: datetime) -> TriggerRequest:
        with self._tx() as db:
            cursor = db.execute(
                "INSERT INTO triggers (job, requested_at, force) VALUES (?, ?, ?)",
                (job, now.isoformat(), int(force)),
            )
        return TriggerRequest(f"t-{cursor.lastrowid:010d}", job, now, force)

    def pending_triggers(self) -> list[TriggerRequest]:
        rows = self._rows("SELECT id, job, requested_at, force FROM triggers ORDER BY id")
        return [TriggerRequest(f"t-{i:010d}", j, datetime.fromisoformat(at), bool(f)) for i, j, at, f in rows]

    def drop_trigger(self, fence: Fence, trigger_id: str) -> None:
        with self._tx(fence) as db:
            db.execute("DELETE FROM triggers WHERE id=?", (_trigger_number(trigger_id),))

    def write_takeover(self, fence: Fence, report: Mapping[str, Any]) -> None:
        with self._tx(fence) as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES ('takeover', ?)", (json.dumps(report),))

    def read_takeover(self) -> Mapping[str, Any] | None:
        rows = self._rows("SELECT value FROM meta WHERE key='takeover'")
        return json.loads(rows[0][0]) if rows else None

    def server_time(self) -> datetime:
        return datetime.now(UTC)  # one machine: the store's clock is ours

    def close(self) -> None:
        with self._lock:
            self._db.close()
        if self._lock_file is not None:
            os.close(self._lock_file)
            self._lock_file = None


_PROBE_PATIENCE = 0.5  # seconds a starting scheduler waits out another process's lock_holder() probe


def _flock(fd: int, mode: int, *, patience: float) -> bool:
    """Take the lock without blocking, retrying for up to `patience` seconds; False if still held elsewhere."""
    deadline = time.monotonic() + patience
    while True:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)


def _add_notices(db: sqlite3.Connection, notices: Sequence[Notice]) -> None:
    """Into the outbox; one already there stays as it is (the same batch written again)."""
    rows = [(n.id, n.created_at.isoformat(), n.to_bytes()) for n in notices]
    db.executemany("INSERT OR IGNORE INTO outbox VALUES (?, ?, ?)", rows)


def _listed(record: LaunchRecord) -> int:
    """The `open` column: 1 begun (recovery's to-do list), 2 following (the result follower's), 0 concluded."""
    return 1 if record.open else (2 if record.following else 0)


def _trigger_number(trigger_id: str) -> int:
    return int(trigger_id.removeprefix("t-"))

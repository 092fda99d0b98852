"""One page of the status document: jobs filtered by name prefix, state and result, in a stable order, without
building the whole document for 10,000 jobs.

The status document (ops/status.collect) stays the one source of each job's JSON: it is asked for the page's jobs
only, through a read-only view of the store that lists just those specs. Deciding which jobs make the page costs
what the filters need: a prefix, a state or the `next` order read the specs, states and paused set once (a spec's
compile check is remembered by version); a `result` filter or order reads every candidate's last launch in one word,
together (`ReadStore.last_results`: on ZooKeeper a few multiReads for 10,000 jobs, not a round trip each).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cronframework.abc import ReadStore
from cronframework.catalog.cache import spec_problem
from cronframework.ops.status import collect, job_state
from cronframework.records import JobResults, JobState, LaunchRecord, Notice, StoredSpec, TriggerRequest

SORTS = ("name", "next", "result")
# failures first, then what is still going on, then what went well, then jobs that never launched
_RESULT_RANK = {
    "failed": 0,
    "failed_to_launch": 0,
    "lost": 0,
    "unknown": 0,
    "begun": 1,
    "pending": 1,
    "running": 1,
    "skipped": 2,
    "submitted": 3,
    "already_existed": 3,
    "succeeded": 3,
    "none": 4,
}


@dataclass(frozen=True)
class JobQuery:
    prefix: str = ""
    state: str | None = None  # enabled, disabled, paused, broken
    result: str | None = None  # see result_of
    sort: str = "name"  # name, next (soonest first), result (failures first)
    after: str | None = None  # the name the previous page ended with (name order)
    offset: int = 0
    limit: int | None = None

    @property
    def needs_last_launches(self) -> bool:
        return self.result is not None or self.sort == "result"


def result_of(job: Mapping[str, Any]) -> str:
    """A job's last result in one word: the task's (succeeded, failed, timed_out, lost) once recorded, else what the
    backend says now (running...) when the document carries it, else the launch's outcome (submitted, skipped,
    failed_to_launch) or state (begun); `none` before any launch."""
    last = job.get("last_launch") or {}
    lookup = last.get("lookup") or {}
    return str(last.get("result") or lookup.get("state") or last.get("outcome") or last.get("state") or "none")


class Problems:
    """`spec_problem` remembered by (name, version): compiling 10,000 specs per request would cost half a second."""

    def __init__(self) -> None:
        self._known: dict[tuple[str, int], str | None] = {}

    def of(self, stored: StoredSpec) -> str | None:
        key = (stored.name, stored.version)
        if key not in self._known:
            if len(self._known) > 100_000:
                self._known.clear()
            self._known[key] = spec_problem(stored)
        return self._known[key]


@dataclass(frozen=True)
class Selected:
    document: dict[str, Any]  # the status document with the page's jobs only, and `page`
    specs: dict[str, StoredSpec]  # the page's stored specs (the status page shows times in each job's zone)
    recent: dict[str, list[LaunchRecord]]  # the page's jobs' newest `recent` records, newest first


class SpecView:
    """`read_specs` as of the store's last spec change: read again only after its spec watch fired. Decoding
    10,000 stored specs costs more than the rest of a page; they change only when someone applies."""

    def __init__(self, store: ReadStore) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._specs: dict[str, StoredSpec] = {}
        self._dirty, self._watching = True, False

    def read(self) -> dict[str, StoredSpec]:
        with self._lock:
            if not self._watching:
                self._store.watch_specs(self._changed)
                self._watching = True
            if self._dirty:
                self._dirty = False  # before the read: a change during it marks the next read dirty again
                self._specs = self._store.read_specs()
            return self._specs

    def _changed(self) -> None:
        self._dirty = True


def select(
    store: ReadStore,
    specs: Mapping[str, StoredSpec],
    members: Sequence[dict[str, Any]],
    query: JobQuery,
    problems: Problems,
    recent: int = 1,
    now: datetime | None = None,
) -> Selected:
    """The status document with only the page's jobs, and `page` {total, matched, limit, next_after}; each job's
    newest `recent` records are read once, for the document and for the caller."""
    paused = store.read_paused()
    states = store.read_job_states() if query.sort == "next" else {}  # else only the page's, once it is known
    names = sorted(name for name in specs if name.startswith(query.prefix))
    if query.state is not None:
        names = [n for n in names if _state(specs[n], n in paused, problems) == query.state]
    lasts = store.last_results(names, now) if query.needs_last_launches else {}
    if query.result is not None:
        names = [n for n in names if lasts.get(n, "none") == query.result]
    names = _ordered(names, query.sort, states, specs, problems, lasts)
    window, more = _window(names, query)
    shown = {n: specs[n] for n in window}
    states = {n: states[n] for n in window if n in states} if states else store.read_job_states(window)
    fetched = max(recent, 1)
    got = store.histories(window, fetched)
    records = {n: got.get(n, []) for n in window}
    document = collect(_Only(store, shown, states, paused, records, fetched), members, problem_of=problems.of)
    place = {name: i for i, name in enumerate(window)}
    document["jobs"].sort(key=lambda item: place[item["job"]])  # collect lists by name
    next_after = window[-1] if more and window and query.sort == "name" else None
    document["page"] = {"total": len(specs), "matched": len(names), "limit": query.limit, "next_after": next_after}
    return Selected(document, shown, records)


def _state(stored: StoredSpec, paused: bool, problems: Problems) -> str:
    return job_state(bool(stored.document.get("enabled", True)), paused, problems.of(stored))


def _ordered(
    names: list[str],
    sort: str,
    states: Mapping[str, JobState],
    specs: Mapping[str, StoredSpec],
    problems: Problems,
    lasts: Mapping[str, str],
) -> list[str]:
    if sort == "next":
        return sorted(names, key=lambda n: _next_key(n, states.get(n), specs[n], problems))
    if sort == "result":
        return sorted(names, key=lambda n: (_RESULT_RANK.get(lasts.get(n, "none"), 0), n))
    return names


def _next_key(name: str, state: JobState | None, stored: StoredSpec, problems: Problems) -> tuple[int, float, str]:
    """Soonest first; jobs with no next launch (broken, never planned) last; by name within an instant."""
    at: datetime | None = state.next_scheduled if state is not None else None
    if at is None or problems.of(stored) is not None:
        return 1, 0.0, name
    return 0, at.timestamp(), name


def _window(names: list[str], query: JobQuery) -> tuple[list[str], bool]:
    start = query.offset
    if query.after is not None and query.sort == "name":
        start = next((i for i, n in enumerate(names) if n > query.after), len(names))
    end = len(names) if query.limit is None else start + query.limit
    return names[start:end], end < len(names)


class _Only:
    """The store as `collect` reads it, listing only some specs, with what the selection already read reused."""

    def __init__(
        self,
        store: ReadStore,
        specs: dict[str, StoredSpec],
        states: dict[str, JobState],
        paused: set[str],
        records: dict[str, list[LaunchRecord]],
        fetched: int,
    ) -> None:
        self._store, self._specs, self._states, self._paused = store, specs, states, paused
        self._records, self._fetched = records, fetched  # each job's newest `fetched` records (fewer if it has)

    def read_specs(self) -> dict[str, StoredSpec]:
        return dict(self._specs)

    def watch_specs(self, callback: Callable[[], None]) -> None:
        self._store.watch_specs(callback)

    def read_job_states(self, jobs: Collection[str] | None = None) -> dict[str, JobState]:
        return self._states if jobs is None else {job: self._states[job] for job in jobs if job in self._states}

    def read_paused(self) -> set[str]:
        return self._paused

    def get_launch(self, name: str) -> LaunchRecord | None:
        return self._store.get_launch(name)

    def open_launches(self) -> list[LaunchRecord]:
        return self._store.open_launches()

    def following_launches(self) -> list[LaunchRecord]:
        return self._store.following_launches()

    def read_job_results(self, jobs: Collection[str] | None = None) -> dict[str, JobResults]:
        return self._store.read_job_results(self._specs if jobs is None else jobs)

    def read_outbox(self) -> list[Notice]:
        return self._store.read_outbox()

    def history(self, job: str, limit: int = 20) -> list[LaunchRecord]:
        return self.histories([job], limit).get(job, [])

    def histories(self, jobs: Collection[str], limit: int) -> dict[str, list[LaunchRecord]]:
        if limit > self._fetched or not all(job in self._records for job in jobs):
            return self._store.histories(jobs, limit)
        return {job: self._records[job][:limit] for job in jobs if self._records[job] and limit > 0}

    def last_results(self, jobs: Collection[str], now: datetime | None = None) -> dict[str, str]:
        return self._store.last_results(jobs, now)

    def full_histories(self, jobs: Collection[str]) -> dict[str, list[LaunchRecord]]:
        return self._store.full_histories(jobs)

    def pending_triggers(self) -> list[TriggerRequest]:
        return self._store.pending_triggers()

    def read_takeover(self) -> Mapping[str, Any] | None:
        return self._store.read_takeover()

    def close(self) -> None:
        return None

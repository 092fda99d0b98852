"""The status page and `/v1/jobs` at 10,000 jobs: the server's time per request, for each view an operator uses.

The state is what a running cluster leaves: N applied jobs (a tenth paused, mixed zones), each with its next
instant planned and its last launches recorded (a fifth of them failed to launch), written through the leader's
own fenced store calls. Each request goes through the whole ASGI application in-process (routing, auth, the
status document, rendering; no socket), on the embedded SQLite store and on a real ZooKeeper. Figures, not asserts.
"""

from __future__ import annotations

import gc
import statistics
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from cronframework.abc import Fence, StateStore
from cronframework.api import Api, LocalCluster, TokenAuth, create_app
from cronframework.catalog.apply import spec_batches, spec_document
from cronframework.clock import SystemClock
from cronframework.cluster.election import Election
from cronframework.heap import tune_collector
from cronframework.records import Begin, JobState, LaunchRecord, Outcome, RecordState, SpecChange
from cronframework.store.sqlite import SqliteStore
from cronframework.store.zookeeper.store import ZooKeeperStore

from .common import job_spec, new_root, zookeeper

ZONES = ("UTC", "Europe/Paris", "America/New_York", "Asia/Tokyo")
VIEWS = {
    "status page, first 100": "/",
    "status page, page 50": "/?offset=4900",
    "status page, search by prefix": "/?q=job-012",
    "status page, paused jobs": "/?state=paused",
    "status page, by next launch": "/?sort=next",
    "status page, failed jobs": "/?result=failed_to_launch",
    "status page, by last result": "/?sort=result",
    "/v1/jobs?limit=100": "/v1/jobs?limit=100",
    "/v1/jobs (all)": "/v1/jobs",
}


def run(
    jobs: int = 10_000, records: int = 3, repeats: int = 5, stores: Sequence[str] = ("sqlite", "zookeeper")
) -> dict[str, Any]:
    figures: dict[str, Any] = {"jobs": jobs, "records_per_job": records, "repeats": repeats}
    for kind in stores:
        with _store(kind) as (store, fence):
            seconds = _populate(store, fence, jobs, records)
            figures[kind] = {"populate_seconds": round(seconds, 1), "views_ms": _measure(store, repeats)}
    return figures


@contextmanager
def _store(kind: str) -> Iterator[tuple[StateStore, Fence]]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            sqlite = SqliteStore(Path(folder) / "state.sqlite")
            try:
                yield sqlite, sqlite.acquire_leadership("bench")
            finally:
                sqlite.close()
        return
    with zookeeper(1) as cluster:
        root = new_root("page")
        zk = ZooKeeperStore.connect(cluster.connect_string, root, session_timeout=10.0)
        election = Election(zk.client, root, "bench", acl=zk.acl).start()
        try:
            if not election.elected.wait(30) or election.fence is None:
                raise RuntimeError("the benchmark leader was not elected within 30 s")
            yield zk, election.fence
        finally:
            election.resign()
            zk.close()


def _populate(store: StateStore, fence: Fence, jobs: int, records: int) -> float:
    started = time.perf_counter()
    names = [f"job-{i:05d}" for i in range(jobs)]
    specs = [job_spec(n, "*/5 * * * *", timezone=ZONES[i % len(ZONES)]) for i, n in enumerate(names)]
    for batch in spec_batches([SpecChange(s.name, spec_document(s), None) for s in specs]):
        store.write_specs(batch)
    now = datetime.now(UTC).replace(second=0, microsecond=0)  # the server reads with the real clock
    for k in range(records):
        at = now - timedelta(minutes=5 * (records - k))
        begun = [_begin(n, at, now) for n in names]
        for chunk in _chunks(begun, 500):
            store.begin(fence, chunk)
            store.finish(fence, [_finished(b.record, i) for i, b in enumerate(chunk)])
    for name in names[::10]:
        store.set_paused(name, True)
    return time.perf_counter() - started


def _begin(name: str, at: datetime, following: datetime) -> Begin:
    record = LaunchRecord(f"{name}-{at:%Y%m%dt%H%M%Sz}", name, at, RecordState.BEGUN, leader="bench", epoch=1)
    return Begin(record, JobState(name, following + timedelta(minutes=5 * (hash(name) % 12))))


def _finished(record: LaunchRecord, index: int) -> LaunchRecord:
    failed = index % 5 == 0
    outcome = Outcome.FAILED if failed else Outcome.SUBMITTED
    return record.finish(outcome, now=record.scheduled + timedelta(seconds=1), reason="bench" if failed else None)


def _chunks(items: list[Begin], size: int) -> Iterator[list[Begin]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@contextmanager
def _server_collector() -> Iterator[None]:
    """The collector as the server's own process runs it: the API is served inside `cronframework scheduler` or
    `run`, whose entry points tune it (heap.tune_collector). At CPython's default threshold a request by last result
    ran full collections over the whole heap (10,000 specs and more) every second or third request."""
    saved = gc.get_threshold()
    tune_collector()
    try:
        yield
    finally:
        gc.set_threshold(*saved)


def _measure(store: StateStore, repeats: int) -> dict[str, dict[str, float]]:
    view = LocalCluster("bench", url="http://127.0.0.1:1", epoch=lambda: 1)
    app = create_app(Api(store, view, TokenAuth(None), SystemClock()))
    out: dict[str, dict[str, float]] = {}
    with _server_collector(), TestClient(app) as client:
        for label, target in VIEWS.items():
            times = []
            for _ in range(repeats + 1):  # the first warms the compile-check memo, as a running server has
                started = time.perf_counter()
                response = client.get(target)
                times.append((time.perf_counter() - started) * 1000)
                if response.status_code != 200:
                    raise RuntimeError(f"{target}: {response.status_code} {response.text[:200]}")
            warm = times[1:]
            out[label] = {
                "first": round(times[0], 1),
                "median": round(statistics.median(warm), 1),
                "max": round(max(warm), 1),
            }
    return out

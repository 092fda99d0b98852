"""Leader memory per job beyond the spec: the real leader's tables, measured with tracemalloc on real ZooKeeper.

Each size runs in a fresh interpreter (a spawned process), so nothing from a smaller run is still alive. The
process is wired as a replica wires its leader (SpecCache, metrics-instrumented store and backend, ZkLeadership),
with a backend that keeps nothing, so what is left is the scheduler's own. `N` jobs on `? * * * *` (one launch an
hour each, spread over the minutes); a fake clock walks the leader through whole hours, one tick per due minute.

    specs     live memory after the SpecCache has read and compiled every spec (what a follower holds)
    promoted  after `promote()`: recovery, job states read and written, the dispatcher heap filled
    pass 1    after one hour of ticks: every job launched once (records, metrics, caches now populated)
    pass 2    after a second hour: memory that grows per launch rather than per job shows up here

"Beyond the spec" is live traced memory at pass 1 (and 2) minus at `specs`, grouped by the file that allocated it;
a walk of the leader's own structures (sys.getsizeof, stopping at specs and schedules) names the holders.

    python -m benchmarks memory [--jobs 1000,10000,100000] [--smoke]
"""

from __future__ import annotations

import gc
import os
import re
import sys
import threading
import time
import tracemalloc
import uuid
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from benchmarks.common import job_spec, rss_mib, zookeeper
from cronframework import metrics
from cronframework.adapters import BackendSet
from cronframework.catalog.apply import spec_batches, spec_document
from cronframework.catalog.cache import Job, SpecCache
from cronframework.cluster.election import Election
from cronframework.cluster.replica import ZkLeadership
from cronframework.engine.leader import LeaderConfig, LeaderSession
from cronframework.launch import BackendStatus, Launch, SubmitOutcome
from cronframework.records import Outcome, SpecChange
from cronframework.schedule.expression import Schedule
from cronframework.store.zookeeper.store import ZooKeeperStore
from cronframework.testing import FakeClock

SCHEDULE = "? * * * *"
PASSES = 2
TOP = 8
_PREFIX = re.compile(
    rf"^(?:{re.escape(str(Path(__file__).resolve().parents[1]))}/|.*?/site-packages/|.*?/lib/python3\.\d+/)"
)
_IGNORED = (tracemalloc.__file__, __file__, "<frozen importlib._bootstrap>", "<frozen importlib._bootstrap_external>")


class NullBackend:
    """Accepts every submit and keeps nothing, so no launch is held by the benchmark's own bookkeeping."""

    blocking = False
    enforces_timeout = False
    watches = False
    confirms = False

    def __init__(self) -> None:
        self.submits = 0

    def submit(self, name: str, launch: Launch) -> SubmitOutcome:
        self.submits += 1
        return SubmitOutcome.SUBMITTED

    def lookup(self, name: str) -> BackendStatus | None:
        return None

    def stop(self, name: str) -> None:
        return None

    def list(self, job: str) -> list[str]:
        return []

    def logs(self, name: str) -> str:
        return ""

    def remove(self, name: str) -> None:
        return None

    def retention_horizon(self) -> timedelta | None:
        return None

    def close(self) -> None:
        return None


def write_specs(hosts: str, root: str, jobs: int) -> None:
    """`jobs` identical spec documents (each still parsed into its own JobSpec), written as `apply` would."""
    document = spec_document(job_spec("template", SCHEDULE))
    store = ZooKeeperStore.connect(hosts, root)
    try:
        for batch in spec_batches([SpecChange(f"mem-{i:06d}", document, None) for i in range(jobs)]):
            store.write_specs(batch)
    finally:
        store.close()


def live_by_line() -> dict[str, int]:
    """Live traced bytes per allocating line (the benchmark's own and tracemalloc's excluded)."""
    gc.collect()
    snapshot = tracemalloc.take_snapshot()  # filtered after grouping: filter_traces matches every trace in Python
    stats = snapshot.statistics("lineno")
    del snapshot
    return {
        f"{_short(s.traceback[0].filename)}:{s.traceback[0].lineno}": s.size
        for s in stats
        if s.traceback[0].filename not in _IGNORED
    }


def by_file(lines: dict[str, int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for where, size in lines.items():
        path = where.rsplit(":", 1)[0]
        out[path] = out.get(path, 0) + size
    return out


def _short(path: str) -> str:
    """A path from the project root, site-packages or the standard library."""
    return _PREFIX.sub("", path)


def delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: after.get(k, 0) - before.get(k, 0) for k in after.keys() | before.keys()}


def top(changes: dict[str, int], jobs: int, count: int = TOP) -> list[dict[str, Any]]:
    ranked = sorted(changes.items(), key=lambda kv: -abs(kv[1]))[:count]
    return [{"where": _short(k), "bytes": v, "per_job": round(v / jobs, 1)} for k, v in ranked]


def deep_size(roots: Iterable[Any], seen: set[int]) -> int:
    """Bytes reachable from `roots`, each object once, not entering `seen` (specs, schedules) or shared code."""
    total, stack = 0, list(roots)
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, type | type(sys) | type(deep_size) | Schedule):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        stack.extend(gc.get_referents(obj))
    return total


def holders(session: LeaderSession, store: ZooKeeperStore, jobs: dict[str, Job]) -> dict[str, int]:
    """The leader's own structures, each walked without entering the specs it points at."""
    seen: set[int] = set()
    for job in jobs.values():
        seen.update((id(job), id(job.spec), id(job.schedule), id(job.spec.name)))
    walks: dict[str, list[Any]] = {
        "dispatcher": [session._dispatcher],
        "store caches": [store._known_jobs, store._hours, store._open],
        "pruner": [session._housekeeping.pruner._launched, session._housekeeping.pruner._sweep],
        "results": [session._results._heads, session._results.follower._followers],
        "runtime limits": [session._housekeeping.limits._heap],
        "metrics series": [m._counts for m in (metrics.LAUNCHES, metrics.SKIPPED)],
    }
    return {name: deep_size(roots, seen) for name, roots in walks.items()}


def measure(hosts: str, root: str, jobs: int) -> dict[str, Any]:
    """One size, in this (fresh) process: the phases of the module docstring."""
    store = ZooKeeperStore.connect(hosts, root)
    election = Election(store.client, root, f"mem-{uuid.uuid4().hex[:6]}", acl=store.acl).start()
    if not election.elected.wait(30) or election.fence is None:
        raise RuntimeError("the benchmark leader was not elected within 30 s")
    clock = FakeClock(datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(seconds=1))
    backend = NullBackend()
    backends = BackendSet(preset={"noop": metrics.observe_backend("noop", backend)})
    config = LeaderConfig(cluster=root, max_clock_skew=timedelta(days=30))
    tracemalloc.start()
    base, rss0 = live_by_line(), rss_mib()
    specs = SpecCache(store, background=True)
    specs.start()
    lines = {"specs": live_by_line()}
    rss = {"specs": rss_mib()}
    session = LeaderSession(
        metrics.instrument_store(store),
        specs,
        backends,
        ZkLeadership(election, election.fence),
        clock,
        config,
        threading.Event(),
    )
    session.promote()
    lines["promoted"] = live_by_line()
    for n in range(1, PASSES + 1):
        started = time.monotonic()
        launched = _one_hour(session, clock)
        if launched != jobs:
            raise RuntimeError(f"pass {n}: {launched} launches for {jobs} jobs")
        lines[f"pass{n}"], rss[f"pass{n}"] = live_by_line(), rss_mib()
        rss[f"pass{n}_s"] = round(time.monotonic() - started, 1)
    walked = holders(session, store, specs.jobs())
    tracemalloc.stop()
    session._launcher.close()
    election.resign()
    store.close()
    return _figures(jobs, base, lines, walked, {"start": rss0, **rss}, backend.submits)


def _one_hour(session: LeaderSession, clock: FakeClock) -> int:
    """Tick at every due minute for one hour of fake time; launches finished."""
    end, launched = clock.now() + timedelta(hours=1), 0
    dispatcher = session._dispatcher
    while (due := dispatcher.next_due()) is not None and due <= end:
        clock.set(max(due, clock.now()))
        launched += sum(r.outcome is Outcome.SUBMITTED for r in session.tick())
    clock.set(end)
    return launched


def _figures(
    jobs: int,
    base: dict[str, int],
    lines: dict[str, dict[str, int]],
    walked: dict[str, int],
    rss: dict[str, float],
    submits: int,
) -> dict[str, Any]:
    spec_bytes = sum(delta(lines["specs"], base).values())
    extra = {name: sum(delta(live, lines["specs"]).values()) for name, live in lines.items() if name != "specs"}
    return {
        "jobs": jobs,
        "submits": submits,
        "spec_bytes_per_job": round(spec_bytes / jobs, 1),
        "beyond_spec_bytes": extra,
        "beyond_spec_per_job": {name: round(v / jobs, 1) for name, v in extra.items()},
        "pass2_minus_pass1_per_job": round((extra[f"pass{PASSES}"] - extra["pass1"]) / jobs, 1),
        "top_files": top(delta(by_file(lines["pass1"]), by_file(lines["specs"])), jobs),
        "top_lines": top(delta(lines["pass1"], lines["specs"]), jobs, 12),
        "growth_lines": top(delta(lines[f"pass{PASSES}"], lines["pass1"]), jobs, 5),  # per pass after the first
        "holders_per_job": {name: round(v / jobs, 1) for name, v in walked.items()},
        "rss_mib_under_tracemalloc": {k: round(v, 1) for k, v in rss.items()},  # traces inflate it
    }


def linearity(rows: list[dict[str, Any]], phase: str = "pass1") -> dict[str, Any]:
    """Bytes beyond the spec per job at each size, and between consecutive sizes (constants cancel there). Dict and
    set tables grow in powers of two, so the per-job figure steps within a factor of ~2 rather than staying flat."""
    xs = [r["jobs"] for r in rows]
    ys = [r["beyond_spec_bytes"][phase] for r in rows]
    return {
        "phase": phase,
        "per_job": [round(y / x, 1) for x, y in zip(xs, ys, strict=True)],
        "marginal_per_job": [round((ys[i] - ys[i - 1]) / (xs[i] - xs[i - 1]), 1) for i in range(1, len(xs))],
    }


def run(sizes: list[int]) -> dict[str, Any]:
    if max(sizes) > 20_000:
        os.environ.setdefault("CRONFRAMEWORK_ZK_HEAP", "2g")  # 4 znodes a job stay in the server's heap
    rows = []
    with zookeeper(1) as cluster:
        for jobs in sizes:
            root = f"/bench-memory-{uuid.uuid4().hex[:8]}"
            write_specs(cluster.connect_string, root, jobs)
            spawn = get_context("spawn")
            with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
                rows.append(pool.submit(measure, cluster.connect_string, root, jobs).result())
    return {"schedule": SCHEDULE, "passes": PASSES, "rows": rows, "linear": linearity(rows)}

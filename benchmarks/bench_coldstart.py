"""Cold start: a new leader over N jobs and R history records already in ZooKeeper (noop backend).

The history is preloaded through the store's own fenced `begin` (records written finished and with their task's
result, so none is still followed), in pipelined batches, and then each job's next instant, as the leader that
wrote the history leaves it. Then a fresh leader connects, is elected and promotes: time to ready (promotion
done), to its first launch, the lag of that launch, and its memory (RSS growth per job, specs included). History
reads are timed on a job with a deep history and on one with a shallow one: `history(job, 20)` must cost O(asked),
not O(stored).

    python -m benchmarks coldstart [--smoke]
"""

from __future__ import annotations

import gc
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from backends.noop import NoopBackend
from benchmarks.common import apply_specs, job_spec, new_root, rss_mib, start_leader, wait_until, zookeeper
from cronframework.clock import SystemClock
from cronframework.cluster.election import Election
from cronframework.naming import LaunchIdentity, parse_launch_name
from cronframework.records import Begin, JobState, LaunchRecord, Outcome, TaskResult
from cronframework.schedule.expression import parse_schedule
from cronframework.store.zookeeper.store import ZooKeeperStore

BATCH = 5000
DEEP = "deep-history"
SCHEDULE = "? * * * * *"  # every job once a minute, at a second of its own


def preload(hosts: str, root: str, jobs: int, records: int) -> dict[str, float]:
    """Specs for `jobs` jobs, `records` finished records spread over them (a tenth of them on one deep job)."""
    store = ZooKeeperStore.connect(hosts, root)
    election = Election(store.client, root, "preloader", acl=store.acl).start()
    try:
        started = time.monotonic()
        names = [DEEP] + [f"cold-{i:06d}" for i in range(jobs - 1)]
        apply_specs(store, [job_spec(n, SCHEDULE) for n in names])
        specs_s = time.monotonic() - started
        if not election.elected.wait(30) or election.fence is None:
            raise RuntimeError("the preloader was not elected")
        started = time.monotonic()
        _write_history(store, election, names, records)
        _write_watermarks(store, election, names)
        return {"write_specs_s": round(specs_s, 1), "write_records_s": round(time.monotonic() - started, 1)}
    finally:
        election.resign()
        store.close()


def _write_history(store: ZooKeeperStore, election: Election, names: list[str], records: int) -> None:
    fence = election.fence
    assert fence is not None
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    deep = records // 10
    batch: list[Begin] = []
    for i in range(records):
        job = DEEP if i < deep else names[1 + i % (len(names) - 1)]
        minute = i if i < deep else (i - deep) // (len(names) - 1)
        identity = LaunchIdentity(job, now - timedelta(minutes=minute + 1))
        record = LaunchRecord.begin(identity, leader="preloader", epoch=fence.epoch, now=now)
        ended = record.finish(Outcome.SUBMITTED, now=now).with_result(TaskResult.SUCCEEDED, exit_code=0, ended_at=now)
        batch.append(Begin(ended, JobState(job, None, identity.name)))
        if len(batch) >= BATCH:
            store.begin(fence, batch)
            batch = []
    if batch:
        store.begin(fence, batch)


def _write_watermarks(store: ZooKeeperStore, election: Election, names: list[str]) -> None:
    """Each job's next instant, as the leader that wrote the history would have left it: the new leader finds
    jobs it schedules, not new ones to place (which would write 100k states and folders at its promotion)."""
    fence = election.fence
    assert fence is not None
    now = datetime.now(UTC)
    states = []
    for name in names:
        schedule = parse_schedule(SCHEDULE, job=name)
        states.append(JobState(name, schedule.next_after(now), None))
    for start in range(0, len(states), BATCH):
        store.put_job_states(fence, states[start : start + BATCH])


def measure(hosts: str, root: str, jobs: int) -> dict[str, Any]:
    gc.collect()
    rss_before = rss_mib()
    backend = NoopBackend(clock=SystemClock())
    first_submit = _watch_first_submit(backend)
    started = time.time()
    leader = start_leader(hosts, root, backend=backend).start()
    try:
        wait_until(lambda: leader.promoted_at is not None or leader.error is not None, 900, "promotion")
        if leader.error is not None:
            raise RuntimeError(f"the leader failed: {leader.error!r}") from leader.error
        assert leader.promoted_at is not None
        ready = leader.promoted_at - started
        wait_until(lambda: bool(first_submit), 120, "the first launch")
        first = _first_launch_lag(leader)
        gc.collect()
        rss_growth = rss_mib() - rss_before
        return {
            "ready_s": round(ready, 2),
            "first_launch_after_start_s": round(first_submit[0] - started, 2),
            "first_launch_lag_s": round(first, 3),
            "rss_growth_mib": round(rss_growth, 1),
            "rss_per_job_kib": round(rss_growth * 1024 / jobs, 2),
            **_history_reads(leader.store),
        }
    finally:
        leader.close()


def _watch_first_submit(backend: NoopBackend) -> list[float]:
    """When the backend's first submit came (wall time, 5 ms resolution), in the list returned, from a thread of
    its own: the leader's first launches may come before its promotion is over (the catch-up tick)."""
    seen: list[float] = []

    def watch() -> None:
        while backend.submits == 0:
            time.sleep(0.005)
        seen.append(time.time())

    threading.Thread(target=watch, name="first-submit", daemon=True).start()
    return seen


def _first_launch_lag(leader: Any) -> float:
    time.sleep(1.0)  # let the first tick's batch finish
    best = None
    for name in leader.store.read_job_states():
        state = leader.session._dispatcher.get(name)
        if state is None or state.last_launch is None:
            continue
        at = leader.backend.submitted_at(state.last_launch)
        if at is not None:
            lag = (at - parse_launch_name(state.last_launch).scheduled).total_seconds()
            best = lag if best is None else min(best, lag)
    return best if best is not None else float("nan")


def _history_reads(store: ZooKeeperStore) -> dict[str, float]:
    out = {}
    for label, job in (("deep", DEEP), ("shallow", "cold-000000")):
        started = time.perf_counter()
        got = store.history(job, 20)
        out[f"history20_{label}_ms"] = round((time.perf_counter() - started) * 1000, 1)
        out[f"history20_{label}_records"] = len(got)
    return out


def run(jobs: int, records: int) -> dict[str, Any]:
    with zookeeper(1) as cluster:
        root = new_root("cold")
        loaded = preload(cluster.connect_string, root, jobs, records)
        return {
            "jobs": jobs,
            "records": records,
            "deep_job_records": records // 10,
            **loaded,
            **measure(cluster.connect_string, root, jobs),
        }

"""Steady state: M jobs every minute at a spread second (`? * * * * *`) plus K jobs `@every 10s`, for a while.

One in-process leader on real ZooKeeper with the noop backend, and one follower replica as its own process. Every
expected launch (from each job's own schedule over the window) is looked up in the backend: lag scheduled ->
submitted per minute and per job class (p50/p99/max), launches missing, the leader's and the follower's CPU share
and RSS per interval, and ZooKeeper's request rate (`mntr` packets received).

    python -m benchmarks steady [--smoke]
"""

from __future__ import annotations

import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.common import (
    Leader,
    apply_specs,
    cpu_seconds,
    job_spec,
    mntr,
    new_root,
    process_cpu_seconds,
    process_rss_mib,
    rss_mib,
    start_leader,
    summary,
    wait_until,
    zookeeper,
)
from cronframework.catalog.cache import compile_job
from cronframework.naming import LaunchIdentity
from cronframework.records import StoredSpec
from integration.replicas import ReplicaSet

SETTLE = 3.0  # seconds after promotion before the measured window opens


def specs(minutely: int, every10: int) -> list[Any]:
    out = [job_spec(f"minutely-{i:06d}", "? * * * * *") for i in range(minutely)]
    return out + [job_spec(f"every10-{i:05d}", "@every 10s") for i in range(every10)]


def sample(cluster: Any, follower: int, stop: threading.Event, every: float, out: list[dict[str, float]]) -> None:
    """Leader and follower CPU share and RSS, and ZooKeeper packets, once per interval."""
    last_cpu, last_t, last_packets = cpu_seconds(), time.monotonic(), mntr(cluster).get("zk_packets_received", 0)
    last_follower = process_cpu_seconds(follower)
    while not stop.wait(every):
        cpu, now, zk, follower_cpu = cpu_seconds(), time.monotonic(), mntr(cluster), process_cpu_seconds(follower)
        packets = zk.get("zk_packets_received", 0)
        span = now - last_t
        out.append(
            {
                "cpu_pct": round(100 * (cpu - last_cpu) / span, 1),
                "rss_mib": round(rss_mib(), 1),
                "follower_cpu_pct": round(100 * (follower_cpu - last_follower) / span, 1),
                "follower_rss_mib": round(process_rss_mib(follower), 1),
                "zk_requests_per_s": round((packets - last_packets) / span, 1),
                "zk_znodes": zk.get("zk_znode_count", 0),  # growth: records kept in ZooKeeper's heap
                "zk_data_mib": round(zk.get("zk_approximate_data_size", 0) / 2**20, 1),
            }
        )
        last_cpu, last_t, last_packets, last_follower = cpu, now, packets, follower_cpu


def expected(leader: Leader, start: datetime, end: datetime) -> list[LaunchIdentity]:
    """Every launch the window should hold, from each job's own schedule."""
    out = []
    for name, stored in leader.store.read_specs().items():
        schedule = compile_job(StoredSpec(name, stored.document, stored.version)).schedule
        out += [LaunchIdentity(name, t) for t in schedule.between(start, end)]
    return out


def per_minute(
    leader: Leader, launches: list[LaunchIdentity]
) -> tuple[list[dict[str, Any]], int, list[float], dict[str, list[float]]]:
    """Lag rows per minute, launches missing, every lag, and lags per job class (the prefix of its name)."""
    buckets: dict[datetime, list[float]] = {}
    classes: dict[str, list[float]] = {}
    missing = 0
    every: list[float] = []
    for identity in launches:
        got = leader.backend.submitted_at(identity.name)
        if got is None:
            missing += 1
            continue
        lag = (got - identity.scheduled) / timedelta(seconds=1)
        every.append(lag)
        buckets.setdefault(identity.scheduled.replace(second=0), []).append(lag)
        classes.setdefault(identity.job.split("-")[0], []).append(lag)
    rows = [{"minute": m.strftime("%H:%M"), "launches": len(v), **summary(v)} for m, v in sorted(buckets.items())]
    return rows, missing, every, classes


def by_second(leader: Leader, launches: list[LaunchIdentity], worst: int = 10) -> dict[str, Any]:
    """Where the tail sits: the seconds with the largest lag (how many launches were due in each), and the minutely
    jobs' lag split by whether the `@every 10s` jobs were due in the same second."""
    seconds: dict[datetime, list[float]] = {}
    minutely: dict[bool, list[float]] = {True: [], False: []}
    for identity in launches:
        got = leader.backend.submitted_at(identity.name)
        if got is None:
            continue
        lag = (got - identity.scheduled) / timedelta(seconds=1)
        seconds.setdefault(identity.scheduled, []).append(lag)
        if identity.job.startswith("minutely"):
            minutely[identity.scheduled.second % 10 == 0].append(lag)
    tail = sorted(seconds.items(), key=lambda item: max(item[1]), reverse=True)[:worst]
    return {
        "worst_seconds": [{"at": t.strftime("%H:%M:%S"), "due": len(v), "max_s": round(max(v), 3)} for t, v in tail],
        "minutely_beside_every10_s": summary(minutely[True]),
        "minutely_alone_s": summary(minutely[False]),
    }


def run_one(cluster: Any, minutely: int, every10: int, seconds: float) -> dict[str, Any]:
    root = new_root("steady")
    leader = start_leader(cluster.connect_string, root)
    followers = ReplicaSet(cluster.connect_string, root, Path(tempfile.mkdtemp(prefix="cf-bench-")), 10.0, {"noop": {}})
    samples: list[dict[str, float]] = []
    stop = threading.Event()
    try:
        apply_specs(leader.store, specs(minutely, every10))
        leader.start()
        wait_until(lambda: leader.promoted_at is not None or leader.error is not None, 600, "promotion")
        follower = followers.start("follower")  # a replica process that keeps the same state, never leads here
        wait_until(lambda: any(e["event"] == "replica started" for e in follower.events()), 120, "the follower")
        time.sleep(SETTLE)
        start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
        args = (cluster, follower.process.pid, stop, min(60.0, seconds / 3), samples)
        sampler = threading.Thread(target=sample, args=args)
        sampler.start()
        time.sleep(max(0.0, (start - datetime.now(UTC)).total_seconds()) + seconds)
        end = start + timedelta(seconds=seconds)
        time.sleep(2.0)  # launches due at the window's end finish
        stop.set()
        sampler.join()
        if leader.error is not None:
            raise RuntimeError(f"the leader failed: {leader.error!r}") from leader.error
        launches = expected(leader, start - timedelta(seconds=1), end)
        rows, missing, lags, classes = per_minute(leader, launches)
        return {
            "jobs_minutely": minutely,
            "jobs_every10s": every10,
            "seconds": seconds,
            "expected_launches": len(launches),
            "missing": missing,
            "lag_s": summary(lags),
            "lag_by_class_s": {name: summary(values) for name, values in sorted(classes.items())},
            "per_minute": rows,
            **by_second(leader, launches),
            "samples": samples,
            "open_left": len(leader.store.open_launches()),
        }
    finally:
        stop.set()
        followers.stop_all()
        leader.close()


def run(minutely: int, every10: int, seconds: float, nodes: list[int]) -> dict[str, Any]:
    rows = []
    for n in nodes:
        with zookeeper(n) as cluster:
            rows.append({"zk_nodes": n, **run_one(cluster, minutely, every10, seconds)})
    return {"rows": rows}

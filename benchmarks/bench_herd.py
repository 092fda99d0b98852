"""Herd: N jobs all due in the same second, launched by one in-process leader on real ZooKeeper (noop backend).

Measures, from the shared scheduled instant: when every launch was begun (sync point one committed), submitted
(noop backend) and finished (sync point two committed) in ZooKeeper; lag scheduled -> submitted p50/p99/max;
ZooKeeper writes (ops in multi-op transactions) and payload bytes per launch, ZooKeeper packets per launch
from `mntr`, and the CPU seconds the leader's process and ZooKeeper's servers spent from the instant until the
last launch was finished (`herd_cpu_s`). Every job is `S * * * * *` for one second S a few seconds after the leader
has taken over.

    python -m benchmarks herd [--jobs 1000,10000] [--nodes 1,3] [--repeats H] [--run-for S] [--smoke]

With `--repeats H` the same jobs herd H times, a minute apart: the first herd is the one right after takeover,
on ZooKeeper servers started a moment before; the later ones are the steady case. With `--run-for S` every launch
runs S seconds on the noop backend and then ends: with S > 60 each herd after the first launches while the leader
follows every launch of the herd before (10k running launches at 10k jobs), and the run waits for every result
and reports how long after each task's end it was recorded and what the results cost in ZooKeeper writes.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from backends.noop import NoopBackend
from benchmarks.common import (
    CpuTimeline,
    apply_specs,
    job_spec,
    lags,
    mntr,
    new_root,
    next_instant,
    start_leader,
    summary,
    time_results,
    wait_until,
    zookeeper,
)
from cronframework.clock import SystemClock
from cronframework.naming import LaunchIdentity

LEAD_SECONDS = 4  # the herd's second is this far after promotion completes (room for the first tick to settle)


def herd_second(promote_estimate: float) -> datetime:
    """A whole second at least LEAD_SECONDS + the promotion estimate away."""
    now = datetime.now(UTC).replace(microsecond=0)
    return now + timedelta(seconds=LEAD_SECONDS + int(promote_estimate) + 1)


def run_one(
    hosts: str, jobs: int, cluster: Any, herds: int = 1, run_for: float | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The first herd after takeover, then `herds - 1` more, one a minute (each job is `S * * * * *`): the later
    ones meet a ZooKeeper and a leader that have been running, as in production. With `run_for`, also the results'
    figures once every launch's result is in."""
    root = new_root("herd")
    clock = SystemClock()
    backend = NoopBackend(clock=clock, run_for=timedelta(seconds=run_for)) if run_for else None
    leader = start_leader(hosts, root, backend=backend)
    delays: list[float] = []
    time_results(leader.store, delays)
    try:
        target = herd_second(promote_estimate=jobs / 800)  # 10k jobs promote in ~8-12 s on a quiet 2-core box
        names = [f"herd-{i:06d}" for i in range(jobs)]
        apply_specs(leader.store, [job_spec(n, f"{target.second} * * * * *") for n in names])
        leader.start()
        wait_until(lambda: leader.promoted_at is not None or leader.error is not None, 300, "promotion")
        _raise(leader)
        if leader.promoted_at is not None and leader.promoted_at >= target.timestamp():
            raise RuntimeError(f"promotion of {jobs} jobs outlasted the herd's lead time; raise the estimate")
        wait_until(lambda: next_instant(leader.session) is not None, 60, "the herd's instant")
        first = next_instant(leader.session)
        assert first is not None
        rows = []
        servers = {f"zookeeper{n.sid}": n.process.pid for n in cluster.members if n.process is not None}
        with CpuTimeline(servers) as timeline:
            for herd in range(1, herds + 1):
                due = first + timedelta(minutes=herd - 1)
                before, counted = mntr(cluster), _counters(leader.writes)
                done = wait_until(
                    lambda herd=herd: (
                        leader.error is not None or leader.writes.groups.get("finishing launches", 0) >= jobs * herd
                    ),
                    max(60.0, (due - datetime.now(UTC)).total_seconds() + 60),
                    "every launch to finish",
                )
                _raise(leader)
                after = mntr(cluster)
                time.sleep(0.1)  # a CPU sample after the last finish
                figures = _figures(leader, jobs, due, names, done, before, after, counted, timeline)
                rows.append({"herd": herd, "following_at_herd": figures.pop("following"), **figures})
        return rows, _results(leader, jobs * herds, delays) if run_for else None
    finally:
        leader.close()


def _results(leader: Any, expected: int, delays: list[float]) -> dict[str, Any]:
    """Wait for every launch's result; then its delay after the task's end and its cost in ZooKeeper writes."""
    wait_until(lambda: len(delays) >= expected or leader.error is not None, 600, "every result")
    _raise(leader)
    writes = leader.writes
    what = "recording task results"
    return {
        "results": len(delays),
        "recorded_after_end_s": summary(delays),
        "result_transactions": len(writes.done.get(what, [])),
        "zk_ops_per_result": round(writes.ops.get(what, 0) / max(1, len(delays)), 2),
        "zk_bytes_per_result": round(writes.bytes.get(what, 0) / max(1, len(delays)), 1),
        "zk_index_deletes": writes.ops.get("dropping finished open-index nodes", 0),
    }


def _counters(writes: Any) -> dict[str, int]:
    return {
        "ops": writes.ops.get("beginning launches", 0) + writes.ops.get("finishing launches", 0),
        "bytes": writes.bytes.get("beginning launches", 0) + writes.bytes.get("finishing launches", 0),
    }


def _raise(leader: Any) -> None:
    if leader.error is not None:
        raise RuntimeError(f"the leader failed: {leader.error!r}") from leader.error


def _figures(
    leader: Any,
    jobs: int,
    due: datetime,
    names: list[str],
    done: float,
    before: dict[str, float],
    after: dict[str, float],
    counted: dict[str, int],
    timeline: CpuTimeline,
) -> dict[str, Any]:
    writes = leader.writes
    t0 = due.timestamp()
    begun = max(t for t, _ in writes.done["beginning launches"] if t0 <= t < t0 + 60)
    finished = max(t for t, _ in writes.done["finishing launches"] if t0 <= t < t0 + 60)
    launch_names = [LaunchIdentity(n, due).name for n in names]
    lag = lags(leader.backend, launch_names, [due] * jobs)
    now = _counters(writes)
    herd_ops, herd_bytes = now["ops"] - counted["ops"], now["bytes"] - counted["bytes"]
    open_left = len(leader.store.open_launches())
    return {
        "jobs": jobs,
        "submitted": len(lag),  # this herd's launches the backend holds
        "finished_records": sum(n for t, n in writes.done["finishing launches"] if t0 <= t < t0 + 60),
        "open_left": open_left,
        "all_begun_s": round(begun - t0, 3),
        "all_submitted_s": round(max(lag, default=0.0), 3),
        "all_finished_s": round(finished - t0, 3),
        "lag_s": summary(lag),
        "zk_ops_per_launch": round(herd_ops / jobs, 2),
        "zk_bytes_per_launch": round(herd_bytes / jobs, 1),
        "zk_packets_per_launch": round(
            (after.get("zk_packets_received", 0) - before.get("zk_packets_received", 0)) / jobs, 3
        ),
        "done_wall_s": round(done - t0, 3),
        "herd_cpu_s": timeline.between(t0, finished),
        "following": len(leader.session._results.follower),
    }


def run(sizes: list[int], nodes: list[int], herds: int = 1, run_for: float | None = None) -> dict[str, Any]:
    """`herds` herds per (ZooKeeper size, job count), one a minute; a row of figures per herd, and with `run_for`
    a row of result figures per (size, job count)."""
    rows, results = [], []
    for n in nodes:
        with zookeeper(n) as cluster:
            for jobs in sizes:
                started = time.monotonic()
                herd_rows, result_row = run_one(cluster.connect_string, jobs, cluster, herds, run_for)
                for row in herd_rows:
                    row = {"zk_nodes": n, **row, "bench_wall_s": round(time.monotonic() - started, 1)}
                    print(row, flush=True)
                    rows.append(row)
                if result_row is not None:
                    result_row = {"zk_nodes": n, "jobs": jobs, "run_for_s": run_for, **result_row}
                    print(result_row, flush=True)
                    results.append(result_row)
    return {"rows": rows, "results": results}

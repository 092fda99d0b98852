"""Peers: the same herd (N jobs due in one second) on cronframework and on APScheduler 3.x, same machine, same run.

APScheduler runs in-process with its memory job store and default 10-thread executor, no misfire grace limit
(so a late run is measured, not dropped), and a no-op job that notes when it ran. cronframework runs the herd
scenario (1-node ZooKeeper, two durable sync points per launch, noop backend). Lags are scheduled -> run
(APScheduler) and scheduled -> submitted (cronframework); the figures compared are the ratios.

    python -m benchmarks peers [--smoke]
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler  # type: ignore[import-untyped]
from apscheduler.triggers.cron import CronTrigger  # type: ignore[import-untyped]

from benchmarks import bench_herd
from benchmarks.common import summary, wait_until, zookeeper


def apscheduler_herd(jobs: int) -> dict[str, Any]:
    target = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3 + jobs // 2000)
    ran: list[float] = []
    lock = threading.Lock()

    def noop() -> None:
        with lock:
            ran.append(time.time())

    scheduler = BackgroundScheduler(timezone="UTC", job_defaults={"misfire_grace_time": None, "coalesce": False})
    trigger = CronTrigger(second=target.second, timezone="UTC")
    for i in range(jobs):
        scheduler.add_job(noop, trigger, id=f"aps-{i}")
    scheduler.start()
    due = scheduler.get_job("aps-0").next_run_time.timestamp()  # the next minute if adding outlasted the lead
    try:
        wait_until(lambda: len(ran) >= jobs, 60 + jobs / 100, "every APScheduler job to run")
    finally:
        scheduler.shutdown(wait=False)
    lags = [t - due for t in ran]
    return {"jobs": jobs, "ran": len(ran), "all_ran_s": round(max(lags), 3), "lag_s": summary(lags)}


def run(sizes: list[int]) -> dict[str, Any]:
    rows = []
    with zookeeper(1) as cluster:
        for jobs in sizes:
            (ours,), _ = bench_herd.run_one(cluster.connect_string, jobs, cluster)
            theirs = apscheduler_herd(jobs)
            rows.append(
                {
                    "jobs": jobs,
                    "cronframework": {k: ours[k] for k in ("submitted", "all_finished_s", "lag_s")},
                    "apscheduler": theirs,
                    "ratio_p50": _ratio(ours["lag_s"]["p50"], theirs["lag_s"]["p50"]),
                    "ratio_p99": _ratio(ours["lag_s"]["p99"], theirs["lag_s"]["p99"]),
                }
            )
            print(rows[-1], flush=True)
    return {"rows": rows}


def _ratio(ours: float, theirs: float) -> float:
    return round(ours / theirs, 2) if theirs > 0 else float("inf")

"""Takeover: two scheduler replicas as OS processes (noop backend); the leader is killed, terminated or frozen.

N jobs: one `canary` due every second, the rest every minute at a spread second. After the leader has launched for
a while it gets SIGKILL, SIGTERM (hand-over) or SIGSTOP (frozen past the session timeout). Measured from the
signal: the first canary launch begun by the other replica (time to first launch), and the time until no launch is
left open in ZooKeeper (open launches concluded). Repeated; p50 and max per (session timeout, signal).

The first canary launch also waits for the canary's next whole second when the hand-over ends before it, so it is
up to ~1 s whatever the hand-over costs; `promoted_s` (the new leader's "took over") is the hand-over itself, and
`first_late_s` how late the first canary was after its instant (or after the signal, for a caught-up instant).

    python -m benchmarks takeover [--smoke]
"""

from __future__ import annotations

import signal
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks.common import apply_specs, job_spec, new_root, summary, wait_until, zookeeper
from cronframework.store.zookeeper.store import ZooKeeperStore
from integration.replicas import ReplicaSet

SIGNALS = {"kill -9": signal.SIGKILL, "SIGTERM": signal.SIGTERM, "SIGSTOP": signal.SIGSTOP}
WARM = 4.0  # seconds of launching before the signal


def one(hosts: str, jobs: int, session_timeout: float, sig: signal.Signals) -> dict[str, float]:
    root = new_root("takeover")
    store = ZooKeeperStore.connect(hosts, root)
    replicas = ReplicaSet(
        hosts, root, Path(tempfile.mkdtemp(prefix="cf-bench-")), session_timeout, backends={"noop": {}}
    )
    try:
        specs = [job_spec("canary", "* * * * * *")]
        apply_specs(store, specs + [job_spec(f"tk-{i:05d}", "? * * * * *") for i in range(jobs - 1)])
        replicas.start("r1")
        old = replicas.wait_leader(60)
        replicas.start("r2")
        wait_until(
            lambda: any(e["event"] == "replica started" for e in replicas.replicas["r2"].events()),
            60,
            "the second replica",
        )
        time.sleep(WARM)
        killed = time.time()
        replicas.replicas[old].signal(sig)
        first = wait_until(lambda: _new_canary(store, old), 60 + 3 * session_timeout, "a launch by the new leader")
        concluded = wait_until(lambda: not store.open_launches(), 60, "open launches to conclude")
        new = next(rid for rid in replicas.replicas if rid != old)
        wait_until(lambda: _logged(replicas, new, "took over"), 30, "the new leader's takeover report")
        begun, scheduled = _first_canary(store, old)
        return {
            "first_launch_s": begun - killed,
            "first_late_s": begun - max(scheduled, killed),
            "open_concluded_s": concluded - killed,
            "detected_s": first - killed,
            **_phases(replicas, old, killed),
        }
    finally:
        for replica in replicas.replicas.values():
            replica.signal(signal.SIGCONT)
            replica.signal(signal.SIGKILL)
        store.close()


PHASES = {
    "leading": "elected_s",
    "job specs warm": "specs_warm_s",  # the new leader took the specs it kept while following
    "took over": "promoted_s",
    "shutting down; handing leadership over": "released_s",
}


def _logged(replicas: ReplicaSet, rid: str, event: str) -> bool:
    return any(e["event"] == event for e in replicas.replicas[rid].events())


def _phases(replicas: ReplicaSet, old: str, signalled: float) -> dict[str, float]:
    """Where the time went, from the replicas' own logs: old leader released, new one elected, promotion done."""
    out: dict[str, float] = {}
    for rid, replica in replicas.replicas.items():
        for event in replica.events():
            key = PHASES.get(event["event"])
            if key is None or (key == "released_s") != (rid == old):
                continue
            at = datetime.fromisoformat(event["ts"]).timestamp() - signalled
            if at > 0 and key not in out:
                out[key] = round(at, 3)
    return out


def _canary_records(store: ZooKeeperStore, old: str) -> list[Any]:
    return [r for r in store.history("canary", 10) if r.leader != old and r.begun_at is not None]


def _new_canary(store: ZooKeeperStore, old: str) -> bool:
    return bool(_canary_records(store, old))


def _first_canary(store: ZooKeeperStore, old: str) -> tuple[float, float]:
    """When the new leader began its first canary launch, and that launch's scheduled instant."""
    first = min(_canary_records(store, old), key=lambda r: r.begun_at)
    return float(first.begun_at.timestamp()), float(first.scheduled.timestamp())


def run(sizes: list[int], timeouts: list[float], repeats: int, signals: list[str] | None = None) -> dict[str, Any]:
    rows = []
    with zookeeper(1) as cluster:
        for jobs in sizes:
            for timeout in timeouts:
                for label in signals or list(SIGNALS):
                    runs = [one(cluster.connect_string, jobs, timeout, SIGNALS[label]) for _ in range(repeats)]
                    row = {
                        "jobs": jobs,
                        "session_timeout_s": timeout,
                        "signal": label,
                        "repeats": repeats,
                        "first_launch_s": summary([r["first_launch_s"] for r in runs]),
                        "first_late_s": summary([r["first_late_s"] for r in runs]),
                        "open_concluded_s": summary([r["open_concluded_s"] for r in runs]),
                        **{
                            k: summary([r[k] for r in runs if k in r])
                            for k in PHASES.values()
                            if any(k in r for r in runs)
                        },
                        "runs": runs,
                    }
                    print(row, flush=True)
                    rows.append(row)
    return {"rows": rows}

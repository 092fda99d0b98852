"""Suspend: the leader's ZooKeeper connection is suspended in the middle of a herd; when is its last backend call?

One in-process leader (noop backend, every call timed) and N jobs due in the same second. The fault is injected
inside the leader's own commit of sync point one (launches begun, none submitted yet), the worst moment: either the
ZooKeeper server is frozen (SIGSTOP: sockets stay open, kazoo notices only by its read timeout) or killed (SIGKILL:
the connection resets at once); the noop backend answers at once or after 50 ms (a submit that blocks, as real
backends do, runs on the launcher's thread pool). Measured: from the fault to SUSPENDED seen by kazoo, and from
the fault and from SUSPENDED to the last backend call. Target: no backend call more than 100 ms after the suspension.

    python -m benchmarks suspend [--jobs 1000] [--repeats 5]
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from kazoo.protocol.states import KazooState

from benchmarks.common import Leader, apply_specs, job_spec, new_root, start_leader, summary, wait_until
from cronframework.store.zookeeper.batch import PreparedWrite
from integration.zk import ZkCluster

SESSION_TIMEOUT = 4.0
FAULTS = ("SIGSTOP", "SIGKILL")
CALLS = ("submit", "lookup", "stop", "list")
LATENCIES = (0.0, 0.05)  # an inline noop submit, and one taking 50 ms (submitted from the launcher's pool)


def time_calls(leader: Leader) -> list[float]:
    """Wrap the noop backend's calls so each one's start time (wall clock) is appended to the returned list."""
    calls: list[float] = []
    for name in CALLS:
        inner = getattr(leader.backend, name)
        setattr(leader.backend, name, _timed(inner, calls))
    return calls


def _timed(inner: Callable[..., Any], calls: list[float]) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        calls.append(time.time())
        return inner(*args, **kwargs)

    return call


def fault_on_first_begin(leader: Leader, inject: Callable[[], None], after: float) -> list[float]:
    """Inject the fault as soon as ZooKeeper has confirmed the first `beginning launches` batch sent at or after
    `after` (wall clock): every launch of it begun, none submitted yet. The writer's observer sees each applied
    batch whichever way it was sent (staged or not)."""
    faulted: list[float] = []
    writer = leader.store.writer
    observer = writer.on_done

    def on_done(write: PreparedWrite) -> None:
        if observer is not None:
            observer(write)
        if write.what == "beginning launches" and not faulted and time.time() >= after:
            faulted.append(time.time())
            inject()

    writer.on_done = on_done
    return faulted


def watch_suspended(leader: Leader) -> list[float]:
    seen: list[float] = []

    def listener(state: str) -> None:
        if state != KazooState.CONNECTED and not seen:
            seen.append(time.time())

    leader.store.client.add_listener(listener)
    return seen


def _injector(cluster: ZkCluster, fault: str) -> Callable[[], None]:
    """Freeze or kill the server without waiting: the leader thread must not be held up by the injection."""
    process = cluster.node(1).process
    assert process is not None
    sig = signal.SIGSTOP if fault == "SIGSTOP" else signal.SIGKILL
    return lambda: os.kill(process.pid, sig)


def one(jobs: int, fault: str, latency: float) -> dict[str, Any]:
    cluster = ZkCluster(nodes=1).start()
    leader = start_leader(cluster.connect_string, new_root("suspend"), session_timeout=SESSION_TIMEOUT)
    try:
        target = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=5 + int(jobs / 700))
        apply_specs(leader.store, [job_spec(f"sus-{i:06d}", f"{target.second} * * * * *") for i in range(jobs)])
        leader.backend.latency, leader.backend.blocking = latency, latency > 0
        calls = time_calls(leader)
        faulted = fault_on_first_begin(leader, _injector(cluster, fault), target.timestamp())
        suspended = watch_suspended(leader)
        leader.start()
        wait_until(lambda: bool(suspended) or leader.error is not None, 60, "SUSPENDED after the fault")
        time.sleep(1.5)  # any backend call still coming would come now
        return {"backend_latency_s": latency, **_figures(jobs, fault, faulted[0], suspended[0], calls)}
    finally:
        _teardown(leader, cluster)


def _figures(jobs: int, fault: str, faulted: float, suspended: float, calls: list[float]) -> dict[str, Any]:
    after = [c for c in calls if c >= faulted]
    last = max(calls, default=faulted)
    return {
        "jobs": jobs,
        "fault": fault,
        "suspended_after_fault_s": round(suspended - faulted, 3),
        "last_call_after_fault_s": round(max(0.0, last - faulted), 3),
        "last_call_after_suspended_s": round(last - suspended, 3),
        "calls_after_fault": len(after),
        "calls_after_suspended": len([c for c in calls if c > suspended]),
    }


def _teardown(leader: Leader, cluster: ZkCluster) -> None:
    """Stop the leader without waiting on a dead ZooKeeper: the session cannot be closed cleanly anyway."""
    leader.stop.set()
    leader.session.wake()
    cluster.destroy()
    closer = threading.Thread(target=leader.store.client.stop, daemon=True)
    closer.start()
    closer.join(5)


def run(jobs: int, repeats: int, latencies: Sequence[float] = LATENCIES) -> dict[str, Any]:
    rows = []
    for latency, fault in [(lat, f) for lat in latencies for f in FAULTS]:
        runs = [one(jobs, fault, latency) for _ in range(repeats)]
        print(runs, flush=True)
        rows.append(
            {
                "jobs": jobs,
                "fault": fault,
                "backend_latency_s": latency,
                "repeats": repeats,
                "runs": runs,
                **{
                    key: summary([r[key] for r in runs])
                    for key in ("suspended_after_fault_s", "last_call_after_fault_s", "last_call_after_suspended_s")
                },
            }
        )
    return {"session_timeout_s": SESSION_TIMEOUT, "rows": rows}

"""Shared plumbing for the scheduler benchmarks: real ZooKeeper, an in-process leader on the noop backend, figures.

Every scenario drives the real code path (LeaderSession -> Launcher -> ZooKeeperStore -> FencedWriter) against
real ZooKeeper servers started by integration.zk; only the backend is the in-process noop, so the figures are the
scheduler's own cost. Results are plain dicts of figures, printed as JSON with the machine they were taken on.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from backends.noop import NoopBackend
from cronframework.abc import Backend
from cronframework.adapters import BackendSet
from cronframework.catalog.apply import spec_batches, spec_document
from cronframework.catalog.cache import SpecCache
from cronframework.clock import SystemClock
from cronframework.cluster.election import Election
from cronframework.cluster.replica import ZkLeadership, specs_stamp
from cronframework.engine.leader import LeaderConfig, LeaderSession
from cronframework.heap import tune_collector
from cronframework.records import ResultBatch, SpecChange
from cronframework.spec.model import JobSpec
from cronframework.store.zookeeper.batch import PreparedWrite
from cronframework.store.zookeeper.store import ZooKeeperStore
from integration.zk import ZkCluster, four_letter


def machine() -> dict[str, Any]:
    """What the figures were measured on; printed with every result."""
    mem_kb = 0
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    return {
        "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
    }


def pct(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) by nearest rank; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "p50": round(pct(values, 0.5), 4),
        "p99": round(pct(values, 0.99), 4),
        "max": round(max(values, default=0.0), 4),
    }


def rss_mib() -> float:
    """The current resident set of this process (the in-process leader and the benchmark driver)."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU of another process (a replica), from /proc."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def pin(pid: int, cpus: set[int]) -> None:
    """Every thread of `pid` (0: this process) to `cpus`; threads and children started later inherit it. A
    process's own affinity call moves only its calling thread, so each of /proc/<pid>/task is moved."""
    for task in Path(f"/proc/{pid or os.getpid()}/task").iterdir():
        try:
            os.sched_setaffinity(int(task.name), cpus)
        except ProcessLookupError:
            continue  # a thread that ended since the listing


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class CpuTimeline:
    """CPU seconds of this process (the in-process leader) and of other processes (ZooKeeper's servers), read
    every `interval` in a thread, so that a herd's CPU is known between any two instants after the fact: on two
    shared cores, CPU per herd varies less from run to run than the herd's wall time."""

    def __init__(self, pids: Mapping[str, int], interval: float = 0.05) -> None:
        self._pids = dict(pids)
        self._interval = interval
        self._samples: list[tuple[float, dict[str, float]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-timeline", daemon=True)

    def __enter__(self) -> CpuTimeline:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            row = {"leader": cpu_seconds()}
            for name, pid in self._pids.items():
                try:
                    row[name] = process_cpu_seconds(pid)
                except OSError:  # a server stopped: its CPU no longer moves
                    row[name] = self._samples[-1][1].get(name, 0.0) if self._samples else 0.0
            self._samples.append((time.time(), row))

    def between(self, start: float, end: float) -> dict[str, float]:
        """CPU seconds each process spent from `start` to `end` (wall-clock seconds), at the samples nearest
        outside them (so at most an interval more on each side)."""
        before = [row for t, row in self._samples if t <= start]
        after = [row for t, row in self._samples if t >= end]
        if not before or not after:
            return {}
        return {name: round(after[0][name] - before[-1][name], 2) for name in after[0]}


@contextmanager
def zookeeper(nodes: int, *, fsync: bool = False) -> Iterator[ZkCluster]:
    cluster = ZkCluster(nodes=nodes, force_sync=fsync)
    try:
        yield cluster.start()
    finally:
        cluster.destroy()


def mntr(cluster: ZkCluster) -> dict[str, float]:
    """Numeric `mntr` figures summed over the running nodes (packets, znode count, data size)."""
    totals: dict[str, float] = {}
    for node in cluster.members:
        if not node.running:
            continue
        for line in four_letter(node.client_port, "mntr").splitlines():
            key, _, value = line.partition("\t")
            try:
                totals[key] = totals.get(key, 0.0) + float(value)
            except ValueError:
                continue
    return totals


def job_spec(name: str, schedule: str, **extra: Any) -> JobSpec:
    body = {"name": name, "schedule": schedule, "backend": "noop", "task": {"command": ["/bin/true"]}, **extra}
    return JobSpec.model_validate(body)


def apply_specs(store: ZooKeeperStore, specs: Sequence[JobSpec]) -> None:
    """Create the specs in the transactions `apply` cuts them into."""
    for batch in spec_batches([SpecChange(s.name, spec_document(s), None) for s in specs]):
        store.write_specs(batch)


@dataclass
class WriteLog:
    """What reached ZooKeeper through the store's FencedWriter: per `what`, transactions' ops, bytes, and when."""

    ops: dict[str, int] = field(default_factory=dict)
    bytes: dict[str, int] = field(default_factory=dict)
    groups: dict[str, int] = field(default_factory=dict)
    done: dict[str, list[tuple[float, int]]] = field(default_factory=dict)  # (wall time, groups) per commit

    def total_ops(self) -> int:
        return sum(self.ops.values())

    def total_bytes(self) -> int:
        return sum(self.bytes.values())


def count_writes(store: ZooKeeperStore) -> WriteLog:
    """Count every batch the store's writer got applied (ops and bytes on the wire, completion time)."""
    log = WriteLog()

    def done(batch: PreparedWrite) -> None:
        what = batch.what
        log.ops[what] = log.ops.get(what, 0) + batch.ops
        log.bytes[what] = log.bytes.get(what, 0) + batch.size
        log.groups[what] = log.groups.get(what, 0) + batch.groups
        log.done.setdefault(what, []).append((time.time(), batch.groups))

    store.writer.on_done = done
    return log


@dataclass
class Leader:
    """One in-process leader: its own ZooKeeper session, a real Election, the noop backend, a SystemClock."""

    store: ZooKeeperStore
    election: Election
    backend: Any  # the noop backend, unless a benchmark brings a real one
    specs: SpecCache
    session: LeaderSession
    writes: WriteLog
    stop: threading.Event
    thread: threading.Thread | None = None
    error: BaseException | None = None
    promoted_at: float | None = None

    def start(self) -> Leader:
        self.thread = threading.Thread(target=self._run, name="bench-leader", daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        try:
            self.session.promote()
            self.promoted_at = time.time()
            self.session.start_threads()  # results followed and notifications sent off the loop, as in production
            while not self.stop.is_set():
                self.session.tick()
                self.session._sleep()
        except BaseException as exc:
            self.error = exc
        finally:
            self.session.close_threads()
            self.session._launcher.close()

    def close(self) -> None:
        self.stop.set()
        self.session.wake()
        if self.thread is not None:
            self.thread.join(30)
        self.election.resign()
        self.store.close()
        self.backend.close()


def start_leader(
    hosts: str,
    root: str,
    *,
    session_timeout: float = 10.0,
    backend: Backend | None = None,
    backend_name: str = "noop",
    **config: Any,
) -> Leader:
    """An elected in-process leader, not started; its jobs run on `backend` (default: a fresh noop backend). The
    process's collector is tuned as the scheduler's entry points tune theirs."""
    tune_collector()
    store = ZooKeeperStore.connect(hosts, root, session_timeout=session_timeout)
    writes = count_writes(store)
    election = Election(store.client, root, f"bench-{uuid.uuid4().hex[:6]}", acl=store.acl).start()
    if not election.elected.wait(30) or election.fence is None:
        raise RuntimeError("the benchmark leader was not elected within 30 s")
    clock = SystemClock()
    backend = backend if backend is not None else NoopBackend(clock=clock)
    specs = SpecCache(store, background=True, stamp=specs_stamp(store))  # as a replica: promotion reuses them
    specs.start()
    stop = threading.Event()
    session = LeaderSession(
        store,
        specs,
        BackendSet(preset={backend_name: backend}),
        ZkLeadership(election, election.fence),
        clock,
        LeaderConfig(cluster=root, **config),
        stop,
    )
    return Leader(store, election, backend, specs, session, writes, stop)


def time_results(store: ZooKeeperStore, delays: list[float]) -> None:
    """Wrap the store's `record_results`: for each result written, how long after its task's end (as the backend
    reported it) the store confirmed it, appended to `delays`. A retried run concluded again is not counted twice."""
    inner = store.record_results

    def record(fence: Any, batch: ResultBatch) -> None:
        inner(fence, batch)
        now = time.time()
        delays.extend(now - r.ended_at.timestamp() for r in batch.records if r.ended_at and r.retry_at is None)

    store.record_results = record  # type: ignore[method-assign]


def new_root(scenario: str) -> str:
    return f"/bench-{scenario}-{uuid.uuid4().hex[:8]}"


def wait_until(condition: Any, timeout: float, what: str, interval: float = 0.02) -> float:
    """Poll until `condition()` holds; the wall time it held; RuntimeError naming `what` on timeout."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)
    return time.time()


def lags(backend: NoopBackend, names: Sequence[str], scheduled: Sequence[datetime]) -> list[float]:
    """Seconds from each launch's scheduled instant to the noop backend's submitted_at (missing ones skipped)."""
    out = []
    for name, when in zip(names, scheduled, strict=True):
        got = backend.submitted_at(name)
        if got is not None:
            out.append((got - when) / timedelta(seconds=1))
    return out


def emit(scenario: str, figures: dict[str, Any]) -> dict[str, Any]:
    result = {"scenario": scenario, "machine": machine(), **figures}
    print(json.dumps(result, indent=1, default=str), flush=True)
    return result


def minutely_spec(name: str, second: int, backend: str, task: dict[str, Any], **fields: Any) -> JobSpec:
    """A job due once a minute at `second` on `backend`; launches may overlap (a herd's task may outlast it)."""
    body = {"name": name, "schedule": f"{second} * * * * *", "backend": backend, "task": task, "concurrency": "allow"}
    return JobSpec.model_validate({**body, **fields})


def herd_instant(jobs: int, lead: float = 4.0, per_job: float = 1 / 800) -> datetime:
    """A whole second far enough ahead for a leader of `jobs` jobs to promote (about 800 jobs a second here)."""
    now = datetime.now(UTC).replace(microsecond=0)
    return now + timedelta(seconds=int(lead + jobs * per_job) + 1)


def leader_herd(
    hosts: str,
    specs: Sequence[JobSpec],
    backend: Backend,
    backend_name: str,
    on_leader: Callable[[Leader], None] | None = None,
    **config: Any,
) -> dict[str, float]:
    """The real leader/launcher path through `backend`: `specs` (each due once a minute at one second S) applied in
    ZooKeeper, an elected leader promoted, both sync points of every launch of the herd committed. The leader is
    closed (and the backend with it) before this returns; the herd's figures are read from the backend after.
    `on_leader` sees the leader before it starts (benchmarks/phases.py times its steps)."""
    leader = start_leader(hosts, new_root("backend-herd"), backend=backend, backend_name=backend_name, **config)
    if on_leader is not None:
        on_leader(leader)
    try:
        apply_specs(leader.store, specs)
        leader.start()
        wait_until(lambda: leader.promoted_at is not None or leader.error is not None, 300, "promotion")
        if leader.error is not None:
            raise RuntimeError(f"the leader failed: {leader.error!r}") from leader.error
        wait_until(lambda: next_instant(leader.session) is not None, 30, "the herd's instant")
        due = next_instant(leader.session)
        finished = wait_until(
            lambda: leader.error is not None or leader.writes.groups.get("finishing launches", 0) >= len(specs),
            600,
            "sync point two of every launch",
        )
        if leader.error is not None:
            raise RuntimeError(f"the leader failed: {leader.error!r}") from leader.error
        return {"promoted_at": leader.promoted_at or 0.0, "due": due.timestamp() if due else 0.0, "sync_two": finished}
    finally:
        leader.close()


def next_instant(session: Any) -> datetime | None:
    """The herd's instant: on the dispatcher, or held by a stage built for it (None while one is being built)."""
    stage = session._stage
    return stage.at if stage is not None else session._dispatcher.next_due()  # type: ignore[no-any-return]


def stage_figures(instant: float, stages: Mapping[str, Sequence[float | None]], expected: int) -> dict[str, Any]:
    """Per stage (e.g. registered, running, complete): how many launches reached it, the last one's time after
    `instant`, p50/p99 per launch, and launches per second from the instant to the last."""
    out: dict[str, Any] = {}
    for stage, stamps in stages.items():
        after = [t - instant for t in stamps if t is not None]
        last = max(after, default=0.0)
        out[stage] = {
            "count": len(after),
            "last_s": round(last, 3),
            "p50_s": round(pct(after, 0.5), 3),
            "p99_s": round(pct(after, 0.99), 3),
            "per_s": round(expected / last, 1) if last > 0 and len(after) == expected else 0.0,
        }
    return out


def sleep_until(instant: float) -> None:
    time.sleep(max(0.0, instant - time.time()))

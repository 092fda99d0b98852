"""Nomad herd: N launches due in the same second on one dev agent, ours beside Nomad's own periodic dispatcher.

    python -m benchmarks nomadherd [--jobs 100,1000] [--repeats R] [--workers K] [--phases] [--unplaced]
                                   [--agent-cpus 0]

For each N, on the same dev agent (raw_exec, tasks that exit at once), one after the other:
(theirs) N periodic parent jobs registered in Nomad, all with the same one-off cron instant (7-field spec with the
year): Nomad's own dispatcher creates the N children; (ours) N cronframework jobs due at one second through the
real leader (both sync points on a real 1-node ZooKeeper) and the Nomad backend; (ceiling) a plain concurrent HTTP
client, K threads with a session each, registering the same N batch job payloads (create-only, as the backend does)
the moment the second comes; (ceiling_checked) the same client reading each job's summary right after registering
it: the adapter's check (docs/backends.md, "Nomad"), which the launcher makes after a herd's registrations.
Everything is read back from Nomad: each child/launch job's SubmitTime (registered), its allocation's task StartedAt
(running) and FinishedAt (complete), after the instant; the last one, p50/p99, and launches per second up to the
last. The ratios ours/theirs and ours/ceiling come from the
same run. Every job made here is named nh-... and purged after each measurement.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import requests

from backends.nomad import create
from backends.nomad_spec import job_payload
from backends.nomad_status import parse_time
from benchmarks.common import (
    herd_instant,
    leader_herd,
    minutely_spec,
    pin,
    sleep_until,
    stage_figures,
    zookeeper,
)
from benchmarks.phases import Phases, trace_leader
from cronframework.launch import Launch
from cronframework.naming import LaunchIdentity
from cronframework.spec.model import JobSpec
from integration.nomad_agent import NomadAgent
from integration.zk import ZkCluster

PREFIX = "nh-"
CLUSTER = "/cf-bench-nomad-herd"
STAGES = ("registered", "running", "complete")
# small reservations, so the whole herd fits the dev node at once and placement waits for nothing
RESOURCES = {"cpu": 0.01, "memory": 16}
# `--unplaced`: a constraint no node meets, so the agent registers each job and parks its evaluation as blocked
NOWHERE = [{"attribute": "${meta.cf_bench_nowhere}", "value": "never"}]


@dataclass
class Options:
    unplaced: bool = False  # set by `run` for the whole run: every variant's jobs alike


OPTIONS = Options()


def spec(name: str, second: int) -> JobSpec:
    task = {"command": ["/bin/true"], "resources": RESOURCES}
    fields = {"nomad": {"constraints": NOWHERE}} if OPTIONS.unplaced else {}
    return minutely_spec(name, second, "nomad", task, **fields)


def payload(job: str, instant: datetime) -> dict[str, Any]:
    launch = Launch(identity=LaunchIdentity(job, instant), spec=spec(job, instant.second), cluster=CLUSTER)
    return job_payload(launch)


class Api:
    """Plain HTTP to the agent, a session per thread (the ceiling's client, Nomad periodic's parents, the read-back
    and the purge). It asks for answers uncompressed, as the backend does: a gzipped answer costs the agent a
    megabyte of garbage, and a thousand of them just before a variant's instant handed that variant's herd the
    agent's collector (docs/benchmarks.md, "Herds on the real backends")."""

    def __init__(self, address: str) -> None:
        self.address = address
        self._local = threading.local()

    def call(self, method: str, path: str, body: Any = None) -> Any:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.headers["Accept-Encoding"] = "identity"
        reply = session.request(method, f"{self.address}{path}", json=body, timeout=60)
        reply.raise_for_status()
        return reply.json() if reply.content else None

    def register(self, job: dict[str, Any]) -> None:
        self.call("POST", "/v1/jobs", {"Job": job, "EnforceIndex": True, "JobModifyIndex": 0})


def in_parallel(work: Callable[[Any], None], items: Sequence[Any], workers: int, api: Api, at: float = 0.0) -> None:
    """`work` on every item from `workers` threads pulling from one list, from `at` on (Unix time); each thread has
    its connection to the agent open before then, as a running client has."""
    pending = list(reversed(items))
    lock = threading.Lock()
    go = threading.Barrier(workers + 1)

    def loop() -> None:
        api.call("GET", "/v1/status/leader")
        go.wait()
        while True:
            with lock:
                if not pending:
                    return
                item = pending.pop()
            work(item)

    threads = [threading.Thread(target=loop, daemon=True) for _ in range(workers)]
    for thread in threads:
        thread.start()
    sleep_until(at)
    go.wait()
    for thread in threads:
        thread.join()


def theirs(api: Api, jobs: int, workers: int) -> tuple[float, str]:
    """N periodic parents whose one launch is the same instant; registered well before it."""
    instant = herd_instant(jobs, lead=5.0, per_job=1 / 40)
    cron = f"{instant.second} {instant.minute} {instant.hour} {instant.day} {instant.month} * {instant.year}"
    parents = []
    for i in range(jobs):
        job = payload(f"{PREFIX}theirs-{i:05d}", instant)
        job["ID"] = job["Name"] = f"{PREFIX}theirs-{i:05d}"
        job["Periodic"] = {"Enabled": True, "SpecType": "cron", "Spec": cron, "TimeZone": "UTC"}
        parents.append(job)
    in_parallel(api.register, parents, workers, api)
    if time.time() > instant.timestamp() - 0.5:
        raise RuntimeError(f"registering {jobs} periodic parents outlasted the lead time; raise the estimate")
    return instant.timestamp(), f"{PREFIX}theirs-"


def ours(hosts: str, address: str, jobs: int, workers: int = 16, phases: Phases | None = None) -> tuple[float, str]:
    instant = herd_instant(jobs)
    specs = [spec(f"{PREFIX}ours{workers}-{i:05d}", instant.second) for i in range(jobs)]
    trace = None if phases is None else partial(trace_leader, phases)
    marks = leader_herd(hosts, specs, create({"address": address}), "nomad", trace, workers=workers)
    if abs(marks["due"] - instant.timestamp()) > 0.5:
        raise RuntimeError(f"the herd came due at {marks['due']}, not {instant.timestamp()}")
    return instant.timestamp(), f"{PREFIX}ours{workers}-"


def ceiling(
    api: Api, jobs: int, workers: int, checked: bool = False, phases: Phases | None = None
) -> tuple[float, str]:
    """The plain client; `checked`: each registration followed at once by the read of the job's summary that the
    adapter needs to tell which of two racing registrations created the job (docs/backends.md, "Nomad")."""
    instant = herd_instant(0)
    prefix = f"{PREFIX}ceil{'chk' if checked else ''}-"
    payloads = [payload(f"{prefix}{i:05d}", instant) for i in range(jobs)]

    def register(job: dict[str, Any]) -> None:
        started, cpu = time.time(), time.thread_time()
        api.register(job)
        if phases is not None:
            phases.add("plain client: register (HTTP write)", started, cpu)
        if checked:
            api.call("GET", f"/v1/job/{job['ID']}/summary")

    in_parallel(register, payloads, workers, api, instant.timestamp())
    return instant.timestamp(), prefix


def launched(api: Api, prefix: str) -> dict[str, float]:
    """Registration time of every launch job under `prefix` (children only, for periodic parents)."""
    found = api.call("GET", f"/v1/jobs?prefix={prefix}")
    return {j["ID"]: j["SubmitTime"] / 1e9 for j in found if j.get("ParentID") or not j.get("Periodic")}


def read_back(api: Api, prefix: str, jobs: int, timeout: float = 600) -> dict[str, list[float | None]]:
    """Registered / running / complete of each launch, once every allocation has finished (or `timeout`)."""
    deadline = time.monotonic() + timeout
    while True:
        registered = launched(api, prefix)
        allocs = [a for a in api.call("GET", "/v1/allocations") if a["JobID"] in registered]
        done = [a for a in allocs if a["ClientStatus"] in ("complete", "failed", "lost")]
        placed = OPTIONS.unplaced or len(done) >= jobs
        if (len(registered) >= jobs and placed) or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    states: list[dict[str, Any]] = [next(iter((a.get("TaskStates") or {}).values()), {}) for a in allocs]
    return {
        "registered": list(registered.values()),
        "running": [_stamp(s.get("StartedAt")) for s in states],
        "complete": [_stamp(s.get("FinishedAt")) for s in states],
    }


def _stamp(text: Any) -> float | None:
    when = parse_time(text)
    return None if when is None else when.timestamp()


def purge(api: Api, workers: int) -> None:
    """Every job this benchmark made (parents, children, launches), then Nomad's garbage collection, then `settle`."""
    ids = [j["ID"] for j in api.call("GET", f"/v1/jobs?prefix={PREFIX}")]
    in_parallel(lambda i: api.call("DELETE", f"/v1/job/{i}?purge=true"), ids, workers, api)
    api.call("PUT", "/v1/system/gc")
    settle(api)


def settle(api: Api, timeout: float = 120.0, quiet: float = 2.0) -> None:
    """Until the agent has no evaluation left to process (a purge of a herd is a thousand evaluations, processed
    after the deletes return), then `quiet` seconds more: the variant measured next must not share the agent with
    the previous one's clean-up."""
    deadline = time.monotonic() + timeout
    busy = '/v1/evaluations?filter=Status == "pending" or Status == "blocked"'
    while api.call("GET", busy.replace(" ", "%20").replace('"', "%22")) and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(quiet)


def collect(agent: NomadAgent, workdir: Path, timeout: float = 60.0) -> None:
    """Have the client collect every finished allocation (and unmount its directories) before the agent stops: a
    dev agent that stops leaves the mounts of allocations it had not collected behind."""
    deadline = time.monotonic() + timeout
    while any((workdir / "data" / "alloc").glob("*")) and time.monotonic() < deadline:
        agent.api("PUT", "/v1/client/gc")
        time.sleep(0.5)


def measure(label: str, api: Api, go: Callable[[], tuple[float, str]], jobs: int, workers: int) -> dict[str, Any]:
    try:
        instant, prefix = go()
        row = {"variant": label, "jobs": jobs, **stage_figures(instant, read_back(api, prefix, jobs), jobs)}
        print(row, flush=True)
        return row
    finally:
        purge(api, workers)


def ratios(jobs: int, rows: dict[str, dict[str, Any]], label: str = "ratios") -> dict[str, Any]:
    """Ours over theirs: when the last launch reached each stage (<= 1.0: no later than Nomad's dispatcher);
    ours over the ceiling: launches per second to each stage (1.0: as fast as the plain client)."""
    row: dict[str, Any] = {"variant": label, "jobs": jobs}
    for stage in STAGES:
        mine, nomad, top = (rows[v][stage] for v in ("ours", "theirs", "ceiling"))
        row[f"{stage}_last_ours_over_theirs"] = round(mine["last_s"] / nomad["last_s"], 3) if nomad["last_s"] else None
        row[f"{stage}_rate_ours_over_ceiling"] = round(mine["per_s"] / top["per_s"], 3) if top["per_s"] else None
        checked = rows["ceiling_checked"][stage]
        row[f"{stage}_rate_ours_over_checked"] = (
            round(mine["per_s"] / checked["per_s"], 3) if checked["per_s"] else None
        )
    print(row, flush=True)
    return row


def run(
    sizes: list[int],
    repeats: int = 1,
    workers: int = 16,
    more_workers: Sequence[int] = (),
    phases: bool = False,
    unplaced: bool = False,
    agent_cpus: set[int] | None = None,
) -> dict[str, Any]:
    """Per N: theirs, ours and both ceilings with `workers` threads; then ours again with each of `more_workers`
    submit workers (the scheduler's `workers` setting), against the same ceilings. `phases`: ours and the plain
    client alone, each with the time of every step of its path (benchmarks/phases.py). `unplaced`: no job is
    placed (registration alone, a few seconds per variant rather than minutes of task starts). `agent_cpus`: the
    agent and its tasks on these CPUs, the benchmark's process (leader, clients) and ZooKeeper on the others, as
    when the schedulers run on hosts of their own."""
    OPTIONS.unplaced = unplaced
    rest = other_cpus(agent_cpus) if agent_cpus else set()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-nomad-herd-") as workdir:
        agent = NomadAgent(Path(workdir)).start()
        try:
            api = Api(agent.address)
            purge(api, workers)
            with zookeeper(1) as cluster:
                if agent_cpus:
                    _pin_apart(agent, agent_cpus, cluster, rest)
                for jobs in sizes:
                    for _ in range(repeats):
                        if phases:
                            rows += phased(api, cluster.connect_string, agent.address, jobs, workers)
                            continue
                        rows += herd(api, cluster.connect_string, agent.address, jobs, workers, more_workers)
        finally:
            collect(agent, Path(workdir))
            agent.stop()
    return {"workers": workers, "agent_cpus": sorted(agent_cpus or ()), "rows": rows}


def other_cpus(agent_cpus: set[int]) -> set[int]:
    """The CPUs left for the leader and ZooKeeper; ValueError when none is."""
    rest = set(range(os.cpu_count() or 1)) - agent_cpus
    if not rest:
        raise ValueError(f"--agent-cpus {','.join(map(str, sorted(agent_cpus)))} leaves no CPU for the leader")
    return rest


def _pin_apart(agent: NomadAgent, agent_cpus: set[int], cluster: ZkCluster, rest: set[int]) -> None:
    """The agent (its tasks inherit it) on `agent_cpus`; this process and ZooKeeper's servers on `rest`."""
    pin(agent.sessions[-1], agent_cpus)
    for pid in [0, *(m.process.pid for m in cluster.members if m.process)]:
        pin(pid, rest)


def phased(api: Api, hosts: str, address: str, jobs: int, workers: int) -> list[dict[str, Any]]:
    """Ours, then the plain client, each with where its time went after the instant."""
    variants: dict[str, Callable[[Phases], tuple[float, str]]] = {
        "ours": lambda p: ours(hosts, address, jobs, workers, p),
        "ceiling": lambda p: ceiling(api, jobs, workers, phases=p),
    }
    return [traced(label, api, go, jobs, workers) for label, go in variants.items()]


def traced(label: str, api: Api, go: Callable[[Phases], tuple[float, str]], jobs: int, workers: int) -> dict[str, Any]:
    phases = Phases()
    instants: list[float] = []

    def started() -> tuple[float, str]:
        instant, prefix = go(phases)
        instants.append(instant)
        return instant, prefix

    row = measure(label, api, started, jobs, workers)
    row["phases"] = phases.summary(instants[0])
    print({"variant": label, "jobs": jobs, "phases": row["phases"]}, flush=True)
    return row


def herd(
    api: Api, hosts: str, address: str, jobs: int, workers: int, more_workers: Sequence[int]
) -> list[dict[str, Any]]:
    def one(label: str, go: Callable[[], tuple[float, str]]) -> dict[str, Any]:
        return measure(label, api, go, jobs, workers)

    measured = {
        "theirs": one("theirs", partial(theirs, api, jobs, workers)),
        "ours": one("ours", partial(ours, hosts, address, jobs, workers)),
        "ceiling": one("ceiling", partial(ceiling, api, jobs, workers)),
        "ceiling_checked": one("ceiling_checked", partial(ceiling, api, jobs, workers, True)),
    }
    rows = [*measured.values(), ratios(jobs, measured)]
    for more in more_workers:
        mine = one(f"ours_{more}_workers", partial(ours, hosts, address, jobs, more))
        rows += [mine, ratios(jobs, {**measured, "ours": mine}, f"ratios_{more}_workers")]
    return rows


__all__ = ["run"]

"""Nomad backend figures on a local dev agent: submit latency, throughput, launch lag vs Nomad's periodic.

    python -m benchmarks.bench_nomad [--launches 100] [--ticks 6] [--interval 5] [--address URL]

1. Throughput: N creates of jobs no node can place (the API path alone), then N creates through the adapter,
   one after another (p50/p99 latency, launches per second; the tasks start meanwhile), then the same N again
   (each refused as already existing: the cost of an idempotent resubmit), then N lookups.
2. Lag: Nomad's own periodic job (7-field cron, every `interval` seconds) and this adapter submitting at the
   same instants run side by side on the same agent. For each instant: registration lag (the job's SubmitTime
   minus the instant) and start lag (the task's StartedAt minus the instant). Ours covers the adapter only: in
   the product the scheduler also writes its two sync points to the state store before and after the submit.

Figures, not assertions; bounded in count and time; loopback only. Without --address a dev agent is started.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from backends.nomad import NomadBackend, create
from backends.nomad_status import parse_time
from cronframework.launch import Launch
from cronframework.naming import LaunchIdentity
from cronframework.spec.model import JobSpec
from integration.nomad_agent import NomadAgent, install

COMMAND = ["/bin/true"]


def make_launch(job: str, scheduled: datetime, nomad: dict[str, Any] | None = None) -> Launch:
    spec = JobSpec.model_validate(
        {"name": job, "schedule": "@every 1m", "backend": "nomad", "task": {"command": COMMAND}, "nomad": nomad or {}}
    )
    return Launch(identity=LaunchIdentity(job, scheduled), spec=spec, cluster="/bench")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def timed(call: Callable[[], Any]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def summary(label: str, seconds: list[float]) -> str:
    total = sum(seconds)
    ms = [s * 1000 for s in seconds]
    return (
        f"{label:<28} n={len(ms):<4} p50={percentile(ms, 50):7.1f} ms  p99={percentile(ms, 99):7.1f} ms  "
        f"max={max(ms):7.1f} ms  {len(ms) / total:7.1f}/s"
    )


def throughput(backend: NomadBackend, count: int) -> None:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    # first the API path alone: jobs no node can take stay pending, so no task start competes for the CPUs
    nowhere = {"constraints": [{"attribute": "${attr.kernel.name}", "value": "no-such-kernel"}]}
    parked = [make_launch("bench-parked", base + timedelta(minutes=i), nowhere) for i in range(count)]
    print(summary("submit (create, unplaced)", [timed(partial(backend.submit, la.name, la)) for la in parked]))
    for launch in parked:
        backend.remove(launch.name)
    launches = [make_launch("bench-tp", base + timedelta(minutes=i)) for i in range(count)]
    for label in ("submit (create)", "submit (already existed)"):
        print(summary(label, [timed(partial(backend.submit, la.name, la)) for la in launches]))
    print(summary("lookup", [timed(partial(backend.lookup, la.name)) for la in launches]))


def periodic_job(job_id: str, interval: int) -> dict[str, Any]:
    task = {"Name": "task", "Driver": "raw_exec", "Config": {"command": COMMAND[0], "args": COMMAND[1:]}}
    group = {"Name": "launch", "Count": 1, "Tasks": [task], "RestartPolicy": {"Attempts": 0, "Mode": "fail"}}
    periodic = {"Enabled": True, "SpecType": "cron", "Spec": f"*/{interval} * * * * * *", "TimeZone": "UTC"}
    return {"ID": job_id, "Type": "batch", "Datacenters": ["*"], "Periodic": periodic, "TaskGroups": [group]}


def ours(backend: NomadBackend, ticks: int, interval: int) -> list[tuple[datetime, str]]:
    """Submit at each `interval`-aligned instant, as a scheduler would: sleep until it, then submit."""
    done = []
    for _ in range(ticks):
        now = time.time()
        instant = datetime.fromtimestamp((int(now) // interval + 1) * interval, tz=UTC)
        time.sleep(max(0.0, instant.timestamp() - time.time()))
        launch = make_launch("bench-lag", instant)
        backend.submit(launch.name, launch)
        done.append((instant, launch.name))
    return done


def lags(agent: NomadAgent, job_id: str, instant: datetime) -> tuple[float, float | None]:
    job = agent.api("GET", f"/v1/job/{job_id.replace('/', '%2F')}")
    submitted = job["SubmitTime"] / 1e9 - instant.timestamp()
    started = None
    for alloc in agent.api("GET", f"/v1/job/{job_id.replace('/', '%2F')}/allocations"):
        state: dict[str, Any] = next(iter((alloc.get("TaskStates") or {}).values()), {})
        stamp = parse_time(state.get("StartedAt"))
        if stamp is not None:
            started = stamp.timestamp() - instant.timestamp()
    return submitted, started


def wait_started(agent: NomadAgent, job_ids: list[str], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(lags(agent, j, datetime.now(UTC))[1] is None for j in job_ids):
        time.sleep(0.5)


def lag_report(label: str, agent: NomadAgent, runs: list[tuple[datetime, str]]) -> None:
    wait_started(agent, [job_id for _, job_id in runs])
    pairs = [lags(agent, job_id, instant) for instant, job_id in runs]
    reg = [p[0] * 1000 for p in pairs]
    start = [p[1] * 1000 for p in pairs if p[1] is not None]
    print(
        f"{label:<24} n={len(reg):<3} registered +{statistics.median(reg):6.0f} ms median "
        f"(max {max(reg):5.0f})   task started +{statistics.median(start):6.0f} ms median "
        f"(max {max(start):6.0f})"
    )


def lag(backend: NomadBackend, agent: NomadAgent, ticks: int, interval: int) -> None:
    parent = f"bench-periodic-{os.getpid()}"
    agent.api("POST", "/v1/jobs", {"Job": periodic_job(parent, interval)})
    try:
        runs = ours(backend, ticks, interval)
        time.sleep(1)
    finally:
        agent.api("DELETE", f"/v1/job/{parent}")
    children = [j["ID"] for j in agent.api("GET", f"/v1/jobs?prefix={parent}/periodic-")]
    first = runs[0][0].timestamp()
    theirs = [
        (datetime.fromtimestamp(int(c.rsplit("-", 1)[1]), tz=UTC), c)
        for c in children
        if int(c.rsplit("-", 1)[1]) >= first
    ]
    lag_report("nomad periodic", agent, sorted(theirs)[:ticks])
    lag_report("cronframework adapter", agent, runs)


def machine(agent: NomadAgent) -> str:
    cpu = "unknown cpu"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if "model name" in line]
        cpu = names[0] if names else cpu
    version = subprocess.run([str(install()), "version"], capture_output=True, text=True, check=False).stdout
    return (
        f"machine: {platform.platform()}, {os.cpu_count()} cpus ({cpu}), Python {platform.python_version()}, "
        f"{version.splitlines()[0] if version else 'nomad ?'}, agent {agent.address} (-dev, raw_exec)"
    )


@contextmanager
def agent_for(address: str | None) -> Iterator[NomadAgent]:
    if address:
        agent = NomadAgent(Path(tempfile.gettempdir()))
        agent.address = address
        yield agent
        return
    with tempfile.TemporaryDirectory(prefix="bench-nomad-") as workdir:
        agent = NomadAgent(Path(workdir)).start()
        try:
            yield agent
        finally:
            agent.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--launches", type=int, default=100)
    parser.add_argument("--ticks", type=int, default=6)
    parser.add_argument("--interval", type=int, default=5, help="seconds between scheduled instants")
    parser.add_argument("--address", help="an existing agent (default: start a dev agent)")
    args = parser.parse_args(argv)
    with agent_for(args.address) as agent:
        backend = create({"address": agent.address})
        print(machine(agent))
        throughput(backend, max(1, min(args.launches, 2000)))
        lag(backend, agent, max(1, min(args.ticks, 60)), max(1, args.interval))
        backend.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Submit latency and sustained launch rate through the Docker backend, against the real local daemon.

    python -m benchmarks.bench_docker --launches 50

Each launch is one container running /bin/true from the registry-free test image. Figures, not asserts: p50/p99
of `submit` (create + start), submits per second over the whole run, and the rate at which launches finished.
Every container made here carries the label cronframework.cluster=/cf-bench and is removed at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

import docker.errors

from backends.docker import DockerBackend, create
from cronframework.errors import TransientBackendError
from cronframework.launch import Launch
from integration.docker_daemon import TEST_IMAGE, ensure_ready, remove_labelled, sdk_client
from tests.backend_conformance import conformance_launch, finished

CLUSTER = "/cf-bench"


def _launches(count: int) -> list[Launch]:
    job = f"bench-{uuid.uuid4().hex[:8]}"
    base = datetime.now(UTC).replace(microsecond=0)
    return [
        dataclasses.replace(
            conformance_launch(job, ["/bin/true"], scheduled=base + timedelta(minutes=i), image=TEST_IMAGE),
            cluster=CLUSTER,
        )
        for i in range(count)
    ]


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def _submit_all(backend: DockerBackend, launches: list[Launch]) -> tuple[list[float], float]:
    latencies = []
    start = time.perf_counter()
    for launch in launches:
        began = time.perf_counter()
        backend.submit(launch.name, launch)
        latencies.append(time.perf_counter() - began)
    return latencies, time.perf_counter() - start


def _wait_all(backend: DockerBackend, launches: list[Launch], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    pending = [launch.name for launch in launches]
    while pending and time.monotonic() < deadline:
        pending = [name for name in pending if not finished(backend.lookup(name))]
        time.sleep(0.1)
    if pending:
        raise SystemExit(f"{len(pending)} launches never finished")


def _cleanup() -> None:
    try:
        remove_labelled(sdk_client(), f"cronframework.cluster={CLUSTER}")
    except docker.errors.DockerException as exc:
        print(f"could not remove the benchmark's containers (label cronframework.cluster={CLUSTER}): {exc}")


def _machine() -> str:
    info = sdk_client().info()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{platform.node()} {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"dockerd {info.get('ServerVersion')} ({info.get('Driver')}, cgroup v{info.get('CgroupVersion')}), load {load}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--launches", type=int, default=50)
    args = parser.parse_args()
    ensure_ready()
    backend = create({"default_network": "none"})
    launches = _launches(args.launches)
    try:
        began = time.perf_counter()
        latencies, submit_wall = _submit_all(backend, launches)
        _wait_all(backend, launches)
        total_wall = time.perf_counter() - began
    except TransientBackendError as exc:
        raise SystemExit(f"the daemon went away mid-run (another process stopped it?): {exc}") from None
    finally:
        _cleanup()
        backend.close()
    ms = [s * 1000 for s in latencies]
    print(f"machine: {_machine()}")
    print(f"launches: {args.launches} (one container each, /bin/true, sequential submits)")
    print(
        f"submit latency: p50 {_percentile(ms, 0.5):.1f} ms, p99 {_percentile(ms, 0.99):.1f} ms, "
        f"mean {statistics.fmean(ms):.1f} ms, max {max(ms):.1f} ms"
    )
    print(f"sustained submit rate: {args.launches / submit_wall:.1f} launches/s")
    print(f"submitted and finished: {args.launches / total_wall:.1f} launches/s ({total_wall:.1f} s in all)")


if __name__ == "__main__":
    main()

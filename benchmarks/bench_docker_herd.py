"""Docker herd: N containers due in the same second through the Docker backend, beside the daemon's ceiling.

    python -m benchmarks dockerherd [--jobs 100,500] [--repeats R] [--workers K]

For each N, on the same daemon, one after the other: (ours) N cronframework jobs due at one second, through the
real leader (both sync points on a real 1-node ZooKeeper) and the Docker backend; (ceiling) a plain concurrent
client, K threads with a client each, creating and starting the same N containers (the same create payloads) the
moment the second comes. Both are read back from the daemon: for each container when it was created, started and
finished, after the instant; the last one, p50/p99, and the launches per second up to the last start. The ratio
ours/ceiling is taken in the same run. Every container is named dh-... and is removed after
each measurement.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial
from typing import Any

import docker
import docker.errors

from backends.docker import DockerConfig, create
from backends.docker_spec import plan_container
from backends.docker_status import parse_time
from benchmarks.common import herd_instant, leader_herd, minutely_spec, sleep_until, stage_figures, zookeeper
from cronframework.launch import Launch
from cronframework.naming import LaunchIdentity
from cronframework.spec.model import JobSpec
from integration.docker_daemon import TEST_IMAGE, ensure_ready, sdk_client

CLUSTER = "/cf-bench-herd"
PREFIX = "dh-"
CONFIG = {"default_network": "none"}


def spec(name: str, second: int) -> JobSpec:
    return minutely_spec(name, second, "docker", {"command": ["/bin/true"], "image": TEST_IMAGE})


def ours(hosts: str, jobs: int) -> tuple[float, list[str], dict[str, float]]:
    instant = herd_instant(jobs)
    specs = [spec(f"dh-ours-{i:05d}", instant.second) for i in range(jobs)]
    backend = create(CONFIG)
    marks = leader_herd(hosts, specs, backend, "docker")
    if abs(marks["due"] - instant.timestamp()) > 0.5:
        raise RuntimeError(f"the herd came due at {marks['due']}, not {instant.timestamp()}")
    return instant.timestamp(), [LaunchIdentity(s.name, instant).name for s in specs], marks


def ceiling(jobs: int, workers: int) -> tuple[float, list[str], dict[str, float]]:
    """The same containers (payloads of the same launches) created and started by `workers` plain threads."""
    instant = herd_instant(0)
    launches = [launch(f"dh-ceil-{i:05d}", instant) for i in range(jobs)]
    placement = DockerConfig.model_validate(CONFIG).placement()
    plans = [plan_container(la.name, la, placement) for la in launches]
    pending = list(reversed(plans))
    lock = threading.Lock()

    clients = [sdk_client() for _ in range(workers)]
    for api in clients:
        api.version()  # connected and the API version settled before the instant, as a running scheduler is

    def work(api: docker.APIClient) -> None:
        while True:
            with lock:
                if not pending:
                    break
                plan = pending.pop()
            api.create_container(host_config=api.create_host_config(**plan.host), **plan.create)
            api.start(plan.create["name"])

    sleep_until(instant.timestamp())
    threads = [threading.Thread(target=work, args=(api,), daemon=True) for api in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for api in clients:
        api.close()
    return instant.timestamp(), [la.name for la in launches], {"submitted": time.time()}


def launch(job: str, instant: datetime) -> Launch:
    return Launch(identity=LaunchIdentity(job, instant), spec=spec(job, instant.second), cluster=CLUSTER)


def read_back(api: docker.APIClient, names: Sequence[str], timeout: float = 600) -> dict[str, list[float | None]]:
    """Created / started / finished of each container, once every one has exited."""
    deadline = time.monotonic() + timeout
    while True:
        infos = [api.inspect_container(name) for name in names]
        if all(i["State"]["Status"] == "exited" for i in infos) or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    return {
        "created": [_stamp(i.get("Created")) for i in infos],
        "started": [_stamp(i["State"].get("StartedAt")) for i in infos],
        "finished": [_stamp(i["State"].get("FinishedAt")) for i in infos],
    }


def remove_ours(api: docker.APIClient) -> None:
    """Every container this benchmark made (named dh-...), whatever run left it; no other container."""
    for entry in api.containers(all=True, filters={"name": PREFIX}):
        if any(name.lstrip("/").startswith(PREFIX) for name in entry.get("Names") or []):
            with contextlib.suppress(docker.errors.NotFound):
                api.remove_container(entry["Id"], force=True, v=True)


def _stamp(text: Any) -> float | None:
    when = parse_time(text)
    return None if when is None else when.timestamp()


def measure(label: str, go: Callable[[], tuple[float, list[str], dict[str, float]]], jobs: int) -> dict[str, Any]:
    api = sdk_client()
    names: list[str] = []
    try:
        instant, names, marks = go()
        figures = stage_figures(instant, read_back(api, names), jobs)
        extra = {k: round(v - instant, 3) for k, v in marks.items() if k in ("sync_two", "submitted")}
        row = {"variant": label, "jobs": jobs, **figures, **extra}
        print(row, flush=True)
        return row
    finally:
        remove_ours(api)
        api.close()


def run(sizes: list[int], repeats: int = 1, workers: int = 16) -> dict[str, Any]:
    ensure_ready()
    remove_ours(sdk_client())
    rows = []
    with zookeeper(1) as cluster:
        for jobs in sizes:
            for _ in range(repeats):
                mine = measure("ours", partial(ours, cluster.connect_string, jobs), jobs)
                top = measure("ceiling", partial(ceiling, jobs, workers), jobs)
                rows += [mine, top, ratios(jobs, mine, top)]
    return {"workers": workers, "rows": rows}


def ratios(jobs: int, mine: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """Ours as a fraction of the ceiling's throughput, per stage (1.0 = as fast as the plain client)."""
    row: dict[str, Any] = {"variant": "ours/ceiling", "jobs": jobs}
    for stage in ("created", "started", "finished"):
        theirs = top[stage]["per_s"]
        row[f"{stage}_throughput"] = round(mine[stage]["per_s"] / theirs, 3) if theirs else None
    print(row, flush=True)
    return row


__all__ = ["run"]

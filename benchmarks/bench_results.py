"""Results: how soon after a task ends its result is recorded, per backend, against the real services.

    python -m benchmarks results [--backends process,docker,nomad] [--jobs 10] [--seconds 60]

An in-process leader (a real election on real ZooKeeper, the follower's and the outbox's threads as in production)
runs `--jobs` jobs `@every 5s` (spread over the period by their hashed offsets) on one backend: the process backend,
the Docker daemon of scripts/dockerd.sh, or a Nomad dev agent (raw_exec). Each task runs `sleep 1` and exits 0.

For each result written, the figure is the time its `record_results` transaction was confirmed minus the task's
end as the backend reports it (the supervisor's exit record, Docker's FinishedAt, Nomad's task FinishedAt): the
watch, the lookup, the wait for the leader's next tick and the write. Also: ZooKeeper ops and bytes per result
(the record, the job's summary, the open index's deletes, the fence checks).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from backends.docker import create as docker_backend
from backends.nomad import create as nomad_backend
from backends.process import ProcessBackend
from benchmarks.common import apply_specs, job_spec, new_root, start_leader, summary, time_results, zookeeper
from cronframework.abc import Backend
from integration.docker_daemon import TEST_IMAGE, ensure_ready, remove_labelled, sdk_client
from integration.nomad_agent import NomadAgent

TASK = ["/bin/sh", "-c", "sleep 1"]
WHAT = "recording task results"


@contextmanager
def backend_for(name: str, root: str) -> Iterator[tuple[Backend, dict[str, Any]]]:
    """The backend and the task its jobs run; whatever it made is removed afterwards."""
    workdir = Path(tempfile.mkdtemp(prefix=f"cf-bench-results-{name}-"))
    try:
        if name == "process":
            yield ProcessBackend(workdir / "process"), {"command": TASK}
        elif name == "docker":
            ensure_ready()
            backend = docker_backend({})
            try:
                yield backend, {"image": TEST_IMAGE, "command": TASK}
            finally:
                remove_labelled(sdk_client(), f"cronframework.cluster={root}")
                backend.close()
        else:
            agent = NomadAgent(workdir / "nomad").start()
            try:
                yield nomad_backend({"address": agent.address}), {"command": TASK}
            finally:
                agent.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run_one(hosts: str, backend_name: str, jobs: int, seconds: float) -> dict[str, Any]:
    root = new_root("results")
    with backend_for(backend_name, root) as (backend, task):
        leader = start_leader(hosts, root, backend=backend, backend_name=backend_name)
        delays: list[float] = []
        time_results(leader.store, delays)
        try:
            specs = [job_spec(f"res-{i:03d}", "@every 5s", backend=backend_name, task=task) for i in range(jobs)]
            apply_specs(leader.store, specs)
            leader.start()
            time.sleep(seconds)
            if leader.error is not None:
                raise RuntimeError(f"the leader failed: {leader.error!r}") from leader.error
            ops, size = leader.writes.ops.get(WHAT, 0), leader.writes.bytes.get(WHAT, 0)
        finally:
            leader.close()
    return {
        "backend": backend_name,
        "jobs": jobs,
        "seconds": seconds,
        "results": len(delays),
        "recorded_after_end_s": summary(delays),
        "zk_ops_per_result": round(ops / max(1, len(delays)), 2),
        "zk_bytes_per_result": round(size / max(1, len(delays)), 1),
    }


def run(backends: list[str], jobs: int, seconds: float) -> dict[str, Any]:
    rows = []
    with zookeeper(1) as cluster:
        for name in backends:
            row = run_one(cluster.connect_string, name, jobs, seconds)
            print(row, flush=True)
            rows.append(row)
    return {"rows": rows}

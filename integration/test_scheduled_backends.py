"""Scheduler replicas launching on the real Docker daemon and the real Nomad agent, end to end.

What the backend suites cannot show: a running scheduler launches on schedule through the adapter, the outcome
(exit code) is seen through `history --json`, a leader that died between sync point one and submit -- or, on
Docker, between create and start -- is concluded by the next leader with exactly one container/job, and
`concurrency: replace` stops the previous launch.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from integration.docker_daemon import DockerDaemonError, ensure_ready, remove_labelled, sdk_client
from integration.nomad_agent import NomadAgent, NomadAgentError
from integration.replicas import ReplicaSet, wait_for

IMAGE = "cronframework-test:latest"


@pytest.fixture(scope="module")
def docker_api() -> Iterator[docker.APIClient]:
    try:
        ensure_ready()
    except DockerDaemonError as exc:
        pytest.fail(f"cannot start the Docker daemon (scripts/dockerd.sh): {exc}")
    api = sdk_client()
    yield api
    api.close()


@pytest.fixture(scope="module")
def nomad(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NomadAgent]:
    agent = NomadAgent(tmp_path_factory.mktemp("nomad-sched"))
    try:
        agent.start()
    except NomadAgentError as exc:
        agent.stop()
        pytest.fail(f"cannot start a Nomad agent (scripts/nomad.sh): {exc}")
    yield agent
    agent.stop()


def job_file(tmp_path: Path, jobs: dict[str, dict[str, Any]]) -> Path:
    path = tmp_path / "jobs.yaml"
    path.write_text(json.dumps({"job": jobs}))  # JSON is YAML
    return path


def history(cluster: ReplicaSet, job: str) -> list[dict[str, Any]]:
    return list(json.loads(cluster.cli("history", job, "--json", "--limit", "100").stdout))


def containers(api: docker.APIClient, root: str, job: str | None = None) -> list[dict[str, Any]]:
    labels = [f"cronframework.cluster={root}"] + ([f"cronframework.job={job}"] if job else [])
    return list(api.containers(all=True, filters={"label": labels}))


@pytest.fixture
def docker_cluster(docker_api: docker.APIClient, zk_hosts: str, zk_root: str, tmp_path: Path) -> Iterator[ReplicaSet]:
    cluster = ReplicaSet(zk_hosts, zk_root, tmp_path / "cluster", backends={"docker": {}})
    yield cluster
    cluster.stop_all()
    remove_labelled(docker_api, f"cronframework.cluster={zk_root}")


def test_docker_job_launched_on_schedule_with_exit_codes_in_history(
    docker_cluster: ReplicaSet, docker_api: docker.APIClient, tmp_path: Path
) -> None:
    task = {"image": IMAGE, "command": ["/bin/sh", "-c", "echo ran $CRONFRAMEWORK_LAUNCH; exit 3"]}
    jobs = job_file(tmp_path, {"fails": {"schedule": "*/2 * * * * *", "backend": "docker", "task": task}})
    docker_cluster.cli("apply", str(jobs))
    docker_cluster.start("a")
    docker_cluster.wait_leader()

    def failed_launches() -> list[dict[str, Any]]:
        return [r for r in history(docker_cluster, "fails") if r.get("result") == "failed"]

    done = wait_for(failed_launches, 60)
    assert done, docker_cluster.log_tails()
    assert all(r["exit_code"] == 3 and r["outcome"] == "submitted" and r["duration"] is not None for r in done)
    names = [c["Names"][0].lstrip("/") for c in containers(docker_api, docker_cluster.root, "fails")]
    assert len(names) == len(set(names))
    assert {r["name"] for r in done} <= set(names)
    logs = docker_cluster.cli("logs", "fails", "--launch", done[0]["name"]).stdout
    assert f"ran {done[0]['name']}" in logs


def test_docker_crash_between_create_and_start_is_started_by_the_next_leader(
    docker_cluster: ReplicaSet, docker_api: docker.APIClient, tmp_path: Path
) -> None:
    task = {"image": IMAGE, "command": ["/bin/sh", "-c", "echo once"]}
    jobs = job_file(tmp_path, {"once": {"schedule": "0 0 1 1 *", "backend": "docker", "task": task}})
    docker_cluster.cli("apply", str(jobs))
    doomed = docker_cluster.start("doomed", env={"CRONFRAMEWORK_CRASH_AT": "after_sync_one"})
    docker_cluster.wait_leader()
    docker_cluster.cli("trigger", "once")
    assert wait_for(lambda: not doomed.alive(), 30), docker_cluster.log_tails()
    store = docker_cluster.store()
    try:
        [open_record] = store.open_launches()
    finally:
        store.close()
    # What a leader dying between create and start leaves behind: a created container nobody started.
    labels = {
        "cronframework.cluster": docker_cluster.root,
        "cronframework.job": "once",
        "cronframework.launch": open_record.name,
    }
    docker_api.create_container(IMAGE, command=["/bin/sh", "-c", "echo once"], name=open_record.name, labels=labels)
    docker_cluster.start("heir")
    docker_cluster.wait_leader(other_than="doomed")

    def finished() -> dict[str, Any] | None:
        rows = [r for r in history(docker_cluster, "once") if r["name"] == open_record.name]
        return rows[0] if rows and rows[0].get("result") == "succeeded" else None

    row = wait_for(finished, 60)
    assert row, docker_cluster.log_tails()
    assert row["state"] == "finished"
    assert len(containers(docker_api, docker_cluster.root, "once")) == 1


def test_docker_replace_stops_the_previous_launch(
    docker_cluster: ReplicaSet, docker_api: docker.APIClient, tmp_path: Path
) -> None:
    task = {"image": IMAGE, "command": ["/bin/sh", "-c", "sleep 300"]}
    spec = {"schedule": "*/3 * * * * *", "backend": "docker", "concurrency": "replace", "task": task}
    docker_cluster.cli("apply", str(job_file(tmp_path, {"swap": spec})))
    docker_cluster.start("a")
    docker_cluster.wait_leader()

    def states() -> list[str]:
        return [c["State"] for c in containers(docker_api, docker_cluster.root, "swap")]

    assert wait_for(lambda: len(states()) >= 3, 60), docker_cluster.log_tails()
    docker_cluster.replicas["a"].signal(signal.SIGTERM)
    docker_cluster.replicas["a"].process.wait(20)
    assert states().count("running") <= 1, states()
    assert states().count("exited") >= 2


def test_nomad_job_launched_on_schedule_with_outcome_in_history(
    nomad: NomadAgent, zk_hosts: str, zk_root: str, tmp_path: Path
) -> None:
    cluster = ReplicaSet(zk_hosts, zk_root, tmp_path / "cluster", backends={"nomad": {"address": nomad.address}})
    try:
        task = {"command": ["/bin/sh", "-c", "echo nomad $CRONFRAMEWORK_LAUNCH"]}
        spec = {"schedule": "*/5 * * * * *", "backend": "nomad", "task": task}
        cluster.cli("apply", str(job_file(tmp_path, {"nomadic": spec})))
        cluster.start("a")
        cluster.wait_leader()

        def succeeded() -> list[dict[str, Any]]:
            rows = history(cluster, "nomadic")
            return [r for r in rows if r.get("result") == "succeeded"]

        done = wait_for(succeeded, 90)
        assert done, cluster.log_tails()
        assert done[0]["outcome"] == "submitted"
        jobs = nomad.api("GET", "/v1/jobs?prefix=nomadic-")
        ids = [j["ID"] for j in jobs]
        assert len(ids) == len(set(ids)) and done[0]["name"] in ids
    finally:
        cluster.stop_all()


def test_nomad_crash_between_sync_point_one_and_submit_is_concluded_once(
    nomad: NomadAgent, zk_hosts: str, zk_root: str, tmp_path: Path
) -> None:
    cluster = ReplicaSet(zk_hosts, zk_root, tmp_path / "cluster", backends={"nomad": {"address": nomad.address}})
    try:
        task = {"command": ["/bin/sh", "-c", "echo once"]}
        cluster.cli(
            "apply",
            str(job_file(tmp_path, {"nomad-once": {"schedule": "0 0 1 1 *", "backend": "nomad", "task": task}})),
        )
        doomed = cluster.start("doomed", env={"CRONFRAMEWORK_CRASH_AT": "after_sync_one"})
        cluster.wait_leader()
        cluster.cli("trigger", "nomad-once")
        assert wait_for(lambda: not doomed.alive(), 30), cluster.log_tails()
        store = cluster.store()
        try:
            [open_record] = store.open_launches()
        finally:
            store.close()
        assert nomad.api("GET", "/v1/jobs?prefix=nomad-once-") == []  # the backend was never called
        cluster.start("heir")
        cluster.wait_leader(other_than="doomed")

        def succeeded() -> list[dict[str, Any]]:
            rows = [r for r in history(cluster, "nomad-once") if r["name"] == open_record.name]
            return [r for r in rows if r.get("result") == "succeeded"]

        assert wait_for(succeeded, 90), cluster.log_tails()
        assert [j["ID"] for j in nomad.api("GET", "/v1/jobs?prefix=nomad-once-")] == [open_record.name]
    finally:
        cluster.stop_all()

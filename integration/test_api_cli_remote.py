"""The command line against real replica processes and a real ZooKeeper: through a follower's API only
(CRONFRAMEWORK_ADDR and CRONFRAMEWORK_API_TOKEN, no ZooKeeper address), an operator triggers a job, follows its
output to the end with `logs -f`, and reads status and history; with CRONFRAMEWORK_ZK and CRONFRAMEWORK_ROOT, `show`
prints the applied spec and `delete` removes it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from integration.replicas import ReplicaSet, wait_for

TOKEN = "integration-cli-token"
JOBS = """
job:
  hourly:
    schedule: "0 * * * *"
    backend: process
    task:
      command: ["/bin/sh", "-c", "echo first $CRONFRAMEWORK_LAUNCH; sleep 2; echo second"]
"""


@pytest.fixture
def cluster(zk_hosts: str, zk_root: str, tmp_path: Path) -> Iterator[ReplicaSet]:
    replicas = ReplicaSet(zk_hosts, zk_root, tmp_path / "cluster", session_timeout=4.0, api_token=TOKEN)
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text(JOBS)
    replicas.cli("apply", str(jobs))
    yield replicas
    replicas.stop_all()


def cronframework(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CRONFRAMEWORK_")}
    return subprocess.run(
        [sys.executable, "-m", "cronframework", *args], capture_output=True, text=True, timeout=90, env={**clean, **env}
    )


def test_an_operator_with_only_the_api_triggers_and_follows_a_launch(cluster: ReplicaSet) -> None:
    for name in ("a", "b"):
        cluster.start(name)
    leader = cluster.wait_leader()
    follower = next(r for r in ("a", "b") if r != leader)
    env = {"CRONFRAMEWORK_ADDR": cluster.api_url(follower), "CRONFRAMEWORK_API_TOKEN": TOKEN}
    cluster.api_url(leader)
    triggered = wait_for(lambda: cronframework(env, "trigger", "hourly").returncode == 0, 20)
    assert triggered, cronframework(env, "trigger", "hourly").stderr + cluster.log_tails()

    def launched() -> str | None:
        rows = json.loads(cronframework(env, "history", "hourly", "-o", "json").stdout or "[]")
        return next((r["name"] for r in rows if r["manual"] and r["outcome"] == "submitted"), None)

    name = wait_for(launched, 30)
    assert name, cluster.log_tails()
    followed = cronframework(env, "logs", "hourly", "--launch", name, "-f", "--interval", "0.2")
    assert followed.returncode == 0, followed.stderr
    assert followed.stdout == f"first {name}\nsecond\n"
    status = json.loads(cronframework(env, "status", "-o", "json").stdout)
    assert [j["job"] for j in status["jobs"]] == ["hourly"] and status["leader"]["replica"] == leader
    refused = cronframework({**env, "CRONFRAMEWORK_API_TOKEN": "wrong"}, "pause", "hourly")
    assert refused.returncode == 1 and "401" in refused.stderr


def test_show_and_delete_through_zookeeper_from_the_environment(
    cluster: ReplicaSet, zk_hosts: str, zk_root: str
) -> None:
    env = {"CRONFRAMEWORK_ZK": zk_hosts, "CRONFRAMEWORK_ROOT": zk_root}
    shown = cronframework(env, "show", "hourly")
    assert shown.returncode == 0, shown.stderr
    assert yaml.safe_load(shown.stdout)["job"]["hourly"]["schedule"] == "0 * * * *"
    deleted = cronframework(env, "delete", "hourly")
    assert deleted.returncode == 0, deleted.stderr
    assert cronframework(env, "status", "-o", "name").stdout.split() == []
    gone = cronframework(env, "show", "hourly")
    assert gone.returncode == 1 and "unknown job 'hourly'" in gone.stderr

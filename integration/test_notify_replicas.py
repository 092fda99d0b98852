"""Notifications across a leader killed (as by kill -9) after writing a result and before POSTing its notification:
real replica processes on a real ZooKeeper, a real receiver on loopback. Nothing is lost; a duplicate can only
carry the same idempotency key; every POST is signed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from integration.replicas import ReplicaSet, wait_for
from tests.webhook_receiver import Receiver

pytestmark = pytest.mark.zookeeper
SECRET = "replica-hook-s3cret"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    yield hook
    hook.stop()


@pytest.fixture
def cluster(zk_hosts: str, zk_root: str, tmp_path: Path) -> Iterator[ReplicaSet]:
    replicas = ReplicaSet(zk_hosts, zk_root, tmp_path / "cluster")
    yield replicas
    replicas.stop_all()


def test_a_leader_killed_between_a_result_and_its_post_loses_no_notification(
    cluster: ReplicaSet, receiver: Receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CF_HOOK_SECRET", SECRET)  # `apply` checks the secret is there; the replicas inherit it
    hook = {"url": receiver.url, "secret_env": "CF_HOOK_SECRET", "events": ["failed"]}
    task = {"command": ["/bin/sh", "-c", "exit 3"]}
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text(yaml.safe_dump({"job": {"fails": {"schedule": "*/2 * * * * *", "task": task, "notify": [hook]}}}))
    cluster.cli("apply", str(jobs))
    doomed = cluster.start("doomed", env={"CRONFRAMEWORK_CRASH_AT": "after_results"})
    assert wait_for(lambda: not doomed.alive(), 60), cluster.log_tails()
    assert doomed.process.returncode == 137
    store = cluster.store()
    try:
        left = [n.key for n in store.read_outbox()]  # written with the result, never sent: the leader died first
        recorded = [r for r in store.history("fails", limit=50) if r.result is not None]
    finally:
        store.close()
    assert left and receiver.received == [], cluster.log_tails()
    assert {f"{r.name}:failed" for r in recorded} <= set(left)

    cluster.start("heir")
    cluster.wait_leader(other_than="doomed")
    assert wait_for(lambda: set(left) <= set(receiver.keys()), 60), (left, receiver.keys(), cluster.log_tails())
    delivered = receiver.delivered()
    assert all(r.signed_with(SECRET) for r in delivered)
    assert all(r.headers["Idempotency-Key"] == f"{r.json['launch']}:failed" for r in delivered)  # duplicates: same key
    assert all(r.json["exit_code"] == 3 and r.json["result"] == "failed" for r in delivered)
    store = cluster.store()
    try:
        assert wait_for(lambda: not set(left) & {n.key for n in store.read_outbox()}, 30)
    finally:
        store.close()

"""The API of real replica processes against a real ZooKeeper: a follower answers reads from the replicated state
and forwards a trigger to the leader, whose loop launches it; metrics show who leads."""

from __future__ import annotations

import json
import signal
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from integration.replicas import ReplicaSet, wait_for
from integration.zk import ZkCluster, ZkHarnessError

TOKEN = "integration-api-token"
JOBS = """
job:
  hourly:
    schedule: "0 * * * *"
    backend: process
    task:
      command: ["/bin/sh", "-c", "echo hourly $CRONFRAMEWORK_LAUNCH"]
"""
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http(url: str, method: str = "GET", token: str | None = None, data: bytes | None = None) -> tuple[int, Any, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with _OPENER.open(request, timeout=15) as reply:
            raw, status, reply_headers = reply.read(), reply.status, reply.headers
    except urllib.error.HTTPError as exc:
        raw, status, reply_headers = exc.read(), exc.code, exc.headers
    is_json = reply_headers.get("Content-Type", "").startswith("application/json")
    return status, json.loads(raw) if is_json else raw.decode(), reply_headers


@pytest.fixture
def cluster(zk_hosts: str, zk_root: str, tmp_path: Path) -> Iterator[ReplicaSet]:
    replicas = ReplicaSet(zk_hosts, zk_root, tmp_path / "cluster", session_timeout=4.0, api_token=TOKEN)
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text(JOBS)
    replicas.cli("apply", str(jobs))
    yield replicas
    replicas.stop_all()


def _started(cluster: ReplicaSet) -> tuple[str, str, dict[str, str]]:
    for name in ("a", "b"):
        cluster.start(name)
    leader = cluster.wait_leader()
    follower = next(r for r in ("a", "b") if r != leader)
    urls = {name: cluster.api_url(name) for name in ("a", "b")}
    # both replicas publish their address; the follower must see the leader's before forwarding
    published = wait_for(lambda: _published(urls[follower]) == {"a": urls["a"], "b": urls["b"]}, 20)
    assert published, f"addresses not published: {_published(urls[follower])}\n{cluster.log_tails()}"
    return leader, follower, urls


def _published(url: str) -> dict[str, str]:
    status, body, _ = http(f"{url}/v1/replicas")
    return {r["replica"]: r["api"] for r in body["replicas"]} if status == 200 else {}


def test_a_follower_answers_reads_from_the_replicated_state(cluster: ReplicaSet) -> None:
    leader, follower, urls = _started(cluster)
    status, jobs, _ = http(f"{urls[follower]}/v1/jobs")
    assert status == 200 and [j["job"] for j in jobs["jobs"]] == ["hourly"]
    assert wait_for(lambda: http(f"{urls[follower]}/v1/jobs/hourly")[1]["next"] is not None, 20)
    detail = http(f"{urls[follower]}/v1/jobs/hourly?next=2")[1]
    names = [n["name"] for n in detail["next_launches"]]
    assert len(names) == 2 and all(n.startswith("hourly-") and n.endswith("0000z") for n in names)
    status, body, _ = http(f"{urls[follower]}/v1/leader")
    assert status == 200 and body["leader"]["replica"] == leader and body["leader"]["api"] == urls[leader]
    assert http(f"{urls[follower]}/readyz")[0] == 200
    assert wait_for(lambda: http(f"{urls[leader]}/readyz")[0] == 200, 15)


def test_a_trigger_sent_to_the_follower_is_forwarded_and_launched_by_the_leader(cluster: ReplicaSet) -> None:
    leader, follower, urls = _started(cluster)
    assert http(f"{urls[follower]}/v1/jobs/hourly/trigger", "POST")[0] == 401
    status, body, headers = http(f"{urls[follower]}/v1/jobs/hourly/trigger", "POST", TOKEN, b'{"force": false}')
    assert status == 202, body
    assert headers.get("X-Cronframework-Leader") == urls[leader]  # answered by the leader, relayed

    def manual_launch() -> Any:
        records = http(f"{urls[follower]}/v1/jobs/hourly/history?limit=5")[1]
        return [r for r in records if r["manual"] and r["state"] == "finished"]

    launched = wait_for(manual_launch, 30)
    assert launched and launched[0]["outcome"] == "submitted", cluster.log_tails()
    assert launched[0]["leader"] == leader and launched[0]["name"].endswith("z-m")


def test_metrics_show_the_leader_and_the_launch(cluster: ReplicaSet) -> None:
    leader, follower, urls = _started(cluster)
    http(f"{urls[leader]}/v1/jobs/hourly/trigger", "POST", TOKEN)

    def leader_metrics() -> str | None:
        text = http(f"{urls[leader]}/metrics")[1]
        return text if 'cronframework_launches_total{job="hourly",outcome="submitted"} 1.0' in text else None

    text = wait_for(leader_metrics, 30)
    assert text, http(f"{urls[leader]}/metrics")[1][-2000:]
    assert "cronframework_leader 1.0" in text and "cronframework_takeovers_total 1.0" in text
    assert 'cronframework_store_call_seconds_count{op="begin"}' in text
    assert 'cronframework_backend_call_seconds_count{backend="process",method="submit"}' in text
    assert "cronframework_leader 0.0" in http(f"{urls[follower]}/metrics")[1]


def test_replicas_stop_on_sigterm_while_zookeeper_is_gone(tmp_path: Path) -> None:
    """An operator stops the scheduler while its ZooKeeper is down (or gone for good): each replica exits at once,
    cleanly. Closing the API removed this replica's address node with a blocking delete, which waits for a
    connection forever; a stopped fault run left three replicas hanging there."""
    zk = ZkCluster(nodes=1)
    try:
        zk.start()
    except ZkHarnessError as exc:
        zk.destroy()
        pytest.fail(f"cannot start a real ZooKeeper: {exc}", pytrace=False)
    replicas = ReplicaSet(zk.connect_string, "/cf-sigterm", tmp_path / "cluster", session_timeout=4.0, api_token=TOKEN)
    try:
        jobs = tmp_path / "jobs.yaml"
        jobs.write_text(JOBS)
        replicas.cli("apply", str(jobs))
        _, _, urls = _started(replicas)
        zk.destroy()
        gone = wait_for(lambda: all("not connected" in http(f"{u}/readyz")[1]["reason"] for u in urls.values()), 20)
        assert gone, "both replicas saw ZooKeeper go"
        for name in ("a", "b"):
            replicas.replicas[name].signal(signal.SIGTERM)
        exited = wait_for(lambda: not any(replicas.replicas[n].alive() for n in ("a", "b")), 30)
        assert exited, f"a replica still runs 30 s after SIGTERM\n{replicas.log_tails()}"
        codes = {n: replicas.replicas[n].process.returncode for n in ("a", "b")}
        assert codes == {"a": 0, "b": 0}, f"{codes}\n{replicas.log_tails()}"
    finally:
        replicas.stop_all()
        zk.destroy()

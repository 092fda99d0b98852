"""Real replica processes serving their API over mutual TLS (`api.tls` in the config file): each advertises its
https address, a follower forwards a trigger to the leader over TLS with its own certificate, and the leader launches
it. The certificates are made by tests/test_api_tls.py's helpers."""

from __future__ import annotations

import json
import ssl
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from integration.replicas import ReplicaSet, wait_for
from tests.test_api_tls import authority, leaf

TOKEN = "tls-replicas-token"
JOBS = """
job:
  hourly:
    schedule: "0 * * * *"
    backend: process
    task:
      command: ["/bin/true"]
"""


@pytest.fixture
def cluster(zk_hosts: str, zk_root: str, tmp_path: Path) -> Iterator[tuple[ReplicaSet, ssl.SSLContext]]:
    ca = authority(tmp_path, "replicas-ca")
    cert, key = leaf(tmp_path, ca, "replica")
    operator = leaf(tmp_path, ca, "operator")
    replicas = ReplicaSet(zk_hosts, zk_root, tmp_path / "cluster", session_timeout=4.0, api_token=TOKEN)
    config = yaml.safe_load(replicas.config_path.read_text())
    tls = {"cert_file": cert, "key_file": key, "ca_file": str(ca.path), "client_ca_file": str(ca.path)}
    config["api"]["tls"] = tls
    replicas.config_path.write_text(yaml.safe_dump(config))
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text(JOBS)
    replicas.cli("apply", str(jobs))
    context = ssl.create_default_context(cafile=str(ca.path))
    context.load_cert_chain(*operator)
    yield replicas, context
    replicas.stop_all()


def https(url: str, context: ssl.SSLContext, method: str = "GET", data: bytes | None = None) -> tuple[int, Any, Any]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context))
    with opener.open(urllib.request.Request(url, data=data, headers=headers, method=method), timeout=15) as reply:
        return reply.status, json.loads(reply.read()), reply.headers


def test_a_follower_forwards_a_trigger_to_the_leader_over_mutual_tls(
    cluster: tuple[ReplicaSet, ssl.SSLContext],
) -> None:
    replicas, context = cluster
    for name in ("a", "b"):
        replicas.start(name)
    leader = replicas.wait_leader()
    follower = next(r for r in ("a", "b") if r != leader)
    urls = {name: replicas.api_url(name) for name in ("a", "b")}
    assert all(url.startswith("https://") for url in urls.values())

    def published() -> bool:
        members = https(f"{urls[follower]}/v1/replicas", context)[1]["replicas"]
        return {m["replica"]: m["api"] for m in members} == urls

    assert wait_for(published, 20), replicas.log_tails()
    status, body, headers = https(f"{urls[follower]}/v1/jobs/hourly/trigger", context, "POST", b"{}")
    assert status == 202 and headers["X-Cronframework-Leader"] == urls[leader], body

    def launched() -> list[dict[str, Any]]:
        records = https(f"{urls[follower]}/v1/jobs/hourly/history?limit=5", context)[1]
        return [r for r in records if r["manual"] and r["outcome"] == "submitted"]

    assert wait_for(launched, 30), replicas.log_tails()

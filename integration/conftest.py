"""ZooKeeper fixtures: a session-wide real server, a fresh root znode per test, and a 3-node ensemble.

A ZooKeeper that cannot be started fails the test with the server's log tail: never a skip.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kazoo.client import KazooClient

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `integration.zk` and `tests.store_conformance` import from the repo root
    sys.path.insert(0, str(ROOT))

from cronframework.cluster.election import ZkFence  # noqa: E402
from cronframework.store.zookeeper.client import connect_zk  # noqa: E402
from cronframework.store.zookeeper.store import ZooKeeperStore  # noqa: E402
from integration.zk import ZkCluster, ZkHarnessError  # noqa: E402


def _started(nodes: int) -> ZkCluster:
    cluster = ZkCluster(nodes=nodes)
    try:
        return cluster.start()
    except ZkHarnessError as exc:
        cluster.destroy()
        pytest.fail(f"cannot start a real ZooKeeper ({nodes} node(s)): {exc}", pytrace=False)


@pytest.fixture(scope="session")
def zk_server() -> Iterator[ZkCluster]:
    cluster = _started(1)
    yield cluster
    cluster.destroy()


@pytest.fixture
def zk_hosts(zk_server: ZkCluster) -> str:
    return zk_server.connect_string


@pytest.fixture
def zk_root() -> str:
    """A unique root znode: each test sees an empty store without restarting the server."""
    return f"/cf-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def zk_client(zk_hosts: str) -> Iterator[KazooClient]:
    client = connect_zk(zk_hosts, timeout=10, session_timeout=4)
    yield client
    client.stop()
    client.close()


@pytest.fixture
def zk_ensemble() -> Iterator[ZkCluster]:
    """A fresh 3-node ensemble for failover tests (function-scoped: tests kill and pause its nodes)."""
    cluster = _started(3)
    yield cluster
    cluster.destroy()


def leader_fence(client: KazooClient, store: ZooKeeperStore, replica: str = "r1") -> ZkFence:
    """A fence on a real ephemeral-sequential election node, as Election would create it."""
    path = client.create(f"{store.layout.election}/test__n__", b"{}", ephemeral=True, sequence=True)
    return ZkFence(epoch=int(path[-10:]), replica=replica, node_path=path)


@pytest.fixture
def store(zk_client: KazooClient, zk_root: str) -> Iterator[ZooKeeperStore]:
    zk_store = ZooKeeperStore(zk_client, zk_root)
    yield zk_store
    zk_store.close()


@pytest.fixture
def fence(zk_client: KazooClient, store: ZooKeeperStore) -> ZkFence:
    return leader_fence(zk_client, store)


@pytest.fixture
def invalid_fence(zk_client: KazooClient, store: ZooKeeperStore) -> ZkFence:
    deposed = leader_fence(zk_client, store, "deposed")
    zk_client.delete(deposed.node_path)  # what ZooKeeper does when the old leader's session expires
    return deposed

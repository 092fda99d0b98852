"""multiRead against a real ZooKeeper: many znodes in one request, in order, missing ones as None."""

from __future__ import annotations

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from kazoo.security import make_digest_acl

from cronframework.store.zookeeper.client import connect_zk
from cronframework.store.zookeeper.wire.read import flatten, flatten_lists, list_many_async, read_many_async


def test_reads_thousands_in_order_with_missing_as_none(zk_client: KazooClient, zk_root: str) -> None:
    paths = [f"{zk_root}/n{i:05d}" for i in range(2_500)]
    zk_client.ensure_path(zk_root)
    pending = [zk_client.create_async(path, f"value-{i}".encode() * (i % 3)) for i, path in enumerate(paths)]
    for result in pending:
        result.get(timeout=30)
    asked = [*paths[:10], f"{zk_root}/missing", *paths[10:], "/no/such/parent"]
    results = flatten([r.get(timeout=30) for r in read_many_async(zk_client, asked, chunk=700)])
    assert len(results) == len(asked)
    assert results[10] is None and results[-1] is None
    got = [r for r in results if r is not None]
    assert [data for data, _stat in got] == [f"value-{i}".encode() * (i % 3) for i in range(2_500)]
    assert all(stat.version == 0 for _data, stat in got)


def test_an_unreadable_znode_raises_not_none(zk_hosts: str, zk_root: str) -> None:
    owner = connect_zk(zk_hosts, auth=("owner", "pw"))
    stranger = connect_zk(zk_hosts)
    try:
        owner.create(f"{zk_root}/secret", b"x", acl=[make_digest_acl("owner", "pw", all=True)], makepath=True)
        with pytest.raises(NoAuthError):
            flatten([r.get(timeout=10) for r in read_many_async(stranger, [f"{zk_root}/secret"])])
    finally:
        owner.stop()
        stranger.stop()


def test_lists_folders_in_order_with_missing_as_none(zk_client: KazooClient, zk_root: str) -> None:
    folders = [f"{zk_root}/f{i:04d}" for i in range(1_500)]
    for i, folder in enumerate(folders[:3]):
        for child in range(i):
            zk_client.create(f"{folder}/c{child}", makepath=True)
    pending = [zk_client.create_async(folder) for folder in folders[3:]]
    for result in pending:
        result.get(timeout=30)
    zk_client.ensure_path(folders[0])
    asked = [*folders, f"{zk_root}/missing"]
    results = flatten_lists([r.get(timeout=30) for r in list_many_async(zk_client, asked, chunk=700)])
    assert [sorted(r) for r in results[:3] if r is not None] == [[], ["c0"], ["c0", "c1"]]
    assert results[3:-1] == [[]] * (len(folders) - 3) and results[-1] is None

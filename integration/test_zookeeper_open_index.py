"""The open index on a real ZooKeeper: one node per begin transaction, deleted with the last of its launches, and
never an open record that no node lists -- whatever applied, failed or was left behind."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kazoo.client import KazooClient

from cronframework.cluster.election import ZkFence
from cronframework.errors import ConflictError
from cronframework.records import Begin, LaunchRecord, ResultBatch
from cronframework.store.zookeeper.batch import PreparedWrite
from cronframework.store.zookeeper.open_index import decode_names, encode_names
from cronframework.store.zookeeper.store import ZooKeeperStore
from tests.store_conformance import MINUTE, T0, done, ended, make_begin, summary_of

pytestmark = pytest.mark.zookeeper


@pytest.fixture
def writes(store: ZooKeeperStore) -> Iterator[list[PreparedWrite]]:
    """Every batch the store's writer had applied, in order."""
    applied: list[PreparedWrite] = []
    store.writer.on_done = applied.append
    yield applied
    store.writer.on_done = None


def launches(fence: ZkFence, job: str, count: int, first: int = 0) -> list[Begin]:
    return [make_begin(fence, job, T0 + (first + n) * MINUTE) for n in range(count)]


def index_nodes(client: KazooClient, store: ZooKeeperStore) -> dict[str, list[str]]:
    section = store.layout.section("open")
    return {n: decode_names(client.get(f"{section}/{n}")[0]) for n in client.get_children(section)}


def open_names(zk_client: KazooClient, zk_root: str) -> set[str]:
    """What a new leader would find: a fresh store, nothing cached."""
    return {r.name for r in ZooKeeperStore(zk_client, zk_root).open_launches()}


def test_a_begin_costs_two_ops_a_launch_and_one_index_node_per_transaction(
    store: ZooKeeperStore, fence: ZkFence, zk_client: KazooClient, writes: list[PreparedWrite]
) -> None:
    store.begin(fence, launches(fence, "beat", 1))  # makes the job's folders
    writes.clear()
    store.writer.max_ops = 20
    items = launches(fence, "beat", 25, first=1)
    store.begin(fence, items)
    [batch] = writes
    transactions = len(batch.chunks)
    assert transactions == 3  # 10 launches of 2 ops each, then the cut
    assert batch.ops == 2 * 25 + 2 * transactions  # + the fence check and the index node of each
    nodes = index_nodes(zk_client, store)
    assert len(nodes) == 1 + transactions
    assert sorted(n for names in nodes.values() for n in names) == sorted(
        [make_begin(fence, "beat", T0).record.name] + [i.record.name for i in items]
    )
    for node, names in nodes.items():
        assert node == f"{names[0]}+{len(names)}"


def test_finishing_a_node_s_launches_together_deletes_it_in_the_same_transaction(
    store: ZooKeeperStore, fence: ZkFence, zk_client: KazooClient, zk_root: str, writes: list[PreparedWrite]
) -> None:
    records = [i.record for i in launches(fence, "beat", 5)]
    store.begin(fence, launches(fence, "beat", 5))
    writes.clear()
    store.finish(fence, [ended(r) for r in records])
    [batch] = writes
    assert batch.ops == 1 + 5 + 1  # fence, a set per record, the node's delete
    assert index_nodes(zk_client, store) == {}
    assert open_names(zk_client, zk_root) == set()


def test_a_node_stays_until_its_last_launch_finishes_even_under_a_new_leader(
    store: ZooKeeperStore, fence: ZkFence, zk_client: KazooClient, zk_root: str
) -> None:
    records = [i.record for i in launches(fence, "beat", 5)]
    store.begin(fence, launches(fence, "beat", 5))
    store.finish(fence, [ended(r) for r in records[:2]])
    assert len(index_nodes(zk_client, store)) == 1
    successor = ZooKeeperStore(zk_client, zk_root)
    assert {r.name for r in successor.open_launches()} == {r.name for r in records[2:]}
    successor.finish(fence, [ended(r) for r in records[2:]])
    assert index_nodes(zk_client, store) == {}


def test_a_node_whose_launches_finish_in_different_transactions_is_deleted_after_them(
    store: ZooKeeperStore, fence: ZkFence, zk_client: KazooClient, writes: list[PreparedWrite]
) -> None:
    items = launches(fence, "beat", 30)
    store.begin(fence, items)
    assert len(index_nodes(zk_client, store)) == 1
    writes.clear()
    store.writer.max_ops = 10
    store.finish(fence, [ended(i.record) for i in items])
    assert [len(w.chunks) for w in writes] == [3, 1]  # the finishes (10 each), then the node's delete
    assert index_nodes(zk_client, store) == {}


def test_a_partly_applied_begin_leaves_every_open_record_indexed(
    store: ZooKeeperStore, fence: ZkFence, zk_client: KazooClient, zk_root: str
) -> None:
    items = launches(fence, "beat", 30)
    store.begin(fence, [items[15]])  # its record exists: the transaction holding it again must fail whole
    store.writer.max_ops = 20
    with pytest.raises(ConflictError) as raised:
        store.begin(fence, items)
    applied = set(getattr(raised.value, "applied", ())) & {i.record.name for i in items}
    assert applied and items[15].record.name not in applied
    assert len(applied) < 29  # the failed transaction's other launches were not begun either
    assert open_names(zk_client, zk_root) == applied | {items[15].record.name}
    listed = [n for names in index_nodes(zk_client, store).values() for n in names]
    assert sorted(listed) == sorted(applied | {items[15].record.name})


def test_a_stale_node_is_read_and_then_deleted(
    store: ZooKeeperStore, fence: ZkFence, zk_client: KazooClient, zk_root: str
) -> None:
    """A node left behind by a leader that died between finishing its launches and deleting it (it lists a finished
    record and a pruned one), beside a node whose launches are still open."""
    first, second, gone, finished = (i.record for i in launches(fence, "beat", 4))
    store.begin(fence, launches(fence, "beat", 2))
    store.begin(fence, launches(fence, "beat", 2, first=2))
    store.finish(fence, [ended(gone), ended(finished)])
    store.prune(fence, "beat", [gone.name])
    section = store.layout.section("open")
    zk_client.create(f"{section}/{gone.name}+2", encode_names([gone.name, finished.name]))
    successor = ZooKeeperStore(zk_client, zk_root)
    assert [r.name for r in successor.open_launches()] == [first.name, second.name]
    successor.finish(fence, [ended(first)])
    assert zk_client.get_children(section) == [f"{first.name}+2"]  # the stale node went with the first finish
    successor.finish(fence, [ended(second)])
    assert zk_client.get_children(section) == []
    assert open_names(zk_client, zk_root) == set()


def test_a_launch_finished_twice_is_rewritten_and_deletes_nothing_else(
    store: ZooKeeperStore, fence: ZkFence, zk_client: KazooClient
) -> None:
    items = launches(fence, "beat", 2)
    store.begin(fence, items)
    first: LaunchRecord = ended(items[0].record)
    store.finish(fence, [first])
    store.finish(fence, [first])
    assert [n for names in index_nodes(zk_client, store).values() for n in names] == [i.record.name for i in items]
    assert [r.name for r in store.open_launches()] == [items[1].record.name]


def test_a_launch_stays_indexed_while_followed_and_leaves_with_its_result(
    store: ZooKeeperStore, fence: ZkFence, zk_client: KazooClient, zk_root: str, writes: list[PreparedWrite]
) -> None:
    """Sync point two keeps a submitted launch in the index (a new leader follows it on); its result takes it out,
    and the result of the node's last launch deletes the node in the same transaction."""
    items = launches(fence, "beat", 3)
    store.begin(fence, items)
    writes.clear()
    store.finish(fence, [done(i.record) for i in items])
    assert writes[0].ops == 1 + 3  # the fence and a set per record: no index op
    assert len(index_nodes(zk_client, store)) == 1
    successor = ZooKeeperStore(zk_client, zk_root)
    assert [r.name for r in successor.following_launches()] == [i.record.name for i in items]
    results = [ended(i.record) for i in items]
    store.record_results(fence, ResultBatch(results[:2], [summary_of(*results[:2])]))
    assert len(index_nodes(zk_client, store)) == 1
    writes.clear()
    store.record_results(fence, ResultBatch(results[2:], [summary_of(*results)]))
    [batch] = writes
    assert batch.ops == 1 + 1 + 1 + 1  # the fence, the record, the job's summary, the node's delete
    assert index_nodes(zk_client, store) == {}
    assert ZooKeeperStore(zk_client, zk_root).following_launches() == []

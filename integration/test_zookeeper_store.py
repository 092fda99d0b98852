"""ZooKeeperStore against a real ZooKeeper: the StateStore conformance suite, batching, ACLs and errors."""

from __future__ import annotations

import time

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError

from cronframework.catalog.apply import apply_diff, diff_specs
from cronframework.cluster.election import ZkFence
from cronframework.errors import BeginRefused, ConflictError, StateStoreError, StateStoreUnavailable
from cronframework.records import Outcome, RecordState, SpecChange
from cronframework.store.zookeeper.client import connect_zk
from cronframework.store.zookeeper.store import ZooKeeperStore
from integration.zk import free_port
from tests.store_conformance import MINUTE, T0, StoreConformance, make_begin
from tests.test_apply import fleet

pytestmark = pytest.mark.zookeeper


class TestZooKeeperStoreConformance(StoreConformance):
    pass


def test_five_thousand_launches_in_one_begin(store: ZooKeeperStore, fence: ZkFence) -> None:
    items = [make_begin(fence, f"job-{i:05d}", T0) for i in range(5000)]
    started = time.monotonic()
    store.begin(fence, items)
    took = time.monotonic() - started
    print(f"\nbegin of 5000 launches (5000 jobs): {took:.2f}s")
    opened = store.open_launches()
    assert len(opened) == 5000
    assert {r.name for r in opened} == {i.record.name for i in items}
    assert len(store.read_job_states()) == 5000
    started = time.monotonic()
    store.finish(fence, [r.finish(Outcome.SUBMITTED, now=T0) for r in opened])
    print(f"finish of 5000 launches: {time.monotonic() - started:.2f}s")
    assert store.open_launches() == []
    assert store.get_launch(items[4321].record.name).state is RecordState.FINISHED  # type: ignore[union-attr]


def test_unreachable_zookeeper_is_one_line_error() -> None:
    hosts = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(StateStoreUnavailable, match=f"cannot reach ZooKeeper at {hosts} after 2 tries"):
        connect_zk(hosts, timeout=0.5, retries=2)
    assert time.monotonic() - started < 10


def test_acl_keeps_other_tenants_out(zk_hosts: str, zk_root: str) -> None:
    owner = ZooKeeperStore.connect(zk_hosts, zk_root, auth=("cron", "s3cret"))
    stranger = connect_zk(zk_hosts)
    try:
        owner.write_specs([SpecChange("alpha", {"n": 1}, None)])
        assert set(owner.read_specs()) == {"alpha"}
        with pytest.raises(NoAuthError):
            stranger.get(f"{zk_root}/specs/alpha")
        with pytest.raises(NoAuthError):
            stranger.set(f"{zk_root}/specs/alpha", b"{}")
        intruder = ZooKeeperStore(stranger, zk_root)
        with pytest.raises(StateStoreError, match="not authorized"):
            intruder.read_specs()
        with pytest.raises(StateStoreError, match="not authorized"):
            intruder.write_specs([SpecChange("beta", {"n": 1}, None)])
    finally:
        owner.close()
        stranger.stop()
        stranger.close()


@pytest.mark.parametrize("arg_bytes", [0, 3000], ids=["small", "3kB-each"])
def test_a_fleet_larger_than_one_transaction_is_applied(store: ZooKeeperStore, arg_bytes: int) -> None:
    specs = fleet(2000, "x" * arg_bytes)
    apply_diff(store, diff_specs(specs, store.read_specs(), prune=False))  # each batch fits a transaction
    assert len(store.read_specs()) == 2000
    assert diff_specs(specs, store.read_specs(), prune=False).empty


def test_a_begin_sent_behind_one_that_fails_applies_nothing(store: ZooKeeperStore, fence: ZkFence) -> None:
    """Sync point one of a herd is pipelined: slice k+1 is on the wire before slice k is confirmed. When slice k
    fails (a record it creates already exists), slice k+1 must not apply either: it may carry the final watermark
    of a job whose earlier instants were in slice k, and those are begun again only one by one, after it."""
    store.begin(fence, [make_begin(fence, "taken", T0), make_begin(fence, "j", T0 - MINUTE)])  # j's folder exists
    first = store.prepare_begin(fence, [make_begin(fence, "taken", T0), make_begin(fence, "j", T0)])
    second = store.prepare_begin(fence, [make_begin(fence, "j", T0 + MINUTE)])
    wait_first = first.send()
    wait_second = second.send()
    with pytest.raises(ConflictError):
        wait_first()
    with pytest.raises(ConflictError) as refused:
        wait_second()
    assert isinstance(refused.value, BeginRefused) and refused.value.applied == ()
    assert store.read_job_states()["j"].next_scheduled == T0 and len(store.history("j")) == 1
    store.begin(fence, [make_begin(fence, "j", T0)])  # what the refused begins would have written still can be
    store.begin(fence, [make_begin(fence, "j", T0 + MINUTE)])
    assert [r.scheduled for r in store.history("j")] == [T0 + MINUTE, T0, T0 - MINUTE]


def test_a_leader_whose_chain_version_is_stale_begins_anyway(
    zk_client: KazooClient, store: ZooKeeperStore, fence: ZkFence
) -> None:
    """Another leader's begins moved the chain since this store last wrote (leadership lost and won back): the
    first begin is refused untried, read again and sent once more; nothing is written twice."""
    store.begin(fence, [make_begin(fence, "j", T0)])
    other = ZooKeeperStore(zk_client, store.layout.root)
    other.begin(fence, [make_begin(fence, "k", T0)])
    store.begin(fence, [make_begin(fence, "j", T0 + MINUTE)])
    assert [r.scheduled for r in store.history("j")] == [T0 + MINUTE, T0]
    assert store.read_job_states()["j"].next_scheduled == T0 + 2 * MINUTE

"""Election on real ZooKeeper: one leader, takeover on session loss, fencing, SUSPENDED, resign, ensembles."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from kazoo.client import KazooClient

from cronframework.cluster.election import Election, ZkFence, wait_for_leader
from cronframework.cluster.replica import ZkLeadership
from cronframework.errors import LeadershipLost, StateStoreUnavailable
from cronframework.store.zookeeper.client import connect_zk
from cronframework.store.zookeeper.store import ZooKeeperStore
from integration.zk import ZkCluster
from tests.store_conformance import T0, make_begin, wait_until

pytestmark = pytest.mark.zookeeper


@dataclass
class Replica:
    """One scheduler replica's view: its client, its election, and the callbacks it received, in order."""

    client: KazooClient
    election: Election
    events: list[tuple[str, float]] = field(default_factory=list)
    suspended: threading.Event = field(default_factory=threading.Event)

    def saw(self, name: str) -> bool:
        return any(e == name for e, _ in self.events)


def make_replica(hosts: str, root: str, name: str, session_timeout: float = 4.0) -> Replica:
    client = connect_zk(hosts, timeout=10, session_timeout=session_timeout)
    replica = Replica(client, None)  # type: ignore[arg-type]

    def note(event: str) -> Callable[..., None]:
        def record(*_: object) -> None:
            replica.events.append((event, time.monotonic()))
            if event == "suspended":
                replica.suspended.set()

        return record

    replica.election = Election(
        client, root, name, on_elected=note("elected"), on_suspended=note("suspended"), on_lost=note("lost")
    )
    return replica


@pytest.fixture
def replicas(zk_hosts: str, zk_root: str) -> Iterator[list[Replica]]:
    group = [make_replica(zk_hosts, zk_root, f"r{i}") for i in range(3)]
    for r in group:
        r.election.start()
    yield group
    stop_all(group)


def stop_all(group: list[Replica]) -> None:
    for r in group:
        r.election.resign(timeout=2)
        r.client.stop()
        r.client.close()


def leader_of(group: list[Replica], timeout: float = 15.0) -> Replica:
    winner = wait_for_leader([r.election for r in group], timeout)
    return next(r for r in group if r.election is winner)


def expire_session(hosts: str, client: KazooClient) -> None:
    """Expire `client`'s session for real: a second connection takes the session over, then closes it."""
    thief = KazooClient(hosts=hosts, client_id=client.client_id)
    thief.start(timeout=10)
    thief.stop()
    thief.close()


def test_three_replicas_elect_exactly_one(replicas: list[Replica]) -> None:
    leader = leader_of(replicas)
    time.sleep(0.3)  # a second leader would show up here if the election were wrong
    assert [r.election.is_leader for r in replicas].count(True) == 1
    info = leader.election.leader()
    assert info is not None and info.replica == leader.election.replica_id
    assert leader.election.fence is not None and info.epoch == leader.election.fence.epoch
    listed = leader.election.replicas()
    assert sorted(c.replica for c in listed) == ["r0", "r1", "r2"]
    assert listed[0].replica == leader.election.replica_id
    assert [c.epoch for c in listed] == sorted(c.epoch for c in listed)


def test_closed_session_hands_over_with_higher_epoch(replicas: list[Replica]) -> None:
    first = leader_of(replicas)
    assert first.election.fence is not None
    old_epoch = first.election.fence.epoch
    first.election.resign(timeout=0)  # no re-join; closing the session does the rest
    first.client.stop()
    rest = [r for r in replicas if r is not first]
    second = leader_of(rest)
    assert second.election.fence is not None and second.election.fence.epoch > old_epoch


def test_expired_leader_is_fenced_and_rejoins(zk_hosts: str, zk_root: str, replicas: list[Replica]) -> None:
    first = leader_of(replicas)
    old_fence = first.election.fence
    assert old_fence is not None
    store = ZooKeeperStore(replicas[0].client if first is not replicas[0] else replicas[1].client, zk_root)
    store.begin(old_fence, [make_begin(old_fence, "alpha", T0)])
    expire_session(zk_hosts, first.client)
    second = leader_of([r for r in replicas if r is not first])
    assert second.election.fence is not None and second.election.fence.epoch > old_fence.epoch
    item = make_begin(old_fence, "beta", T0)
    with pytest.raises(LeadershipLost):
        store.begin(old_fence, [item])
    assert store.get_launch(item.record.name) is None
    assert wait_until(lambda: first.saw("lost"), 15), first.events
    assert wait_until(lambda: len(second.election.replicas()) == 3, 15), "the expired replica did not re-join"
    assert not first.election.is_leader


def test_resign_hands_over_without_waiting_for_session_expiry(zk_hosts: str, zk_root: str) -> None:
    group = [make_replica(zk_hosts, zk_root, f"r{i}", session_timeout=30) for i in range(2)]
    try:
        for r in group:
            r.election.start()
        first = leader_of(group)
        started = time.monotonic()
        first.election.resign()
        second = leader_of([r for r in group if r is not first], timeout=5)
        assert second is not first
        assert time.monotonic() - started < 3, "hand-over took as long as a session expiry"
    finally:
        stop_all(group)


def test_a_resigned_leader_is_fenced_at_once_although_its_session_lives_on(zk_hosts: str, zk_root: str) -> None:
    """SIGTERM resigns before the replica closes anything else: the deleted node alone must stop the old leader
    (its check before a backend call, and every store write), while its session is still open."""
    group = [make_replica(zk_hosts, zk_root, f"r{i}", session_timeout=30) for i in range(2)]
    try:
        for r in group:
            r.election.start()
        first = leader_of(group)
        fence = first.election.fence
        assert fence is not None
        leadership = ZkLeadership(first.election, fence)
        store = ZooKeeperStore(first.client, zk_root)
        store.begin(fence, [make_begin(fence, "alpha", T0)])
        first.election.resign()
        with pytest.raises(LeadershipLost):
            leadership.check()
        second = leader_of([r for r in group if r is not first], timeout=5)
        assert second.election.fence is not None and second.election.fence.epoch > fence.epoch
        item = make_begin(fence, "beta", T0)
        with pytest.raises(LeadershipLost):
            store.begin(fence, [item])
        assert store.get_launch(item.record.name) is None
        assert first.client.connected
    finally:
        stop_all(group)


@pytest.fixture
def lone_server() -> Iterator[ZkCluster]:
    """A private standalone server, so pausing and restarting it disturbs no other test."""
    from integration.conftest import _started

    cluster = _started(1)
    yield cluster
    cluster.destroy()


def test_paused_server_signals_suspended_promptly(lone_server: ZkCluster, zk_root: str) -> None:
    replica = make_replica(lone_server.connect_string, zk_root, "solo", session_timeout=3)
    try:
        replica.election.start()
        leader_of([replica])
        lone_server.pause(1)
        paused_at = time.monotonic()
        assert replica.suspended.wait(6), "on_suspended was not called after the server stopped answering"
        assert time.monotonic() - paused_at < 4  # about 2/3 of the session timeout: kazoo's read timeout
        assert not replica.election.elected.is_set() and not replica.election.is_leader
        lone_server.resume(1)
        assert wait_until(lambda: replica.election.is_leader, 20), replica.events
        assert replica.events[-1][0] == "elected"
    finally:
        lone_server.resume(1)
        stop_all([replica])


def test_leader_resumes_with_same_epoch_after_short_outage(lone_server: ZkCluster, zk_root: str) -> None:
    replica = make_replica(lone_server.connect_string, zk_root, "solo", session_timeout=10)
    try:
        replica.election.start()
        fence = leader_of([replica]).election.fence
        lone_server.stop(1)
        assert replica.suspended.wait(10), replica.events
        lone_server.start_node(1)
        lone_server.wait_serving()
        assert wait_until(lambda: replica.election.is_leader, 20), replica.events
        assert replica.election.fence == fence
        assert [e for e, _ in replica.events] == ["elected", "suspended", "elected"]
    finally:
        stop_all([replica])


def test_store_and_leader_survive_losing_one_ensemble_node(zk_ensemble: ZkCluster, zk_root: str) -> None:
    replica = make_replica(zk_ensemble.connect_string, zk_root, "solo", session_timeout=10)
    store = ZooKeeperStore(replica.client, zk_root)
    try:
        replica.election.start()
        fence = leader_of([replica]).election.fence
        assert isinstance(fence, ZkFence)
        zk_leader = zk_ensemble.leader_sid()
        assert zk_leader is not None
        zk_ensemble.kill(zk_leader)
        item = make_begin(fence, "alpha", T0)
        assert wait_until(lambda: _try_begin(store, fence, item), 30), "store did not recover after failover"
        assert store.get_launch(item.record.name) == item.record
        assert wait_until(lambda: replica.election.is_leader, 20)
        assert replica.election.fence == fence
    finally:
        stop_all([replica])


def _try_begin(store: ZooKeeperStore, fence: ZkFence, item: object) -> bool:
    try:
        store.begin(fence, [item])  # type: ignore[list-item]
    except StateStoreUnavailable:
        return False
    return True


def test_a_stale_lost_after_a_stand_still_leaves_no_orphan_node_ahead_of_us(zk_hosts: str, zk_root: str) -> None:
    """chaos seed 81 (21:24:28): a leader stood still (SIGSTOP) past its session. The pulse queued suspended +
    connected before kazoo's suspended / LOST / CONNECTED; the election thread ran the pulse's `connected` once the
    new session was up and re-joined in it, then the stale LOST forgot that node and a second join made another.
    The forgotten node lived on with the session, ahead of ours: after the leader before us left, nobody led."""
    offset = [0.0]
    gate, blocked = threading.Event(), threading.Event()
    client = connect_zk(zk_hosts, timeout=10, session_timeout=4.0)

    def on_suspended() -> None:
        if not gate.is_set():
            blocked.set()
            gate.wait(20)  # the election thread is busy while kazoo loses and replaces the session

    election = Election(
        client,
        zk_root,
        "r0",
        on_suspended=on_suspended,
        max_pause=2.0,
        monotonic=lambda: time.monotonic() + offset[0],
    ).start()
    try:
        wait_for_leader([election], 10)
        old_session = client.client_id[0]
        offset[0] += 10.0  # the process "stood still": the pulse queues suspended + connected
        assert blocked.wait(5), "the pulse did not report the stand-still"
        expire_session(zk_hosts, client)  # kazoo: SUSPENDED, LOST, then CONNECTED in a new session, all queued
        assert wait_until(lambda: client.connected and (client.client_id or (old_session,))[0] != old_session, 15)
        gate.set()
        time.sleep(1.0)  # let every queued event run
        folder = f"/{zk_root.strip('/')}/election"
        assert len(client.get_children(folder)) == 1, client.get_children(folder)  # one node per replica
        wait_for_leader([election], 10)  # alone in the election, it leads
    finally:
        gate.set()
        election.resign(timeout=2)
        client.stop()
        client.close()


def test_a_create_applied_although_its_reply_was_lost_is_not_left_ahead_of_us(zk_hosts: str, zk_root: str) -> None:
    """The create applied but raised, and the look-up for it failed too (still disconnected): the retry joins with
    a new guid, and the first node, alive with our session, must not stand ahead of ours."""
    from kazoo.exceptions import ConnectionLoss

    client = connect_zk(zk_hosts, timeout=10, session_timeout=4.0)
    real_create, calls = client.create, []

    def create_then_lose_the_reply(*args: object, **kwargs: object) -> str:
        path = real_create(*args, **kwargs)  # type: ignore[arg-type]
        calls.append(path)
        if len(calls) == 1:
            raise ConnectionLoss()
        return path

    client.create = create_then_lose_the_reply  # type: ignore[method-assign]
    election = Election(client, zk_root, "r0", retry_delay=0.05)
    election._find_own_node = lambda: None  # type: ignore[method-assign]  # the look-up failed as well
    try:
        election.start()
        wait_for_leader([election], 10)
        folder = f"/{zk_root.strip('/')}/election"
        assert len(calls) == 2
        assert wait_until(lambda: len(client.get_children(folder)) == 1, 5), client.get_children(folder)
    finally:
        election.resign(timeout=2)
        client.stop()
        client.close()

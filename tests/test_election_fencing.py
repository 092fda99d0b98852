"""A deposed leader stops calling backends at once, before its election thread has caught up.

Found by the 60-minute chaos run: a leader SIGSTOPped past its session timeout resumed and launched ten instants in
the 0.5 s before it noticed that a successor had been elected.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kazoo.client import KazooState

from cronframework.cluster.election import Election, ZkFence
from cronframework.cluster.replica import ZkLeadership
from cronframework.errors import LeadershipLost
from cronframework.testing import FakeClock
from tests.store_conformance import wait_until

ROOT = "/root"


class FakeZk:
    """Just enough of a KazooClient for one candidate that is alone in the election; `hold` blocks its reads."""

    def __init__(self) -> None:
        self.connected = True
        self.listeners: list[Callable[[str], None]] = []
        self.open = threading.Event()
        self.open.set()
        self.node: str | None = None
        self.sequence = 6

    def add_listener(self, listener: Callable[[str], None]) -> None:
        self.listeners.append(listener)

    def remove_listener(self, listener: Callable[[str], None]) -> None:
        self.listeners.remove(listener)

    def ensure_path(self, path: str, acl: Any = None) -> None:
        pass

    def create(self, path: str, data: bytes, **_: Any) -> str:
        self.sequence += 1
        self.node = f"{path}{self.sequence:010d}"
        return self.node

    def delete(self, path: str) -> None:
        self.node = None if path == self.node else self.node

    def get_children(self, path: str) -> list[str]:
        self.open.wait(10)
        return [self.node.rsplit("/", 1)[1]] if self.node else []

    def exists(self, path: str, watch: Any = None) -> object | None:
        self.open.wait(10)
        return object() if path == self.node else None

    def state(self, state: str) -> None:
        for listener in list(self.listeners):
            listener(state)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def zk() -> FakeZk:
    return FakeZk()


@pytest.fixture
def election(zk: FakeZk, clock: FakeClock) -> Iterator[Election]:
    election = Election(zk, ROOT, "r1", max_pause=2.0, monotonic=clock.monotonic, pulse_every=0.01)
    election.start()
    assert wait_until(lambda: election.fence is not None)
    yield election
    zk.open.set()
    election.resign(timeout=2)


def leadership(election: Election) -> ZkLeadership:
    fence = election.fence
    assert isinstance(fence, ZkFence)
    return ZkLeadership(election, fence)


def test_suspended_fails_the_check_while_the_election_thread_is_busy(election: Election, zk: FakeZk) -> None:
    held = leadership(election)
    held.check()
    zk.open.clear()  # the election thread is stuck in a ZooKeeper call when the connection drops
    zk.state(KazooState.CONNECTED)
    assert wait_until(lambda: election._events.empty())
    zk.state(KazooState.SUSPENDED)
    with pytest.raises(LeadershipLost):
        held.check()


def test_a_process_that_stood_still_past_max_pause_stops_launching(election: Election, clock: FakeClock) -> None:
    held = leadership(election)
    held.check()
    clock.advance(6.0)  # SIGSTOP for 6 s: every thread resumes at once, kazoo has not read its socket yet
    with pytest.raises(LeadershipLost):
        held.check()


def test_after_a_pause_the_node_is_verified_before_leading_again(
    election: Election, zk: FakeZk, clock: FakeClock
) -> None:
    held = leadership(election)
    clock.advance(6.0)
    assert wait_until(lambda: election.holds(held.fence))  # the session outlived the pause: same node, same epoch
    ZkLeadership(election, held.fence).check()


def test_a_pause_after_which_the_node_is_gone_steps_down(election: Election, zk: FakeZk, clock: FakeClock) -> None:
    held = leadership(election)
    zk.node = None  # the session expired during the pause: ZooKeeper deleted the node
    clock.advance(6.0)
    with pytest.raises(LeadershipLost):
        held.check()
    assert wait_until(lambda: election.fence is not None and election.fence.epoch > held.fence.epoch)
    assert election.fence is not None and election.fence.epoch > held.fence.epoch  # a fresh node: a new epoch


def test_a_short_stall_keeps_leadership(election: Election, clock: FakeClock) -> None:
    held = leadership(election)
    clock.advance(1.5)
    held.check()


def lead_alone(replica: str, clock: FakeClock) -> ZkFence:
    """The fence a replica alone in a fresh election folder (the FakeZk's) is elected with."""
    election = Election(FakeZk(), ROOT, replica, max_pause=2.0, monotonic=clock.monotonic, pulse_every=0.01)
    election.start()
    try:
        assert wait_until(lambda: election.fence is not None)
        return leadership(election).fence
    finally:
        election.resign(timeout=2)


def test_a_fence_from_before_a_restore_is_not_the_restored_root_s_at_the_same_epoch(clock: FakeClock) -> None:
    """A restored root counts epochs from the start again (its election folder is new), so a leader of the lost
    ensemble and one of the restored root can hold the same epoch. The fence each write checks is the election
    node's path, which carries a fresh guid per join: the old leader's writes cannot pass in the restored root."""
    old = lead_alone("r2", clock)  # led the lost ensemble at epoch 7
    restored = lead_alone("r1", clock)  # reaches epoch 7 in the restored root
    assert old.epoch == restored.epoch == 7
    assert old.node_path != restored.node_path

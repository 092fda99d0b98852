"""A leader that was frozen (SIGSTOP, a stalled VM) or cut off from ZooKeeper past its session timeout has been
replaced, but its ZooKeeper client has not noticed yet: the election still holds its fence. In the 60-minute fault
run such resumed leaders submitted 28 launches after their successors were elected. Before a backend call, a
leader whose session has not been confirmed lately must confirm it, and stop if it cannot."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from cronframework.cluster.election import ZkFence
from cronframework.cluster.replica import SessionLease, ZkLeadership
from cronframework.errors import LeadershipLost
from cronframework.testing import FakeClock

FENCE = ZkFence(epoch=7, replica="r1", node_path="/cf/election/x__n__0000000007")


@dataclass
class StillLeading:
    """An election whose client has not seen its session end."""

    fence: ZkFence | None = FENCE

    def holds(self, fence: ZkFence) -> bool:
        return self.fence == fence


@dataclass
class Session:
    alive: bool = True
    confirmations: list[float] = field(default_factory=list)
    clock: FakeClock = field(default_factory=FakeClock)

    def confirm(self) -> None:
        self.confirmations.append(self.clock.monotonic())
        if not self.alive:
            raise ConnectionError("session expired")


def _leadership(session: Session, timeout: float = 4.0) -> ZkLeadership:
    lease = SessionLease(session.confirm, timeout, session.clock)
    return ZkLeadership(StillLeading(), FENCE, lease)  # type: ignore[arg-type]


def test_a_leader_resumed_after_its_session_timeout_stops_before_a_backend_call() -> None:
    session = Session()
    leadership = _leadership(session)
    leadership.check()
    session.clock.advance(6.8)  # frozen; ZooKeeper expired the session and elected a successor meanwhile
    session.alive = False
    with pytest.raises(LeadershipLost):
        leadership.check()


def test_a_live_session_is_confirmed_at_most_once_a_third_of_its_timeout() -> None:
    session = Session()
    leadership = _leadership(session, timeout=3.0)
    for _ in range(30):
        leadership.check()
        session.clock.advance(0.1)
    assert len(session.confirmations) == 3, session.confirmations


def test_a_lost_fence_fails_without_asking_zookeeper() -> None:
    session = Session()
    election = StillLeading(fence=None)
    leadership = ZkLeadership(election, FENCE, SessionLease(session.confirm, 4.0, session.clock))  # type: ignore[arg-type]
    with pytest.raises(LeadershipLost):
        leadership.check()
    assert session.confirmations == []


@pytest.mark.parametrize("confirming", [False, True])
def test_a_leader_frozen_between_its_check_and_its_request_sends_nothing(confirming: bool) -> None:
    """The 60-minute runs' launches by a deposed leader: the check passed, then the process was frozen before its
    request left, and thawed after its session expired. The engine arms the guard around the backend call, so an
    adapter's last check before sending (`send_guard.before_send`) sees the stale check, asks again, and stops."""
    from cronframework import send_guard
    from cronframework.engine.submit import register_first, submit_with_retries
    from cronframework.testing import FakeBackend
    from tests.backend_conformance import conformance_launch

    session = Session()
    leadership = _leadership(session)
    backend = FakeBackend()
    launch = conformance_launch("j", ["/bin/true"], backend="fake")

    def frozen_before_sending(name: str, _: object) -> None:
        session.clock.advance(6.8)  # SIGSTOP here; the session expired and a successor was elected meanwhile
        session.alive = False
        send_guard.before_send()  # what every adapter does right before its irreversible request

    backend.on_submit = frozen_before_sending
    backend.register = lambda name, launch: (backend.submit(name, launch), lambda: None)[1]  # type: ignore[attr-defined]
    with pytest.raises(LeadershipLost):
        if confirming:
            register_first(backend, launch, clock=session.clock, leadership=leadership)  # type: ignore[arg-type]
        else:
            submit_with_retries(backend, launch, clock=session.clock, leadership=leadership, deadline=None)
    assert backend.submitted == []

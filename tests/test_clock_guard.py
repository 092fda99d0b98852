"""The clock guard against a wall clock that is stepped (NTP, a resumed VM, `date -s`) while the monotonic clock runs
on: the step is checked against the store at once, and a leader refused by the guard does not spin."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from cronframework.engine.clock_guard import ClockGuard
from cronframework.testing import FakeClock
from tests.leader_harness import T0, Cluster, job

BOUND = timedelta(seconds=5)


class RealTimeStore:
    """ZooKeeper's clock: the host's real time, which a step of this replica's wall clock does not move."""

    def __init__(self, clock: FakeClock) -> None:
        self._clock, self.checks = clock, 0

    def server_time(self) -> datetime:
        self.checks += 1
        return T0 + timedelta(seconds=self._clock.monotonic())


def test_a_step_ahead_after_a_good_check_is_refused_before_the_next_periodic_check() -> None:
    clock = FakeClock(T0)
    store = RealTimeStore(clock)
    guard = ClockGuard(store, clock, BOUND, every=30)  # type: ignore[arg-type]
    assert guard.allows(clock.now())
    clock.advance(1)
    clock.step(90)
    assert not guard.allows(clock.now()), "90 s ahead: every instant of the next 90 s would look due"
    assert store.checks == 2


def test_a_step_back_is_refused_too_and_a_step_within_the_bound_is_allowed_after_one_check() -> None:
    clock = FakeClock(T0)
    store = RealTimeStore(clock)
    guard = ClockGuard(store, clock, BOUND, every=30)  # type: ignore[arg-type]
    assert guard.allows(clock.now())
    clock.step(-90)
    assert not guard.allows(clock.now())
    clock.step(87)  # back to 3 s behind: within the bound
    assert guard.allows(clock.now())
    assert guard.allows(clock.now())
    assert store.checks == 3  # the second call needed no check: the clock did not move apart again


def test_a_clock_running_normally_is_checked_only_every_period() -> None:
    clock = FakeClock(T0)
    store = RealTimeStore(clock)
    guard = ClockGuard(store, clock, BOUND, every=30)  # type: ignore[arg-type]
    for _ in range(29):
        assert guard.allows(clock.now())
        clock.advance(1)
    assert store.checks == 1


def test_a_leader_whose_clock_runs_ahead_checks_once_a_poll_not_in_a_tight_loop() -> None:
    """Every instant looks due to a clock 90 s ahead, so the loop never slept: the chaos suite's skewed leader wrote
    its clock check to ZooKeeper some 300 times a second, logging the refusal each time."""
    cluster = Cluster()
    cluster.apply(job("tick", "* * * * * *"))
    session, _ = cluster.leader(poll_interval=1.0)
    store = RealTimeStore(cluster.clock)
    cluster.store.server_time = store.server_time  # type: ignore[method-assign]
    cluster.clock.step(90)
    stop = threading.Event()
    session._stop = stop
    seen: list[datetime] = []

    def check() -> datetime:
        seen.append(cluster.clock.now())
        if len(seen) >= 20:
            stop.set()
        return store.server_time()

    cluster.store.server_time = check  # type: ignore[method-assign]
    session.run()
    assert cluster.backend.submitted == []
    assert (seen[-1] - seen[1]).total_seconds() >= 18 * 1.0, "checks must be a poll interval apart"

"""The noop backend: the in-memory stand-in benchmarks use to measure the scheduler without a real backend."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from backends.noop import NoopBackend, create
from cronframework.adapters import load_backend
from cronframework.errors import PermanentBackendError, TransientBackendError
from cronframework.launch import Launch, LaunchState, SubmitOutcome
from cronframework.testing import FakeClock
from tests.backend_conformance import conformance_launch

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _launch(job: str = "bench", day: int = 1) -> Launch:
    return conformance_launch(job, ["/bin/true"], scheduled=datetime(2026, 1, day, tzinfo=UTC))


def test_submit_is_idempotent_and_counted() -> None:
    backend = NoopBackend(clock=FakeClock(T0))
    launch = _launch()
    assert backend.submit(launch.name, launch) is SubmitOutcome.SUBMITTED
    assert backend.submit(launch.name, launch) is SubmitOutcome.ALREADY_EXISTED
    assert backend.submits == 2
    assert backend.list("bench") == [launch.name]


def test_lookup_succeeds_at_once_and_keeps_the_first_submit_instant() -> None:
    clock = FakeClock(T0)
    backend = NoopBackend(clock=clock)
    launch = _launch()
    assert backend.lookup(launch.name) is None
    backend.submit(launch.name, launch)
    clock.advance(30)
    backend.submit(launch.name, launch)
    status = backend.lookup(launch.name)
    assert status is not None
    assert (status.state, status.exit_code, status.started_at) == (LaunchState.SUCCEEDED, 0, T0)
    assert backend.submitted_at(launch.name) == T0
    assert backend.submitted_at("bench-20990101t000000z") is None


def test_running_mode_reports_running_until_stopped() -> None:
    backend = NoopBackend(state=LaunchState.RUNNING, clock=FakeClock(T0))
    launch = _launch()
    backend.submit(launch.name, launch)
    status = backend.lookup(launch.name)
    assert status is not None and status.state is LaunchState.RUNNING
    backend.stop(launch.name)
    backend.stop(launch.name)
    status = backend.lookup(launch.name)
    assert status is not None and (status.state, status.reason) == (LaunchState.FAILED, "stopped")


def test_stop_does_not_rewrite_a_finished_launch() -> None:
    backend = NoopBackend(clock=FakeClock(T0))
    launch = _launch()
    backend.submit(launch.name, launch)
    backend.stop(launch.name)
    status = backend.lookup(launch.name)
    assert status is not None and status.state is LaunchState.SUCCEEDED


def test_latency_is_slept_on_the_clock() -> None:
    clock = FakeClock(T0)
    backend = NoopBackend(latency=0.25, clock=clock)
    launch = _launch()
    backend.submit(launch.name, launch)
    backend.lookup(launch.name)
    assert clock.sleeps == [0.25, 0.25]


def test_fail_every_raises_transient_without_recording() -> None:
    backend = NoopBackend(fail_every=2, clock=FakeClock(T0))
    first, second = _launch(day=1), _launch(day=2)
    assert backend.submit(first.name, first) is SubmitOutcome.SUBMITTED
    with pytest.raises(TransientBackendError):
        backend.submit(second.name, second)
    assert backend.lookup(second.name) is None
    assert backend.submit(second.name, second) is SubmitOutcome.SUBMITTED
    assert backend.submits == 3


def test_list_matches_the_job_exactly_and_remove_forgets() -> None:
    backend = NoopBackend(clock=FakeClock(T0))
    mine, other = _launch("a"), _launch("a-b")
    for launch in (mine, other):
        backend.submit(launch.name, launch)
    assert backend.list("a") == [mine.name]
    backend.remove(mine.name)
    backend.remove(mine.name)
    assert backend.lookup(mine.name) is None
    assert backend.list("a") == []
    assert backend.list("a-b") == [other.name]


def test_concurrent_submits_of_one_name_start_one() -> None:
    backend = NoopBackend()
    launch = _launch()
    outcomes: list[SubmitOutcome] = []
    threads = [threading.Thread(target=lambda: outcomes.append(backend.submit(launch.name, launch))) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count(SubmitOutcome.SUBMITTED) == 1
    assert backend.submits == 16


def test_create_reads_config_and_entry_point_loads_it() -> None:
    backend = create({"state": "running", "latency_ms": 5, "fail_every": 7})
    assert (backend.state, backend.latency, backend.fail_every) == (LaunchState.RUNNING, 0.005, 7)
    assert isinstance(load_backend("noop", {}), NoopBackend)
    with pytest.raises(PermanentBackendError, match="unknown state"):
        create({"state": "sleepy"})
    with pytest.raises(PermanentBackendError, match="succeeded or running"):
        create({"state": "failed"})


def test_timed_mode_runs_each_launch_for_its_time_then_ends_as_configured() -> None:
    """The benchmarks' stand-in for real tasks: running for `run_for`, then finished, and watched."""
    clock = FakeClock(T0)
    backend = create({"run_for": "30s", "ends": "failed"})
    backend.clock = clock
    first, second = _launch(day=1), _launch(day=2)
    backend.submit(first.name, first)
    clock.advance(10)
    backend.submit(second.name, second)
    status = backend.lookup(first.name)
    assert status is not None and status.state is LaunchState.RUNNING
    assert backend.ended([first.name, second.name], 0) == set()
    assert backend.ended([first.name, second.name], 60) == {first.name}  # waited on the clock for the first end
    assert clock.now() == T0 + timedelta(seconds=30)
    status = backend.lookup(first.name)
    assert status is not None and (status.state, status.exit_code, status.finished_at) == (
        LaunchState.FAILED,
        1,
        T0 + timedelta(seconds=30),
    )
    assert backend.ended(["bench-20990101t000000z"], 0) == {"bench-20990101t000000z"}  # unknown: the lookup says so

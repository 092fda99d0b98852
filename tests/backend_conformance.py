"""The conformance suite every backend passes (process, noop excepted, docker, nomad).

A backend's test module subclasses `BackendConformance` and provides two fixtures:
- `backend`: a fresh adapter against the real service;
- `make_launch`: `make_launch(job, argv, **task_fields) -> Launch` building a launch whose task runs `argv`
  (a POSIX shell command line is available on every backend: /bin/sh).
`wait_for` polls the backend, never sleeping longer than needed.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from cronframework import send_guard
from cronframework.abc import Backend, Watching
from cronframework.errors import LeadershipLost
from cronframework.launch import BackendStatus, Launch, LaunchState, SubmitOutcome

MakeLaunch = Callable[..., Launch]


def unique_job(prefix: str = "conf") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def wait_for(
    probe: Callable[[], BackendStatus | None],
    done: Callable[[BackendStatus | None], bool],
    timeout: float = 60.0,
) -> BackendStatus | None:
    deadline = time.monotonic() + timeout
    status = probe()
    while not done(status):
        if time.monotonic() > deadline:
            raise AssertionError(f"backend never reached the expected state; last status: {status}")
        time.sleep(0.2)
        status = probe()
    return status


def finished(status: BackendStatus | None) -> bool:
    return status is not None and status.state in (
        LaunchState.SUCCEEDED,
        LaunchState.FAILED,
        LaunchState.LOST,
    )


def scheduled_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


class BackendConformance:
    """Behaviour the scheduler relies on; one parametrized contract for every adapter."""

    timeout: float = 60.0

    def test_lookup_of_unknown_name_is_none(self, backend: Backend) -> None:
        assert backend.lookup(f"{unique_job()}-20260101t000000z") is None

    def test_submit_runs_the_task_to_success(self, backend: Backend, make_launch: MakeLaunch) -> None:
        launch = make_launch(unique_job(), ["/bin/sh", "-c", "echo conformance-ok"])
        assert backend.submit(launch.name, launch) is SubmitOutcome.SUBMITTED
        status = wait_for(lambda: backend.lookup(launch.name), finished, self.timeout)
        assert status is not None and status.state is LaunchState.SUCCEEDED, status
        assert status.exit_code in (0, None)

    def test_a_submit_whose_leader_was_deposed_while_frozen_sends_nothing(
        self, backend: Backend, make_launch: MakeLaunch
    ) -> None:
        """The 60-minute fault runs' launches by a deposed leader: frozen (SIGSTOP) after its leadership check and
        thawed after its session expired, a submit went on and launched. The adapter checks again right before its
        irreversible request when the last check is stale (`send_guard`): nothing is launched."""
        launch = make_launch(unique_job(), ["/bin/sh", "-c", "true"])
        now = [0.0]

        def deposed() -> None:
            raise LeadershipLost("the session expired while the process was frozen")

        with send_guard.armed(deposed, lambda: now[0]):
            now[0] += 30.0  # frozen for 30 s between the check and the request
            with pytest.raises(LeadershipLost):
                backend.submit(launch.name, launch)
        assert backend.lookup(launch.name) is None
        with send_guard.armed(deposed, lambda: now[0]):  # the check was just made: no second one
            assert backend.submit(launch.name, launch) is SubmitOutcome.SUBMITTED

    def test_double_submit_starts_one(self, backend: Backend, make_launch: MakeLaunch) -> None:
        job = unique_job()
        launch = make_launch(job, ["/bin/sh", "-c", "sleep 2"])
        assert backend.submit(launch.name, launch) is SubmitOutcome.SUBMITTED
        assert backend.submit(launch.name, launch) is SubmitOutcome.ALREADY_EXISTED
        assert backend.list(job) == [launch.name]

    def test_failing_task_is_failed_with_exit_code(self, backend: Backend, make_launch: MakeLaunch) -> None:
        launch = make_launch(unique_job(), ["/bin/sh", "-c", "exit 3"])
        backend.submit(launch.name, launch)
        status = wait_for(lambda: backend.lookup(launch.name), finished, self.timeout)
        assert status is not None and status.state is LaunchState.FAILED, status
        assert status.exit_code in (3, None)
        assert status.reason

    def test_running_task_is_seen_running_then_stopped(self, backend: Backend, make_launch: MakeLaunch) -> None:
        launch = make_launch(unique_job(), ["/bin/sh", "-c", "sleep 300"])
        backend.submit(launch.name, launch)
        wait_for(
            lambda: backend.lookup(launch.name),
            lambda s: s is not None and s.state is LaunchState.RUNNING,
            self.timeout,
        )
        backend.stop(launch.name)
        status = wait_for(lambda: backend.lookup(launch.name), lambda s: s is None or finished(s), self.timeout)
        assert status is None or status.state is not LaunchState.SUCCEEDED
        backend.stop(launch.name)  # stopping twice is not an error

    def test_task_sees_its_launch_identity(self, backend: Backend, make_launch: MakeLaunch) -> None:
        launch = make_launch(unique_job(), ["/bin/sh", "-c", 'echo "launch=$CRONFRAMEWORK_LAUNCH"'])
        backend.submit(launch.name, launch)
        wait_for(lambda: backend.lookup(launch.name), finished, self.timeout)
        assert f"launch={launch.name}" in _logs_eventually(backend, launch.name, f"launch={launch.name}")

    def test_it_watches_and_reports_the_launch_that_ended_not_the_one_running(
        self, backend: Backend, make_launch: MakeLaunch
    ) -> None:
        """The result follower's fast path: asked about both, the backend names the one that ended."""
        assert backend.watches
        ended_one = make_launch(unique_job(), ["/bin/sh", "-c", "exit 3"])
        running = make_launch(unique_job(), ["/bin/sh", "-c", "sleep 300"])
        for launch in (ended_one, running):
            backend.submit(launch.name, launch)
        deadline = time.monotonic() + self.timeout
        seen: set[str] = set()
        while ended_one.name not in seen:
            assert time.monotonic() < deadline, "the watch never reported the launch that ended"
            seen |= cast(Watching, backend).ended([ended_one.name, running.name], 1.0)
        assert running.name not in seen
        status = backend.lookup(ended_one.name)
        assert status is not None and status.state is LaunchState.FAILED
        backend.stop(running.name)

    def test_a_retry_runs_under_its_own_name_beside_the_run_it_retries(
        self, backend: Backend, make_launch: MakeLaunch
    ) -> None:
        job = unique_job()
        first = make_launch(job, ["/bin/sh", "-c", "exit 1"])
        retry = replace(first, identity=first.identity.retry(2))
        assert retry.name == f"{first.name}-a2"
        for launch in (first, retry):
            assert backend.submit(launch.name, launch) is SubmitOutcome.SUBMITTED
        assert sorted(backend.list(job)) == [first.name, retry.name]
        for launch in (first, retry):
            wait_for(lambda name=launch.name: backend.lookup(name), finished, self.timeout)

    def test_list_and_remove(self, backend: Backend, make_launch: MakeLaunch) -> None:
        job = unique_job()
        first = make_launch(job, ["/bin/sh", "-c", "true"], scheduled=datetime(2026, 1, 1, tzinfo=UTC))
        second = make_launch(job, ["/bin/sh", "-c", "true"], scheduled=datetime(2026, 1, 2, tzinfo=UTC))
        for launch in (first, second):
            backend.submit(launch.name, launch)
        assert sorted(backend.list(job)) == sorted([first.name, second.name])
        wait_for(lambda: backend.lookup(first.name), finished, self.timeout)
        backend.remove(first.name)
        assert backend.lookup(first.name) is None
        assert backend.list(job) == [second.name]


def _logs_eventually(backend: Backend, name: str, needle: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    text = backend.logs(name)
    while needle not in text and time.monotonic() < deadline:
        time.sleep(0.2)
        text = backend.logs(name)
    return text


def conformance_launch(job: str, argv: list[str], *, scheduled: datetime | None = None, **task: Any) -> Launch:
    """Build a Launch for the suite; backends wrap this to set image or driver."""
    from cronframework.naming import LaunchIdentity
    from cronframework.spec.model import JobSpec

    backend = task.pop("backend", "process")
    extra = task.pop("spec", {})
    spec = JobSpec.model_validate(
        {"name": job, "schedule": "@every 1m", "backend": backend, "task": {"command": argv, **task}, **extra}
    )
    return Launch(identity=LaunchIdentity(job, scheduled or scheduled_now()), spec=spec, cluster="/cf-conformance")


__all__ = ["BackendConformance", "conformance_launch", "finished", "pytest", "unique_job", "wait_for"]

"""The noop backend: remembers submits in memory and runs nothing, so benchmarks measure the scheduler alone.

Config: `state` ("succeeded" by default, or "running"); `latency_ms`, slept in every call to model a slow
backend; `fail_every`, every Nth submit call raises TransientBackendError to exercise the launcher's retries.
`submits` counts submit calls; `submitted_at(name)` is when a launch was first accepted, for lag figures.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from cronframework.abc import Clock
from cronframework.clock import SystemClock
from cronframework.errors import PermanentBackendError, TransientBackendError
from cronframework.launch import BackendStatus, Launch, LaunchState, SubmitOutcome
from cronframework.naming import parse_launch_name

_REPORTABLE = (LaunchState.SUCCEEDED, LaunchState.RUNNING)


class NoopBackend:
    enforces_timeout = False
    """Thread-safe: the scheduler may submit from several threads while a benchmark reads the counters."""

    def __init__(
        self,
        *,
        state: LaunchState = LaunchState.SUCCEEDED,
        latency: float = 0.0,
        fail_every: int | None = None,
        clock: Clock | None = None,
    ) -> None:
        if state not in _REPORTABLE:
            raise PermanentBackendError(f"noop backend state must be succeeded or running, not {state}")
        self.state = state
        self.latency = latency
        self.blocking = latency > 0  # without latency a submit is a dict insert: the launcher calls it inline
        self.fail_every = fail_every
        self.clock: Clock = clock or SystemClock()
        self.submits = 0
        # name -> when first accepted. Names and datetimes only: the dict stays out of the cyclic GC, which would
        # otherwise walk every launch a benchmark ever made (500k in 5 minutes at 100k jobs) on each collection.
        self._submitted: dict[str, datetime] = {}
        self._stopped: set[str] = set()
        self._lock = threading.Lock()

    def submit(self, name: str, launch: Launch) -> SubmitOutcome:
        self._delay()
        with self._lock:
            self.submits += 1
            if self.fail_every and self.submits % self.fail_every == 0:
                raise TransientBackendError(f"noop: simulated failure of submit #{self.submits}")
            if name in self._submitted:
                return SubmitOutcome.ALREADY_EXISTED
            self._submitted[name] = self.clock.now()
        return SubmitOutcome.SUBMITTED

    def lookup(self, name: str) -> BackendStatus | None:
        self._delay()
        with self._lock:
            submitted, stopped = self._submitted.get(name), name in self._stopped
        if submitted is None:
            return None
        if stopped:
            return BackendStatus(LaunchState.FAILED, reason="stopped", started_at=submitted)
        if self.state is LaunchState.RUNNING:
            return BackendStatus(LaunchState.RUNNING, started_at=submitted)
        return BackendStatus(LaunchState.SUCCEEDED, exit_code=0, started_at=submitted, finished_at=submitted)

    def stop(self, name: str) -> None:
        self._delay()
        with self._lock:
            if name in self._submitted and self.state is LaunchState.RUNNING:
                self._stopped.add(name)

    def list(self, job: str) -> list[str]:
        self._delay()
        with self._lock:
            names = list(self._submitted)
        return sorted(name for name in names if _job_of(name) == job)

    def logs(self, name: str) -> str:
        return ""

    def remove(self, name: str) -> None:
        with self._lock:
            self._submitted.pop(name, None)
            self._stopped.discard(name)

    def submitted_at(self, name: str) -> datetime | None:
        with self._lock:
            return self._submitted.get(name)

    def retention_horizon(self) -> None:
        return None

    def close(self) -> None:
        return None

    def _delay(self) -> None:
        if self.latency > 0:
            self.clock.sleep(self.latency)


def _job_of(name: str) -> str | None:
    try:
        return parse_launch_name(name).job
    except ValueError:
        return None


def create(config: Mapping[str, Any]) -> NoopBackend:
    """Entry point `noop`."""
    fail_every = config.get("fail_every")
    try:
        state = LaunchState(str(config.get("state", "succeeded")))
    except ValueError:
        raise PermanentBackendError(f"noop backend: unknown state {config.get('state')!r}") from None
    return NoopBackend(
        state=state,
        latency=float(config.get("latency_ms", 0)) / 1000.0,
        fail_every=int(fail_every) if fail_every else None,
    )

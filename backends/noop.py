"""The noop backend: remembers submits in memory and runs nothing, so benchmarks measure the scheduler alone.

Config: `state` ("succeeded" by default, or "running"); `run_for` (a duration such as "30s"): a launch runs that
long and then ends as `ends` says ("succeeded" by default, or "failed" with exit code 1), so benchmarks follow
thousands of running launches to their results; `latency_ms`, slept in every call to model a slow backend;
`fail_every`, every Nth submit call raises TransientBackendError to exercise the launcher's retries.
`submits` counts submit calls; `submitted_at(name)` is when a launch was first accepted, for lag figures. It
watches (`abc.Watching`): it knows when each launch ends.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping
from datetime import datetime, timedelta
from typing import Any

from cronframework.abc import Clock
from cronframework.clock import SystemClock
from cronframework.errors import PermanentBackendError, TransientBackendError
from cronframework.launch import BackendStatus, Launch, LaunchState, SubmitOutcome
from cronframework.naming import parse_launch_name
from cronframework.schedule.duration import parse_duration

_REPORTABLE = (LaunchState.SUCCEEDED, LaunchState.RUNNING)


class NoopBackend:
    enforces_timeout = False
    watches = True
    confirms = False
    """Thread-safe: the scheduler may submit from several threads while a benchmark reads the counters."""

    def __init__(
        self,
        *,
        state: LaunchState = LaunchState.SUCCEEDED,
        latency: float = 0.0,
        fail_every: int | None = None,
        clock: Clock | None = None,
        run_for: timedelta | None = None,
        ends: LaunchState = LaunchState.SUCCEEDED,
    ) -> None:
        if state not in _REPORTABLE:
            raise PermanentBackendError(f"noop backend state must be succeeded or running, not {state}")
        if ends not in (LaunchState.SUCCEEDED, LaunchState.FAILED):
            raise PermanentBackendError(f"noop backend ends must be succeeded or failed, not {ends}")
        self.state = state
        self.run_for = run_for
        self.ends = ends
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
        ends = self._ends_at(submitted)
        if ends is None or ends > self.clock.now():
            return BackendStatus(LaunchState.RUNNING, started_at=submitted)
        if self.run_for is not None and self.ends is LaunchState.FAILED:
            return BackendStatus(LaunchState.FAILED, 1, "exit code 1", started_at=submitted, finished_at=ends)
        return BackendStatus(LaunchState.SUCCEEDED, exit_code=0, started_at=submitted, finished_at=ends)

    def _ends_at(self, submitted: datetime) -> datetime | None:
        """When a launch submitted then ends; None: it runs until stopped."""
        if self.run_for is not None:
            return submitted + self.run_for
        return None if self.state is LaunchState.RUNNING else submitted

    def ended(self, names: Collection[str], timeout: float) -> set[str]:
        """The launches among `names` past their end (or stopped, or unknown); waits for the first end to come
        within `timeout` when none is."""
        now = self.clock.now()
        with self._lock:
            ends = {
                n: (self._ends_at(at) if n not in self._stopped else now)
                for n in names
                if (at := self._submitted.get(n))
            }
        done = {n for n in names if n not in ends} | {n for n, at in ends.items() if at is not None and at <= now}
        if done or timeout <= 0:
            return done
        coming = [at for at in ends.values() if at is not None]
        wait = min([timeout, *((at - now).total_seconds() for at in coming)])
        self.clock.sleep(wait)
        now = self.clock.now()
        return {n for n, at in ends.items() if at is not None and at <= now}

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
    try:
        ends = LaunchState(str(config.get("ends", "succeeded")))
    except ValueError:
        raise PermanentBackendError(f"noop backend: unknown end state {config.get('ends')!r}") from None
    run_for = config.get("run_for")
    return NoopBackend(
        state=state,
        latency=float(config.get("latency_ms", 0)) / 1000.0,
        fail_every=int(fail_every) if fail_every else None,
        run_for=parse_duration(str(run_for)) if run_for else None,
        ends=ends,
    )

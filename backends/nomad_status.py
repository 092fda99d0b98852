"""Nomad job + allocations -> BackendStatus. Pure, so each state rule has a table test without an agent.

Precedence: an allocation that finished while it was still wanted reports its own outcome, even if the job
was stopped later; otherwise a stopped job is FAILED "stopped" (Nomad reports a killed task as "complete",
which must never read as success; while the kill is under way it is still RUNNING, "stopping"); otherwise
the newest allocation's client status decides.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from cronframework.launch import BackendStatus, LaunchState

# Task events that explain a failure, most telling first.
FAILURE_EVENTS = (
    "Driver Failure",
    "Failed Validation",
    "Setup Failure",
    "Failed Artifact Download",
    "Terminated",
    "Killed",
    "Not Restarting",
)
TERMINAL = ("complete", "failed", "lost")
_RFC3339 = re.compile(r"^(?P<head>[^.Z+]+?)(?:\.(?P<fraction>\d+))?(?P<zone>Z|[+-]\d\d:\d\d)$")


def newest_allocation(allocs: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """Nomad may replace a lost allocation; the newest one is the launch's current run."""
    return max(allocs, key=lambda a: int(a.get("CreateIndex", 0)), default=None)


def job_status(job: Mapping[str, Any], allocs: Sequence[Mapping[str, Any]]) -> BackendStatus:
    alloc = newest_allocation(allocs)
    if alloc is not None and _finished_while_wanted(alloc):
        return alloc_status(alloc)
    if job.get("Stop") and alloc is not None and alloc.get("ClientStatus") in ("pending", "running"):
        # still being killed (up to the task's kill_timeout): keep it active so `replace` waits for it
        return _with_times(BackendStatus(LaunchState.RUNNING, reason="stopping"), alloc)
    if job.get("Stop"):
        exit_code = task_exit_code(alloc) if alloc is not None else None
        return _with_times(BackendStatus(LaunchState.FAILED, exit_code, "stopped"), alloc)
    if alloc is None:
        return BackendStatus(LaunchState.PENDING, reason=_pending_reason(job))
    return alloc_status(alloc)


def _finished_while_wanted(alloc: Mapping[str, Any]) -> bool:
    return alloc.get("ClientStatus") in TERMINAL and alloc.get("DesiredStatus") == "run"


def _pending_reason(job: Mapping[str, Any]) -> str | None:
    return "waiting for placement" if job.get("Status") == "pending" else None


def alloc_status(alloc: Mapping[str, Any]) -> BackendStatus:
    client = alloc.get("ClientStatus")
    if client == "pending":
        return _with_times(BackendStatus(LaunchState.PENDING), alloc)
    if client == "running":
        return _with_times(BackendStatus(LaunchState.RUNNING), alloc)
    if client == "unknown":  # the node disconnected; Nomad may still reconnect it and the task may be running
        return _with_times(BackendStatus(LaunchState.RUNNING, reason="node disconnected"), alloc)
    if client == "lost":
        return _with_times(BackendStatus(LaunchState.LOST, reason=_lost_reason(alloc)), alloc)
    exit_code = task_exit_code(alloc)
    if client == "complete" and not _task_failed(alloc) and exit_code in (0, None):
        return _with_times(BackendStatus(LaunchState.SUCCEEDED, exit_code), alloc)
    return _with_times(BackendStatus(LaunchState.FAILED, exit_code, failure_reason(alloc, exit_code)), alloc)


def _lost_reason(alloc: Mapping[str, Any]) -> str:
    return str(alloc.get("ClientDescription") or "allocation lost (node down)")


def _task_state(alloc: Mapping[str, Any]) -> Mapping[str, Any]:
    states = alloc.get("TaskStates") or {}
    return next(iter(states.values()), {}) if isinstance(states, Mapping) else {}


def _task_failed(alloc: Mapping[str, Any]) -> bool:
    return bool(_task_state(alloc).get("Failed"))


def _events(alloc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list(_task_state(alloc).get("Events") or [])


def task_exit_code(alloc: Mapping[str, Any]) -> int | None:
    """The exit code from the last Terminated event (None when the task never ran to an exit)."""
    for event in reversed(_events(alloc)):
        if event.get("Type") == "Terminated":
            return int(event.get("ExitCode", 0))
    return None


def failure_reason(alloc: Mapping[str, Any], exit_code: int | None) -> str:
    """The failing task's own explanation: its most telling event, else Nomad's allocation description."""
    events = _events(alloc)
    for kind in FAILURE_EVENTS:
        for event in reversed(events):
            if event.get("Type") == kind:
                return _describe(event, exit_code)
    return str(alloc.get("ClientDescription") or f"allocation {alloc.get('ClientStatus', 'failed')}")


def _describe(event: Mapping[str, Any], exit_code: int | None) -> str:
    text = event.get("DisplayMessage") or event.get("DriverError") or event.get("Message") or ""
    message = str(text).strip()
    if event.get("Type") == "Terminated" and exit_code is not None:
        signal = int(event.get("Signal", 0))
        suffix = f" (signal {signal})" if signal else ""
        return f"exited with code {exit_code}{suffix}"
    return f"{event.get('Type')}: {message}" if message else str(event.get("Type"))


def parse_time(value: Any) -> datetime | None:
    """Nomad timestamps are RFC 3339 with nanoseconds; the zero time means 'not yet'."""
    if not isinstance(value, str) or value.startswith("0001-"):
        return None
    match = _RFC3339.match(value)
    if not match:
        return None
    fraction = (match.group("fraction") or "")[:6].ljust(6, "0")
    zone = match.group("zone").replace("Z", "+00:00")
    return datetime.fromisoformat(f"{match.group('head')}.{fraction}{zone}").astimezone(UTC)


def _with_times(status: BackendStatus, alloc: Mapping[str, Any] | None) -> BackendStatus:
    if alloc is None:
        return status
    state = _task_state(alloc)
    return BackendStatus(
        status.state,
        status.exit_code,
        status.reason,
        started_at=parse_time(state.get("StartedAt")),
        finished_at=parse_time(state.get("FinishedAt")),
    )

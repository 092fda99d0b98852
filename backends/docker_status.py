"""Container inspect data -> BackendStatus: the pure half of `lookup`.

Run-time limits: Docker labels are immutable, so `stop` cannot mark a container as "stopped for its timeout".
Instead the limit travels in the `cronframework.timeout` label, and a container that exited by SIGKILL or SIGTERM
(exit code 137 or 143) after running at least that long is reported FAILED with reason "timed out". A container the
scheduler stopped for `concurrency: replace` after outliving its own limit is therefore reported as timed out too,
which is what it was.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from backends.docker_spec import TIMEOUT_LABEL
from cronframework.launch import BackendStatus, LaunchState

_RUNNING = frozenset({"running", "restarting", "paused"})
_KILLED_BY_SIGNAL = {137: "killed", 143: "terminated"}
_TIMESTAMP = re.compile(r"^(?P<base>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?P<frac>\.\d+)?(?P<tz>Z|[+-]\d\d:\d\d)$")


def status_from_inspect(info: Mapping[str, Any]) -> BackendStatus:
    """Map `docker inspect` output to the launch state the scheduler understands."""
    state: Mapping[str, Any] = info.get("State") or {}
    status = str(state.get("Status", ""))
    started, finished = parse_time(state.get("StartedAt")), parse_time(state.get("FinishedAt"))
    if status == "created":
        return _created(state)
    if status in _RUNNING:
        return BackendStatus(LaunchState.RUNNING, started_at=started)
    if status == "exited":
        code = int(state.get("ExitCode", -1))
        if code == 0:
            return BackendStatus(LaunchState.SUCCEEDED, 0, started_at=started, finished_at=finished)
        labels = _labels(info)
        reason = exit_reason(state, labels, started, finished)
        timed_out = _timed_out(state, labels, started, finished)
        return BackendStatus(LaunchState.FAILED, code, reason, started, finished, timed_out=timed_out)
    detail = f": {state['Error']}" if state.get("Error") else ""
    return BackendStatus(LaunchState.LOST, reason=f"container is {status or 'in an unknown state'}{detail}")


def _created(state: Mapping[str, Any]) -> BackendStatus:
    # A failed start (e.g. executable not found) leaves the container "created" with the error recorded.
    if state.get("Error"):
        code = state.get("ExitCode")
        return BackendStatus(LaunchState.FAILED, int(code) if code else None, f"failed to start: {state['Error']}")
    return BackendStatus(LaunchState.PENDING)


def _timed_out(
    state: Mapping[str, Any], labels: Mapping[str, str], started: datetime | None, finished: datetime | None
) -> bool:
    """Killed by a signal (not the OOM killer) after running at least its `cronframework.timeout` label's seconds."""
    limit = _timeout_seconds(labels)
    if state.get("OOMKilled") or int(state.get("ExitCode", -1)) not in _KILLED_BY_SIGNAL:
        return False
    return (
        limit is not None
        and started is not None
        and finished is not None
        and (finished - started).total_seconds() >= limit
    )


def exit_reason(
    state: Mapping[str, Any], labels: Mapping[str, str], started: datetime | None, finished: datetime | None
) -> str:
    code = int(state.get("ExitCode", -1))
    if state.get("OOMKilled"):
        return f"OOM-killed (exit code {code})"
    if _timed_out(state, labels, started, finished):
        return f"timed out after {_timeout_seconds(labels):g}s (exit code {code})"
    if code in _KILLED_BY_SIGNAL:
        return f"{_KILLED_BY_SIGNAL[code]} (exit code {code})"
    return f"exit code {code}"


def _timeout_seconds(labels: Mapping[str, str]) -> float | None:
    try:
        return float(labels[TIMEOUT_LABEL])
    except (KeyError, ValueError):
        return None


def _labels(info: Mapping[str, Any]) -> Mapping[str, str]:
    config: Mapping[str, Any] = info.get("Config") or {}
    return config.get("Labels") or {}


def parse_time(text: Any) -> datetime | None:
    """Docker's RFC 3339 timestamps (nanoseconds, "Z"); its zero time "0001-01-01T00:00:00Z" means never."""
    if not isinstance(text, str) or text.startswith("0001-01-01"):
        return None
    match = _TIMESTAMP.match(text)
    if not match:
        return None
    tz = "+00:00" if match.group("tz") == "Z" else match.group("tz")
    frac = (match.group("frac") or "")[:7]  # datetime keeps microseconds: the dot and six digits
    return datetime.fromisoformat(match.group("base") + frac + tz).astimezone(UTC)

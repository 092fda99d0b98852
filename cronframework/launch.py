"""What a backend is given (a `Launch`) and what it answers (`BackendStatus`, `SubmitOutcome`).

The names are the contract: idempotent submit-by-name and lookup-by-name let a new leader conclude every open launch
without a double launch. The adapters' protocol is `cronframework.abc.Backend`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from cronframework.naming import LaunchIdentity
from cronframework.spec.model import JobSpec


class LaunchState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    LOST = "lost"

    @property
    def active(self) -> bool:
        """Still occupies the job for `concurrency: forbid/replace`."""
        return self in (LaunchState.PENDING, LaunchState.RUNNING)


@dataclass(frozen=True)
class BackendStatus:
    """What the backend says about one launch."""

    state: LaunchState
    exit_code: int | None = None
    reason: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    timed_out: bool = False  # FAILED because it ran past `task.timeout` (the backend or the leader stopped it)


class SubmitOutcome(StrEnum):
    SUBMITTED = "submitted"
    ALREADY_EXISTED = "already_existed"


@dataclass(frozen=True)
class Launch:
    """Everything a backend needs to start one launch of a job."""

    identity: LaunchIdentity
    spec: JobSpec
    attempt: int = 1
    leader_epoch: int = 0
    cluster: str = "/cronframework"
    extra_env: Mapping[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.identity.name

    def env(self) -> dict[str, str]:
        """The task's own env plus the launch identity (documented in docs/jobs.md, "Environment")."""
        scheduled = self.identity.scheduled.astimezone(UTC)
        identity = {
            "CRONFRAMEWORK_JOB": self.identity.job,
            "CRONFRAMEWORK_SCHEDULED": scheduled.isoformat().replace("+00:00", "Z"),
            "CRONFRAMEWORK_SCHEDULED_UNIX": str(int(scheduled.timestamp())),
            "CRONFRAMEWORK_LAUNCH": self.name,
            "CRONFRAMEWORK_ATTEMPT": str(self.attempt),
            "CRONFRAMEWORK_TASK_ATTEMPT": str(self.identity.attempt),
            "CRONFRAMEWORK_LEADER_EPOCH": str(self.leader_epoch),
            "CRONFRAMEWORK_MANUAL": "1" if self.identity.manual else "0",
        }
        return {**self.spec.task.env, **self.extra_env, **identity}

    def labels(self) -> dict[str, str]:
        """Labels/meta every backend attaches, so launches can be found again from the backend alone."""
        return {
            **self.spec.labels,
            "cronframework.job": self.identity.job,
            "cronframework.scheduled": self.identity.scheduled.isoformat(),
            "cronframework.launch": self.name,
            "cronframework.cluster": self.cluster,
            "cronframework.manual": "1" if self.identity.manual else "0",
        }

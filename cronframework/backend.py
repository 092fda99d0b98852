"""The backend protocol: submit / lookup / stop / list / logs, all by deterministic launch name.

Idempotent submit-by-name and lookup-by-name are what let a new leader conclude every open launch without a double
launch. Adapters live in the top-level `backends` package and are found through the `cronframework.backends` entry
point group; the core never imports them. Every adapter must pass `tests/backend_conformance.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from importlib.metadata import entry_points
from typing import Any, Protocol, runtime_checkable

from cronframework.errors import CronframeworkError
from cronframework.naming import LaunchIdentity
from cronframework.spec.model import JobSpec

ENTRY_POINT_GROUP = "cronframework.backends"


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


@runtime_checkable
class Backend(Protocol):
    """A datacenter scheduler seen through names. Raise TransientBackendError / PermanentBackendError only."""

    def submit(self, name: str, launch: Launch) -> SubmitOutcome:
        """Start the launch unless one by this name exists; never starts two."""
        ...

    def lookup(self, name: str) -> BackendStatus | None:
        """The launch's state, or None when the backend has no record of the name."""
        ...

    def stop(self, name: str) -> None:
        """Stop a running launch (for `concurrency: replace` and run-time limits); no error when already gone."""
        ...

    def list(self, job: str) -> list[str]:
        """Names of the launches of `job` that the backend still knows."""
        ...

    def logs(self, name: str) -> str:
        """The launch's output, as far as the backend keeps it."""
        ...

    def remove(self, name: str) -> None:
        """Forget a finished launch (retention cleanup); never called for open launches."""
        ...

    def retention_horizon(self) -> timedelta | None:
        """How long the backend keeps a finished launch (e.g. Nomad's job GC threshold); None = until removed.
        Recovery keeps its window below it, so "not found" never means "already collected"."""
        ...

    def close(self) -> None: ...


class BackendFactory(Protocol):
    def __call__(self, config: Mapping[str, Any]) -> Backend: ...


def available_backends() -> list[str]:
    return sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))


def load_backend(name: str, config: Mapping[str, Any] | None = None) -> Backend:
    """Instantiate the adapter registered under `name`, with its section of the scheduler config."""
    matches = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    if not matches:
        known = ", ".join(available_backends()) or "none installed"
        raise CronframeworkError(f"unknown backend {name!r} (installed: {known})")
    factory: BackendFactory = matches[0].load()
    return factory(dict(config or {}))


class BackendSet:
    """The adapters one scheduler uses, created on first use from the scheduler config's per-backend sections."""

    def __init__(
        self,
        configs: Mapping[str, Mapping[str, Any]] | None = None,
        loader: Any = load_backend,
        preset: Mapping[str, Backend] | None = None,
    ) -> None:
        self._configs = dict(configs or {})
        self._loader = loader
        self._backends: dict[str, Backend] = dict(preset or {})

    def get(self, name: str) -> Backend:
        if name not in self._backends:
            self._backends[name] = self._loader(name, self._configs.get(name, {}))
        return self._backends[name]

    def for_spec(self, spec: JobSpec) -> Backend:
        return self.get(spec.backend)

    def close(self) -> None:
        for backend in self._backends.values():
            backend.close()
        self._backends.clear()

"""The project's error tree.

Library exceptions (kazoo, docker, nomad, yaml, pydantic) are translated into these at the boundary, so callers
retry exactly one family -- the transient ones -- in one place, and the CLI prints one line instead of a traceback.
"""

from __future__ import annotations

from collections.abc import Callable


class CronframeworkError(Exception):
    """Root of every error the product raises on purpose; the CLI prints it as one line."""


class SpecError(CronframeworkError):
    """A job file is invalid. Carries the position so the message can name file:line:col, job and field."""

    def __init__(
        self,
        message: str,
        *,
        file: str = "<input>",
        line: int | None = None,
        col: int | None = None,
        job: str | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.col = col
        self.job = job
        self.field = field

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.col is not None:
                where += f":{self.col}"
        parts = [where]
        if self.job:
            parts.append(f"job {self.job!r}")
        if self.field:
            parts.append(f"field {self.field!r}")
        return ": ".join(parts) + f": {self.message}"


class SpecErrors(CronframeworkError):
    """Every error found in one validation pass; validation reports them all, not the first."""

    def __init__(self, errors: list[SpecError]) -> None:
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = errors


class ScheduleError(CronframeworkError):
    """A schedule expression or time zone cannot be understood."""


class StateStoreError(CronframeworkError):
    """The state store (ZooKeeper or the embedded SQLite file) failed.

    `applied` names the groups of a batched write that were applied before it failed (a pipelined batch is
    atomic per transaction, not as a whole); empty when nothing was, or when the store cannot tell."""

    applied: tuple[str, ...] = ()


class StateStoreUnavailable(StateStoreError):
    """Transient: the store cannot be reached right now (connection loss, quorum lost)."""


class LeadershipLost(StateStoreError):
    """A fenced write was refused because this replica no longer leads. Never retried: the caller must stop."""


class ConflictError(StateStoreError):
    """A versioned write lost a race (someone else changed the node); re-read and decide again."""


class BackendError(CronframeworkError):
    """A backend call failed."""


class TransientBackendError(BackendError):
    """Worth retrying with backoff: the daemon or agent is unreachable, slow, or answered 5xx."""


class BackendUnreachable(TransientBackendError):
    """Transient, and certain: the request never reached the backend (connection refused, no socket), so a submit
    did not land. Other transient errors (timeouts, resets, 5xx) leave that open."""


class BackendTimeout(TransientBackendError):
    """Transient, and in doubt for longer: the request reached the backend and no answer came in time, so it may
    still be inside a slow daemon and take effect after the caller gave up -- even after a lookup found nothing."""


def never_connected(exc: BaseException) -> bool:
    """Whether `exc` (or what it wraps: requests/urllib3 keep the socket error as a cause, reason or argument)
    says the connection was never made."""
    return _wraps(exc, lambda e: isinstance(e, ConnectionRefusedError | FileNotFoundError), "NewConnectionError")


def timed_out(exc: BaseException) -> bool:
    """Whether `exc` (or what it wraps) is a read timeout: the request was sent, the answer never came."""
    return _wraps(
        exc, lambda e: isinstance(e, TimeoutError), "ReadTimeout", "ReadTimeoutError", "TimeoutNomadException"
    )


def transient_kind(error: BaseException) -> type[TransientBackendError]:
    """Which transient error a failed call is: never sent (refused), sent without an answer (timeout), or neither."""
    if never_connected(error):
        return BackendUnreachable
    return BackendTimeout if timed_out(error) else TransientBackendError


def _wraps(exc: BaseException, match: Callable[[BaseException], bool], *names: str) -> bool:
    seen: set[int] = set()
    todo: list[object] = [exc]
    while todo:
        item = todo.pop()
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        if match(item) or type(item).__name__ in names:
            return True
        todo += [item.__cause__, item.__context__, getattr(item, "reason", None), *item.args]
    return False


class PermanentBackendError(BackendError):
    """Retrying cannot help: bad image, rejected spec, forbidden. Recorded as 'failed to launch' with the reason."""

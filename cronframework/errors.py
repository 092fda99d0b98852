"""The project's error tree.

Library exceptions (kazoo, docker, nomad, yaml, pydantic) are translated into these at the boundary, so callers
retry exactly one family -- the transient ones -- in one place, and the CLI prints one line instead of a traceback.
"""

from __future__ import annotations

import ssl
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


class BeginRefused(ConflictError):
    """Sync point one refused whole and untried: a begin sent before it failed, and nothing may apply after that
    one until its launches are begun again (a job's later instants would otherwise pass its earlier ones). Send it
    again once the earlier one is settled."""


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


# OpenSSL's reasons for an alert by which the server refused this client's certificate (or the lack of one)
_REFUSED_CLIENT = (
    "ALERT_UNKNOWN_CA",
    "ALERT_BAD_CERTIFICATE",
    "ALERT_CERTIFICATE_REQUIRED",
    "ALERT_CERTIFICATE_UNKNOWN",
)


def tls_refusal(exc: BaseException) -> str | None:
    """Why a TLS handshake failed for good, when `exc` (or what it wraps) says one side refused the other's
    certificate: a configuration to fix, not an outage to retry, and nothing was sent past the handshake. None for
    any other failure (a connection reset mid-handshake is an outage)."""
    found = _find(exc, lambda e: isinstance(e, ssl.SSLCertVerificationError))
    if isinstance(found, ssl.SSLCertVerificationError):
        return f"certificate not trusted: {found.verify_message}"
    found = _find(exc, lambda e: isinstance(e, ssl.SSLError) and any(a in _reason(e) for a in _REFUSED_CLIENT))
    if isinstance(found, ssl.SSLError):
        return f"the server refused this client's certificate ({_reason(found)})"
    return None


def _reason(exc: ssl.SSLError) -> str:
    return str(getattr(exc, "reason", None) or "")  # OpenSSL's reason; absent from one raised by Python code


def _wraps(exc: BaseException, match: Callable[[BaseException], bool], *names: str) -> bool:
    return _find(exc, lambda e: match(e) or type(e).__name__ in names) is not None


def _find(exc: BaseException, match: Callable[[BaseException], bool]) -> BaseException | None:
    """The first exception `match` accepts in `exc`, its causes and contexts, and what libraries keep as a reason
    or an argument (requests and urllib3 wrap the socket's error that way)."""
    seen: set[int] = set()
    todo: list[object] = [exc]
    while todo:
        item = todo.pop()
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        if match(item):
            return item
        todo += [item.__cause__, item.__context__, getattr(item, "reason", None), *item.args]
    return None


class PermanentBackendError(BackendError):
    """Retrying cannot help: bad image, rejected spec, forbidden. Recorded as 'failed to launch' with the reason."""

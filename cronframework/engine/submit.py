"""One backend submission with bounded retries (tenacity): transient errors only, never past a deadline.

The deadline is the job's next scheduled instant: retrying into the next launch would turn one late launch into two
overlapping ones. Leadership is re-checked before every attempt, so a replica that saw SUSPENDED stops at once.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential
from tenacity.stop import stop_base

from cronframework.abc import Backend, Clock, Confirming, Leadership
from cronframework.errors import (
    BackendError,
    BackendTimeout,
    BackendUnreachable,
    PermanentBackendError,
    TransientBackendError,
)
from cronframework.launch import BackendStatus, Launch, SubmitOutcome
from cronframework.records import Outcome
from cronframework.send_guard import armed
from cronframework.spec.model import Retries


@dataclass(frozen=True)
class SubmitResult:
    outcome: Outcome
    reason: str | None = None
    attempts: int = 1
    ambiguous: bool = False  # an attempt failed transiently: the request may have landed all the same
    in_doubt: bool = False  # an attempt timed out: the request may still land later, after any lookup


class stop_at_deadline(stop_base):
    """Stop retrying once the injected clock reaches the deadline (the job's next scheduled instant)."""

    def __init__(self, clock: Clock, deadline: datetime | None) -> None:
        self.clock = clock
        self.deadline = deadline

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self.deadline is not None and self.clock.now() >= self.deadline


def _retrying(clock: Clock, retries: Retries, deadline: datetime | None) -> Retrying:
    backoff = retries.backoff.total_seconds()
    cap = retries.max_backoff.total_seconds()

    def capped_wait(state: RetryCallState) -> float:
        wait = wait_exponential(multiplier=backoff, max=cap)(state)
        if deadline is not None:
            wait = min(wait, max(0.0, (deadline - clock.now()).total_seconds()))
        return float(wait)

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)

    return Retrying(
        stop=stop_after_attempt(retries.attempts) | stop_at_deadline(clock, deadline),
        wait=capped_wait,
        retry=retry_if_exception_type(TransientBackendError),
        sleep=sleep,
        reraise=True,
    )


def _first_then_retrying(
    attempt: Callable[[], SubmitOutcome], clock: Clock, retries: Retries, deadline: datetime | None
) -> SubmitOutcome:
    """The first attempt runs bare (a herd of 10k pays no retry machinery); tenacity takes over on a transient
    error with the same attempt budget and the same exponential backoff (b, 2b, 4b, ... capped)."""
    try:
        return attempt()
    except TransientBackendError:
        if retries.attempts <= 1 or (deadline is not None and clock.now() >= deadline):
            raise
    first_wait = min(retries.backoff, retries.max_backoff)
    if deadline is not None:
        first_wait = min(first_wait, max(deadline - clock.now(), timedelta(0)))
    clock.sleep(first_wait.total_seconds())
    rest = Retries(attempts=retries.attempts - 1, backoff=retries.backoff * 2, max_backoff=retries.max_backoff)
    result: SubmitOutcome = _retrying(clock, rest, deadline)(attempt)
    return result


def register_first(
    backend: Confirming, launch: Launch, *, clock: Clock, leadership: Leadership
) -> Callable[[], SubmitOutcome]:
    """The first attempt's write alone; the returned call is the rest of that attempt (the check, or the write's
    error raised again), for `submit_with_retries(first=...)`. LeadershipLost propagates."""
    guard = _checked(leadership, clock)
    try:
        with guard:
            return backend.register(launch.name, launch)
    except BackendError as exc:
        return partial(_raise, exc)


def _checked(leadership: Leadership, clock: Clock) -> AbstractContextManager[None]:
    """Leadership checked now, and again by the adapter right before its request if that check has gone stale
    (`send_guard`)."""
    leadership.check()
    return armed(leadership.check, clock.monotonic)


def submit_with_retries(
    backend: Backend,
    launch: Launch,
    *,
    clock: Clock,
    leadership: Leadership,
    deadline: datetime | None,
    first: Callable[[], SubmitOutcome] | None = None,
    may_exist: bool = False,
) -> SubmitResult:
    """Submit once, idempotently; LeadershipLost propagates (the record stays open for the next leader). `first`:
    the first attempt, begun by `register_first`; its outcome or error counts as that attempt's, as if it had been
    one `submit`, and any retry is a whole `submit`. `may_exist`: someone else may have launched it before (a
    restore's replay), so even attempts that certainly never reached the backend leave open whether it has it."""
    attempts = 0
    maybe_landed = may_exist  # an attempt failed in a way that leaves open whether the backend has the launch
    maybe_pending = False  # an attempt timed out: it may still be inside the backend

    def attempt() -> SubmitOutcome:
        nonlocal attempts, maybe_landed, maybe_pending
        attempts += 1
        begun = first if attempts == 1 else None  # leadership was checked before its write; the rest only reads
        guard = _checked(leadership, clock) if begun is None else nullcontext()
        try:
            with guard:
                return begun() if begun is not None else backend.submit(launch.name, launch)
        except BackendUnreachable:
            raise
        except TransientBackendError as exc:
            maybe_landed = True
            maybe_pending = maybe_pending or isinstance(exc, BackendTimeout)
            raise

    try:
        outcome = _first_then_retrying(attempt, clock, launch.spec.retries, deadline)
    except PermanentBackendError as exc:
        return SubmitResult(Outcome.FAILED, f"failed to launch: {exc}", attempts)
    except TransientBackendError as exc:
        reason = f"failed to launch after {attempts} attempt(s): {exc}"
        # "refused" on the last attempt proves nothing about an earlier attempt that timed out
        return SubmitResult(Outcome.FAILED, reason, attempts, ambiguous=maybe_landed, in_doubt=maybe_pending)
    mapped = Outcome.SUBMITTED if outcome is SubmitOutcome.SUBMITTED else Outcome.ALREADY_EXISTED
    return SubmitResult(mapped, None, attempts)


def _raise(exc: BaseException) -> SubmitOutcome:
    raise exc


def lookup_with_retries(
    backend: Backend,
    name: str,
    *,
    clock: Clock,
    leadership: Leadership,
    attempts: int = 3,
    backoff: float = 0.5,
) -> BackendStatus | None:
    """Lookup for recovery; TransientBackendError after `attempts` means "cannot answer" (the caller fails closed)."""
    retries = Retries(attempts=attempts, backoff=timedelta(seconds=backoff), max_backoff=timedelta(seconds=5))

    def attempt() -> BackendStatus | None:
        leadership.check()
        return backend.lookup(name)

    result: BackendStatus | None = _retrying(clock, retries, None)(attempt)
    return result

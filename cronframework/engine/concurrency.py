"""`concurrency: forbid | replace`: what to do when the job's previous launch may still run.

Fail closed: when the backend cannot say whether the previous launch still runs, the new one is skipped with the
reason rather than risk two running at once. A previous launch decided in the same tick is not asked about at all:
it is not in the backend yet (`begun_in_the_same_tick`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cronframework.abc import Backend, Clock, Leadership
from cronframework.engine.submit import lookup_with_retries
from cronframework.errors import BackendError
from cronframework.launch import BackendStatus
from cronframework.records import LaunchRecord
from cronframework.spec.model import Concurrency, JobSpec


@dataclass(frozen=True)
class Verdict:
    launch: bool
    reason: str | None = None
    replaces: tuple[str, ...] = ()  # `replace`: the launches to stop once the new record is written


ALLOWED = Verdict(True)


def check_previous(
    spec: JobSpec,
    previous: str,
    record: LaunchRecord | None,
    backend: Backend,
    *,
    clock: Clock,
    leadership: Leadership,
) -> Verdict:
    """Decide for one new launch of a `forbid`/`replace` job, given its previous launch and that launch's record.
    A record still open (its submit's outcome unknown, left for recovery) may be running or about to: skip."""
    policy = f"concurrency: {spec.concurrency.value}"
    if record is not None and record.open:
        return Verdict(False, f"skipped: previous launch {previous} has no recorded outcome yet; {policy}")
    try:
        status = lookup_with_retries(backend, previous, clock=clock, leadership=leadership, attempts=2)
    except BackendError as exc:
        return Verdict(False, f"skipped: cannot tell whether {previous} still runs ({exc}); {policy}")
    return after_previous(spec, previous, status)


def after_previous(spec: JobSpec, previous: str, status: BackendStatus | None) -> Verdict:
    """Decide once the backend has said how the previous launch is (None: it has no such launch)."""
    if status is None or not status.state.active:
        return ALLOWED
    if spec.concurrency is Concurrency.FORBID:
        policy = f"concurrency: {spec.concurrency.value}"
        return Verdict(False, f"skipped: previous launch {previous} is still {status.state.value} ({policy})")
    return Verdict(True, replaces=(previous,))  # stopped by the launcher once this launch's record is written


def together(verdicts: Iterable[Verdict]) -> Verdict:
    """One verdict from those on each launch of the job that may still run (its previous launch, and any older one
    still followed or open, e.g. one recovery started after a restore): the first refusal refuses; `replace` stops
    every one that runs."""
    replaces: list[str] = []
    for verdict in verdicts:
        if not verdict.launch:
            return verdict
        replaces.extend(verdict.replaces)
    return Verdict(True, replaces=tuple(replaces)) if replaces else ALLOWED


def begun_in_the_same_tick(spec: JobSpec, previous: str) -> Verdict:
    """Decide for a launch whose previous one was decided earlier in the same tick (a due instant, then a trigger
    read in that tick). That one is not submitted yet, so a lookup would say "not found" and both would run.
    `replace` refuses the newcomer too: it cannot stop what has not started, and either way one run starts now."""
    if spec.concurrency is Concurrency.ALLOW:
        return ALLOWED
    return Verdict(
        False,
        f"skipped: previous launch {previous} is still starting, begun in the same tick "
        f"(concurrency: {spec.concurrency.value})",
    )

"""On promotion, before anything new is scheduled: conclude every open launch (begun, never finished).

For each open record the backend is asked by name:
- found                         -> it was launched; record it finished with what the lookup saw;
- not found, inside the window  -> it was never launched (the window is below the backend's GC horizon, so "not
                                   found" cannot mean "collected"); submit it now, idempotent by name;
- no answer, inside the window   -> left open and asked again on a later tick: a backend that is down for a while
                                   (dockerd restarting) may hold a launch created just before it went down, and only
                                   its answer can tell "start it" from "submit it" (concluding now could leave a
                                   container the record says was never launched);
- resubmitted, and the resubmit itself failed in a way that may have landed (timed out, refused after an
                                   accepted create), or the launch was found made and never started and the start
                                   was refused for want of the backend -> left open likewise: the next pass's
                                   lookup tells;
- no answer past the window, or not found past it -> the job's `on_uncertain` decides: skip (fail closed, the
                                   default) or relaunch.
Every decision goes into the takeover report that `status` shows.
"""

from __future__ import annotations

import logging
from collections.abc import Set
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from cronframework import metrics
from cronframework.abc import Backend, Clock, Leadership, LeaderStore
from cronframework.adapters import BackendSet
from cronframework.engine.budget import within_budget
from cronframework.engine.launcher import Launcher
from cronframework.engine.notify import Notifier
from cronframework.engine.submit import lookup_with_retries, submit_with_retries
from cronframework.errors import BackendError, TransientBackendError
from cronframework.launch import BackendStatus, LaunchState
from cronframework.records import LaunchRecord, Notice, Outcome
from cronframework.spec.model import JobSpec, OnUncertain

log = logging.getLogger("cronframework.recovery")
LEFT_OPEN = "left open: asked again when the backend answers"
NOT_REACHED = "not asked yet: this pass's time ran out"
RECOVERY_WORKERS = 16  # open launches concluded at once at takeover (lookups, resubmits, their one-record writes)


@dataclass(frozen=True)
class Conclusion:
    """One line of the takeover report."""

    launch: str
    lookup: str
    decision: str


def effective_window(spec: JobSpec, backend: Backend) -> timedelta:
    """The job's recovery window, clamped below the backend's retention horizon when the backend has one."""
    horizon = backend.retention_horizon()
    if horizon is not None and spec.recovery_window >= horizon:
        return horizon * 0.9
    return spec.recovery_window


class Recovery:
    def __init__(
        self,
        store: LeaderStore,
        backends: BackendSet,
        launcher: Launcher,
        leadership: Leadership,
        clock: Clock,
        notifier: Notifier | None = None,
    ) -> None:
        self._store = store
        self._backends = backends
        self._launcher = launcher
        self._notifier = notifier or Notifier()
        self._leadership = leadership
        self._clock = clock
        self.unanswered = 0  # launches the last pass left open because their backend could not answer
        self._finished: list[LaunchRecord] = []  # concluded since the last `take_finished` (to follow)
        self._open: dict[str, set[str]] = {}  # the launches the last pass left open, by job

    def conclude_open(
        self, specs: dict[str, JobSpec], *, lookup_attempts: int = 3, budget: float | None = None
    ) -> list[Conclusion]:
        """Conclude every open launch the backends can answer for; returns the report (launches left open
        included). `budget` (seconds from after the read of the open launches) bounds the pass: oldest first, a
        launch not begun on by then is left open for a later pass, so a takeover facing hundreds of open launches
        and a slow backend goes on to its ticks (and its snapshots) instead of spending its tenure here. The first
        launch of each worker is always begun on, so every pass concludes some (`budget.within_budget`).
        LeadershipLost propagates (nothing half-decided)."""
        silent: set[int] = set()  # backends that did not answer in this pass: not asked again until the next one
        records = sorted(self._store.open_launches(), key=lambda r: r.begun_at or r.scheduled)
        report = within_budget(  # the budget counts from after the read, which may be slow
            records,
            lambda record: self._conclude(record, specs.get(record.job), silent, lookup_attempts),
            lambda record: Conclusion(record.name, NOT_REACHED, LEFT_OPEN),
            clock=self._clock,
            budget=budget,
            workers=RECOVERY_WORKERS,
            name="recovery",
        )
        self.unanswered = sum(c.decision == LEFT_OPEN for c in report)
        self._open = {}
        for record, conclusion in zip(records, report, strict=True):
            if conclusion.decision == LEFT_OPEN:
                self._open.setdefault(record.job, set()).add(record.name)
        later = sum(c.lookup == NOT_REACHED for c in report)
        extra = {"count": len(report) - self.unanswered, "open": self.unanswered, "not_reached": later}
        log.info("open launches concluded", extra=extra)
        return report

    def left_open(self, job: str) -> Set[str]:
        """The job's launches the last pass left open: they may yet start (a later pass may resubmit them)."""
        return self._open.get(job, frozenset())

    def _conclude(self, record: LaunchRecord, spec: JobSpec | None, silent: set[int], attempts: int) -> Conclusion:
        if spec is None:
            return self._finish(record, None, Outcome.SKIPPED, "uncertain: the job no longer exists", "not asked")
        backend = self._backends.for_spec(spec)
        age = self._clock.now() - (record.begun_at or record.scheduled)
        waiting = self._inside_window(record, spec)
        if id(backend) in silent and waiting:
            return self._left_open(record, "not asked: the backend did not answer for another launch", attempts)
        try:
            status = lookup_with_retries(
                backend, record.name, clock=self._clock, leadership=self._leadership, attempts=attempts
            )
        except TransientBackendError as exc:
            if waiting:
                silent.add(id(backend))
                return self._left_open(record, f"no answer: {exc}", attempts)
            return self._uncertain(record, spec, f"lookup failed: {exc}", "no answer")
        except BackendError as exc:  # permanent: asking again will not help
            return self._uncertain(record, spec, f"lookup failed: {exc}", "no answer")
        if status is not None:
            if status.state is LaunchState.PENDING:
                # Found but maybe never started (Docker: created, not started, when the old leader died between
                # the two calls). Submit is idempotent by name: it starts such a launch and changes nothing else.
                return self._resubmit(record, spec, "found: pending", exists=True)
            return self._found(record, status)
        if waiting:
            return self._resubmit(record, spec, "not found")
        return self._uncertain(record, spec, f"not found and begun {age} ago, past the recovery window", "not found")

    def _inside_window(self, record: LaunchRecord, spec: JobSpec) -> bool:
        age = self._clock.now() - (record.begun_at or record.scheduled)
        return age <= effective_window(spec, self._backends.for_spec(spec))

    def _left_open(self, record: LaunchRecord, seen: str, attempts: int) -> Conclusion:
        fields = {"job": record.job, "launch": record.name, "epoch": self._leadership.fence.epoch, "lookup": seen}
        level = logging.WARNING if attempts > 1 else logging.DEBUG  # said once at promotion, not every second
        log.log(level, "open launch left open until its backend answers", extra=fields)
        return Conclusion(record.name, seen, LEFT_OPEN)

    def _found(self, record: LaunchRecord, status: BackendStatus) -> Conclusion:
        seen = status.state.value + (f" ({status.reason})" if status.reason else "")
        finished = record.finish(
            Outcome.ALREADY_EXISTED,
            now=self._clock.now(),
            reason=f"concluded by recovery: backend reports {seen}",
            backend_state=status.state.value,
            exit_code=status.exit_code,
        )
        self._store.finish(self._leadership.fence, [finished])
        return self._concluded(finished, Conclusion(record.name, f"found: {seen}", "recorded as launched"))

    def _uncertain(self, record: LaunchRecord, spec: JobSpec, why: str, seen: str) -> Conclusion:
        if spec.on_uncertain is OnUncertain.RELAUNCH:
            return self._resubmit(record, spec, seen, because=why)
        return self._finish(record, spec, Outcome.SKIPPED, f"uncertain ({why}); on_uncertain: skip", seen)

    def _resubmit(
        self, record: LaunchRecord, spec: JobSpec, seen: str, because: str | None = None, *, exists: bool = False
    ) -> Conclusion:
        """`exists`: the lookup found the launch made but not started, so a start refused for want of the backend
        leaves it open like an ambiguous one: the launch is there to be started once the backend answers."""
        launch = self._launcher.launch_for(spec, record.identity, attempt=record.attempt + 1)
        backend = self._backends.for_spec(spec)
        result = submit_with_retries(
            backend, launch, clock=self._clock, leadership=self._leadership, deadline=None, may_exist=exists
        )
        if result.outcome is Outcome.FAILED and result.ambiguous and self._inside_window(record, spec):
            # the resubmit itself may have landed (or still be inside a slow daemon): only a later lookup can tell
            # "launched" from "never launched", so the record stays open and the next pass asks again
            return self._left_open(record, f"{seen}; resubmit unanswered: {result.reason}", attempts=2)
        reason = f"resubmitted by recovery ({because or seen})" + (f": {result.reason}" if result.reason else "")
        decision = f"resubmitted: {result.outcome.value}"
        return self._finish(record, spec, result.outcome, reason, seen, decision, attempt=launch.attempt)

    def _finish(
        self,
        record: LaunchRecord,
        spec: JobSpec | None,
        outcome: Outcome,
        reason: str,
        seen: str,
        decision: str | None = None,
        **extra: Any,
    ) -> Conclusion:
        finished = record.finish(outcome, now=self._clock.now(), reason=reason, **extra)
        notices = self._notices(finished, spec)
        self._store.finish(self._leadership.fence, [finished], notices)
        self._notifier.wrote(notices)
        decision = decision or f"recorded {outcome.value}: {reason}"
        return self._concluded(finished, Conclusion(record.name, seen, decision))

    def _notices(self, record: LaunchRecord, spec: JobSpec | None) -> tuple[Notice, ...]:
        """A launch recovery gave up on (skipped: `skipped`) or could not resubmit (`failed_to_launch`)."""
        if spec is None or not self._notifier.wants(spec):
            return ()
        if record.outcome is Outcome.SKIPPED:
            return self._notifier.for_skip(record, spec)
        return self._notifier.for_failed_launch(record, spec)

    def take_finished(self) -> list[LaunchRecord]:
        """The records concluded since the last call: those launched are followed to their result."""
        finished, self._finished = self._finished, []
        return finished

    def _concluded(self, record: LaunchRecord, conclusion: Conclusion) -> Conclusion:
        self._finished.append(record)
        fields = {"job": record.job, "launch": record.name, "epoch": self._leadership.fence.epoch}
        fields |= {"lookup": conclusion.lookup, "decision": conclusion.decision}
        log.info("open launch concluded", extra=fields)
        metrics.launches_finished([record])
        return conclusion


def takeover_report(
    replica: str, epoch: int, started: datetime, concluded: list[Conclusion], caught_up: dict[str, Any]
) -> dict[str, Any]:
    return {
        "replica": replica,
        "epoch": epoch,
        "at": started.isoformat(),
        "open_launches": [asdict(c) for c in concluded],
        "catchup": caught_up,
    }

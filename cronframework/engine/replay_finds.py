"""After a restore: the backend's word on the replayed launches a tick's plan names (`TickPlan.finds`).

A restore from an old snapshot replays every instant since it, and each one the plan would skip is first found by
name. Asked one after the other inside one tick, 27,000 of them against a slowed backend held a new leader in its
first tick for its whole tenure (the 60-minute runs, docs/reliability.md). Here they are asked side by side, a job's
names together, and only until the tick's time runs out; the answers are kept until the plan that needs them is
decided, so the replay moves forward a slice per tick while the jobs not waiting on it go on launching. A job is
decided up to its first name not answered yet (`plan.hold_unanswered`), so nothing is decided on a guess and each
tenure's answers are written down for the next leader. Names are asked in each job's time order.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from cronframework.abc import Clock, Leadership
from cronframework.adapters import BackendSet
from cronframework.engine.budget import within_budget
from cronframework.engine.submit import lookup_with_retries
from cronframework.errors import BackendError
from cronframework.launch import BackendStatus
from cronframework.spec.model import JobSpec

log = logging.getLogger("cronframework.leader")
FIND_WORKERS = 16


class ReplayFinds:
    def __init__(self, backends: BackendSet, leadership: Leadership, clock: Clock) -> None:
        self._backends, self._leadership, self._clock = backends, leadership, clock
        self._answers: dict[str, BackendStatus | None] = {}  # asked in an earlier tick, not decided yet

    def find(self, finds: Mapping[str, JobSpec], budget: float) -> dict[str, BackendStatus | None]:
        """The answers known for `finds`, after asking about those not asked yet for `budget` seconds
        (`budget.within_budget`). A backend that fails one lookup is not asked again in this call."""
        ask = sorted((n for n in finds if n not in self._answers), key=lambda n: (finds[n].name, n))
        silent: set[int] = set()

        def one(name: str) -> None:
            backend = self._backends.for_spec(finds[name])
            if id(backend) in silent:
                return
            try:
                status = lookup_with_retries(backend, name, clock=self._clock, leadership=self._leadership, attempts=2)
            except BackendError as exc:
                silent.add(id(backend))
                log.warning("replayed launch not looked up", extra={"launch": name, "error": str(exc)})
                return
            self._answers[name] = status

        within_budget(ask, one, lambda _: None, clock=self._clock, budget=budget, workers=FIND_WORKERS, name="replay")
        found = {n: self._answers[n] for n in finds if n in self._answers}
        if ask:
            made = sum(status is not None for status in found.values())
            fields = {"asked": len(ask), "answered": len(found), "waiting": len(finds) - len(found), "found": made}
            log.info("replayed launches looked up by name", extra=fields)
        return found

    def forget(self, names: Iterable[str]) -> None:
        """Answers no longer needed (a plan that used them was carried out), or no longer true (recovery has just
        concluded that launch: a kept "not found" may now be running)."""
        for name in names:
            self._answers.pop(name, None)

"""Run-time limits (`task.timeout`): the leader stops a launch still running past its limit.

Backends that enforce the limit themselves (the process backend's supervisor) say so with `enforces_timeout`.
Deadlines live in the leader's memory: a new leader re-arms them from the launches it finds running at takeover
only if the backend does not enforce them -- documented as a known limit in docs/design.md.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime

from cronframework.abc import Clock, Leadership
from cronframework.adapters import BackendSet
from cronframework.errors import BackendError
from cronframework.records import LaunchRecord, Outcome
from cronframework.spec.model import JobSpec

log = logging.getLogger("cronframework.limits")


class RuntimeLimits:
    def __init__(self, backends: BackendSet, leadership: Leadership, clock: Clock) -> None:
        self._backends = backends
        self._leadership = leadership
        self._clock = clock
        self._heap: list[tuple[datetime, str, JobSpec]] = []

    def watch(self, records: Sequence[LaunchRecord], specs: Mapping[str, JobSpec]) -> None:
        for record in records:
            spec = specs.get(record.name)
            if spec is None or spec.task.timeout is None or record.outcome is not Outcome.SUBMITTED:
                continue
            if self._backends.for_spec(spec).enforces_timeout:
                continue
            deadline = (record.finished_at or self._clock.now()) + spec.task.timeout
            heapq.heappush(self._heap, (deadline, record.name, spec))

    def check(self) -> list[str]:
        """Stop every watched launch past its limit that still runs; returns the names stopped."""
        now, stopped = self._clock.now(), []
        while self._heap and self._heap[0][0] <= now:
            _, name, spec = heapq.heappop(self._heap)
            backend = self._backends.for_spec(spec)
            try:
                status = backend.lookup(name)
                if status is not None and status.state.active:
                    self._leadership.check()
                    backend.stop(name)
                    stopped.append(name)
                    log.warning("launch past its run-time limit stopped", extra={"launch": name})
            except BackendError as exc:
                log.error("could not enforce run-time limit", extra={"launch": name, "error": str(exc)})
        return stopped

    def __len__(self) -> int:
        return len(self._heap)

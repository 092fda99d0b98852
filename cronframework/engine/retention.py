"""Retention: the leader prunes finished launches beyond each job's count and age -- record and backend copy.

Pruning is driven by launches, not by a scan: a job is looked at again once it has launched a tenth of its
`retention.count` since it was last pruned, and a slow sweep (`sweep_every`) catches records that only aged out.
The backend's copy (container, Nomad job, launch directory) is removed first; a record is deleted only when its
launch is gone from the backend, so a launch still running is never orphaned. Open records are never pruned (the
store refuses them too): they are the next leader's to-do list.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta

from cronframework.abc import Leadership, LeaderStore
from cronframework.adapters import BackendSet
from cronframework.engine.dispatcher import Dispatcher
from cronframework.errors import BackendError
from cronframework.records import LaunchRecord
from cronframework.spec.model import JobSpec

log = logging.getLogger("cronframework.retention")

SLACK = 20  # records read past the count, so age-based pruning sees a few beyond it


def prunable(records: Sequence[LaunchRecord], *, keep: int, max_age_cutoff: datetime) -> list[str]:
    """Names to delete from a newest-first history: beyond `keep`, or finished before the cutoff. A launch still
    followed (its result, or a retry, to come) is kept, like an open one."""
    names = []
    for index, record in enumerate(records):
        if not record.concluded:
            continue
        too_old = record.finished_at is not None and record.finished_at < max_age_cutoff
        if index >= keep or too_old:
            names.append(record.name)
    return names


class Pruner:
    def __init__(
        self,
        store: LeaderStore,
        backends: BackendSet,
        leadership: Leadership,
        *,
        per_tick: int,
        sweep_every: timedelta = timedelta(hours=1),
    ) -> None:
        self._store, self._backends, self._leadership = store, backends, leadership
        self._per_tick = per_tick
        self._sweep_every = sweep_every
        self._launched: Counter[str] = Counter()  # launches per job since it was last pruned
        self._noted: dict[str, None] = {}  # jobs launched since the last step: only their counts can have moved
        self._due: dict[str, None] = {}  # jobs past a tenth of their count, in the order they got there
        self._sweep: list[str] = []  # the sweep's jobs still to look at, the next one last
        self._next_sweep: datetime | None = None

    def note(self, records: Sequence[LaunchRecord]) -> None:
        for record in records:
            self._launched[record.job] += 1
            self._noted[record.job] = None

    def step(self, jobs: Dispatcher, now: datetime) -> int:
        """Prune up to `per_tick` jobs that are due for it, and the sweep's share; returns how many records were
        deleted. Costs O(jobs launched since the last step + the share): at 100k jobs, a look at every launched job
        on every tick had cost ~0.1 s of the leader's thread a tick."""
        if self._next_sweep is None or now >= self._next_sweep:
            self._sweep, self._next_sweep = sorted(jobs.names(), reverse=True), now + self._sweep_every
        for name in self._noted:
            entry = jobs.get(name)
            if entry is not None and self._launched[name] >= max(1, entry.spec.retention.count // 10):
                self._due[name] = None
        self._noted.clear()
        # the sweep spreads over its period (ticks come about once a second), so it never adds a burst of reads
        sweep_share = max(1, math.ceil(len(jobs) / max(1.0, self._sweep_every.total_seconds())))
        batch = list(itertools.islice(self._due, self._per_tick))
        batch += [self._sweep.pop() for _ in range(min(sweep_share, len(self._sweep)))]
        deleted = 0
        for name in dict.fromkeys(batch):
            self._launched.pop(name, None)
            self._due.pop(name, None)
            entry = jobs.get(name)
            if entry is not None:
                deleted += self._prune(entry.spec, now)
        return deleted

    def _prune(self, spec: JobSpec, now: datetime) -> int:
        history = self._store.history(spec.name, limit=spec.retention.count + SLACK)
        names = prunable(history, keep=spec.retention.count, max_age_cutoff=now - spec.retention.age)
        gone = [name for name in names if self._remove_from_backend(spec, name)]
        if gone:
            self._store.prune(self._leadership.fence, spec.name, gone)
        return len(gone)

    def _remove_from_backend(self, spec: JobSpec, name: str) -> bool:
        try:
            self._leadership.check()
            self._backends.for_spec(spec).remove(name)
            return True
        except BackendError as exc:  # still running, or the backend is away: keep the record, try again later
            log.info("launch kept: backend could not remove it", extra={"launch": name, "error": str(exc)})
            return False

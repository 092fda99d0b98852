"""Retention: the leader prunes finished launch records beyond each job's count and age, a few jobs per tick.

Open records are never pruned (the store refuses them too): they are the next leader's to-do list.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from cronframework.dispatcher import Entry
from cronframework.leadership import Leadership
from cronframework.records import LaunchRecord
from cronframework.store import StateStore

SLACK = 20  # records read past the count, so age-based pruning sees a few beyond it


def prunable(records: Sequence[LaunchRecord], *, keep: int, max_age_cutoff: datetime) -> list[str]:
    """Names to delete from a newest-first history: beyond `keep`, or finished before the cutoff."""
    names = []
    for index, record in enumerate(records):
        if record.open:
            continue
        too_old = record.finished_at is not None and record.finished_at < max_age_cutoff
        if index >= keep or too_old:
            names.append(record.name)
    return names


class Pruner:
    def __init__(self, store: StateStore, leadership: Leadership, *, per_tick: int) -> None:
        self._store = store
        self._leadership = leadership
        self._per_tick = per_tick
        self._cursor = 0

    def step(self, entries: Sequence[Entry], now: datetime) -> int:
        """Prune the next `per_tick` jobs in turn; returns how many records were deleted."""
        if not entries or self._per_tick <= 0:
            return 0
        deleted = 0
        for offset in range(min(self._per_tick, len(entries))):
            spec = entries[(self._cursor + offset) % len(entries)].spec
            history = self._store.history(spec.name, limit=spec.retention.count + SLACK)
            names = prunable(history, keep=spec.retention.count, max_age_cutoff=now - spec.retention.age)
            if names:
                self._store.prune(self._leadership.fence, spec.name, names)
                deleted += len(names)
        self._cursor = (self._cursor + self._per_tick) % len(entries)
        return deleted

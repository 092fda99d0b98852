"""The heap of (next instant, job): which jobs are due now, and when the loop should wake next.

Only computes; the leader loop does every side effect. Entries are replaced, never mutated, and stale heap items
are skipped lazily, so updating 100k jobs after a spec change costs O(changed log n).
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass
from datetime import datetime

from cronframework.jobspec import JobSpec
from cronframework.schedule import Schedule


@dataclass(frozen=True)
class Entry:
    spec: JobSpec
    schedule: Schedule
    watermark: datetime  # every instant before it is decided (launched or recorded skipped)
    last_launch: str | None = None


class Dispatcher:
    def __init__(self) -> None:
        self._entries: dict[str, Entry] = {}
        self._heap: list[tuple[datetime, int, str]] = []
        self._seq = itertools.count()
        self._current: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, job: str) -> bool:
        return job in self._entries

    def get(self, job: str) -> Entry | None:
        return self._entries.get(job)

    def entries(self) -> list[Entry]:
        return list(self._entries.values())

    def upsert(self, entry: Entry) -> None:
        seq = next(self._seq)
        self._entries[entry.spec.name] = entry
        self._current[entry.spec.name] = seq
        heapq.heappush(self._heap, (entry.watermark, seq, entry.spec.name))

    def remove(self, job: str) -> None:
        self._entries.pop(job, None)
        self._current.pop(job, None)

    def advance(self, job: str, watermark: datetime, last_launch: str | None = None) -> None:
        entry = self._entries.get(job)
        if entry is not None:
            # built directly: dataclasses.replace costs several times more, once per job of a herd
            self.upsert(Entry(entry.spec, entry.schedule, watermark, last_launch or entry.last_launch))

    def next_due(self) -> datetime | None:
        self._drop_stale()
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: datetime) -> list[Entry]:
        """Entries whose watermark has come; they leave the heap until `advance` puts them back."""
        due: list[Entry] = []
        while True:
            self._drop_stale()
            if not self._heap or self._heap[0][0] > now:
                return due
            _, _, job = heapq.heappop(self._heap)
            self._current.pop(job, None)
            due.append(self._entries[job])

    def _drop_stale(self) -> None:
        while self._heap and self._current.get(self._heap[0][2]) != self._heap[0][1]:
            heapq.heappop(self._heap)

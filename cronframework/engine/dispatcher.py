"""The heap of (next instant, job): which jobs are due now, and when the loop should wake next.

Only computes; the leader loop does every side effect. Entries are replaced, never mutated, and stale heap items
are skipped lazily, so updating 100k jobs after a spec change costs O(changed log n).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import KeysView
from dataclasses import dataclass
from datetime import datetime

from cronframework.schedule.expression import Schedule
from cronframework.spec.model import JobSpec


@dataclass(frozen=True, slots=True)
class Entry:
    spec: JobSpec
    schedule: Schedule
    watermark: datetime  # every instant before it is decided (launched or recorded skipped)
    last_launch: str | None = None


_Item = tuple[datetime, int, Entry]  # (watermark, sequence number, entry): the number breaks ties in order
_OFF_HEAP = -1


class Dispatcher:
    def __init__(self) -> None:
        # job -> the heap item that queues it, which is also its "current" mark: a heap item is live only while its
        # job still maps to that very tuple. A due job off the heap maps to an item numbered _OFF_HEAP. One slot and
        # one tuple per job, so 100k jobs cost little beyond their specs (benchmarks/bench_memory.py).
        self._items: dict[str, _Item] = {}
        self._heap: list[_Item] = []
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, job: str) -> bool:
        return job in self._items

    def get(self, job: str) -> Entry | None:
        item = self._items.get(job)
        return None if item is None else item[2]

    def entries(self) -> list[Entry]:
        return [item[2] for item in self._items.values()]

    def names(self) -> KeysView[str]:
        """Every scheduled job's name, without building a list of 100k entries."""
        return self._items.keys()

    def upsert(self, entry: Entry) -> None:
        item = (entry.watermark, next(self._seq), entry)
        self._items[entry.spec.name] = item
        heapq.heappush(self._heap, item)

    def remove(self, job: str) -> None:
        self._items.pop(job, None)

    def advance(self, job: str, watermark: datetime, last_launch: str | None = None) -> None:
        item = self._items.get(job)
        if item is not None:
            entry = item[2]
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
            watermark, _, entry = heapq.heappop(self._heap)
            self._items[entry.spec.name] = (watermark, _OFF_HEAP, entry)
            due.append(entry)

    def _drop_stale(self) -> None:
        heap, items = self._heap, self._items
        while heap and items.get(heap[0][2].spec.name) is not heap[0]:
            heapq.heappop(heap)

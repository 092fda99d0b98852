"""Side by side within a time budget: how a takeover asks a backend about hundreds of launches without spending
its tenure on them (open launches in `recovery.py`, a restore's replayed ones in `replay_finds.py`).

Items are begun in order, a pool of workers at a time. Once the budget is spent, an item not begun yet is not
begun at all (`not_reached` says what it is instead), except each worker's first: every call gets some done, even
when reading what to do took the whole budget.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from cronframework.abc import Clock

T = TypeVar("T")
R = TypeVar("R")


def within_budget(
    items: Sequence[T],
    work: Callable[[T], R],
    not_reached: Callable[[T], R],
    *,
    clock: Clock,
    budget: float | None,
    workers: int,
    name: str,
) -> list[R]:
    """`work(item)` for each item, in order, `workers` at a time (threads named `name`); once `budget` seconds
    (None: no bound) have passed since the call, `not_reached(item)` for each item not begun yet."""
    until = None if budget is None else clock.monotonic() + budget

    def one(index: int, item: T) -> R:
        if until is not None and index >= workers and clock.monotonic() >= until:
            return not_reached(item)
        return work(item)

    if len(items) < 2:
        return [one(index, item) for index, item in enumerate(items)]
    with ThreadPoolExecutor(min(workers, len(items)), thread_name_prefix=name) as pool:
        return list(pool.map(one, range(len(items)), items))

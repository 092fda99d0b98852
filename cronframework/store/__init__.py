"""State stores: ZooKeeper (`store.zookeeper`) and SQLite (`store.sqlite`); the protocols are in `cronframework.abc`.

Both pass the same conformance suite (tests/store_conformance.py), as does `cronframework.testing.MemoryStore`.
Writes split in two families:
- leader writes (`begin`, `finish`, `prune`, `drop_trigger`, `put_job_states`, `write_takeover`) are fenced: they
  raise LeadershipLost once this replica no longer leads, and nothing of the batch is applied;
- operator writes (`write_specs`, `set_paused`, `request_trigger`) are plain versioned writes anyone may make.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cronframework.abc import Fence
from cronframework.records import Begin


def already_committed() -> None:
    """`PreparedBegin.send`'s waiter for a store that applied the begin before returning."""


@dataclass(frozen=True)
class BeginNow:
    """`prepare_begin` of a store that applies a begin at once: nothing to build ahead, `send` is `begin`."""

    begin: Callable[[Fence, Sequence[Begin]], None]
    fence: Fence
    items: Sequence[Begin]

    def send(self) -> Callable[[], None]:
        self.begin(self.fence, self.items)
        return already_committed

    def discard(self) -> None:
        return None

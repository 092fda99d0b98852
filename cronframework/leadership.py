"""What the launch path asks of leadership: a fence for store writes, and a check before every backend call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from cronframework.errors import LeadershipLost
from cronframework.store import Fence


class Leadership(Protocol):
    @property
    def fence(self) -> Fence: ...

    def check(self) -> None:
        """Raise LeadershipLost when this replica must not call a backend (SUSPENDED counts: it may be deposed)."""
        ...


@dataclass
class SoleLeader:
    """The embedded mode's leadership: one process holding the store's lock always leads."""

    epoch: int
    replica: str
    active: bool = True

    @property
    def fence(self) -> SoleLeader:
        return self

    @property
    def valid(self) -> bool:
        return self.active

    def check(self) -> None:
        if not self.active:
            raise LeadershipLost(f"replica {self.replica} is shutting down")

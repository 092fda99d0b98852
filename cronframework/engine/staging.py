"""Staging: the launches of the next instant planned and built while the leader waits for it.

With 10k jobs due in one second, planning them, building their records and encoding sync point one had taken
half of the leader's CPU between that second's start and its last submit (docs/benchmarks.md); in a steady second
it was most of each launch's lag. All of it can be done before the instant, from what is known then. Only the
sending waits for the instant: nothing is written, and no backend is called, before it.

A stage holds only what its instant will not change:
- launches whose decision needs no backend (`forbid`/`replace` ask about the previous launch, so those jobs are
  planned at their instant, as before);
- the pause flags read when it was built: the leader reads them again at the instant and decides everything anew
  when they differ;
- the specs: a spec change wakes the leader, and a tick before the instant, or one that finds specs changed, throws
  the stage away (its jobs go back on the dispatcher) and plans as if there had been none;
- the instant itself: fired more than `tolerance` late, it is thrown away too and policy decides on the real time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from cronframework.engine.dispatcher import Entry
from cronframework.engine.launcher import PreparedSlice
from cronframework.engine.plan import Planned
from cronframework.spec.model import Concurrency

# preparation stops this long before the instant (a slice under way finishes: ~40 ms per thousand launches here)
STAGE_MARGIN = 0.05


@dataclass
class Stage:
    at: datetime  # the instant every staged launch is due at
    due: list[Entry]  # taken off the dispatcher; put back if the stage is thrown away
    paused: set[str]  # the pause flags its plans were made with
    planned: list[Planned]  # every item of the instant, decided as of `at`
    watermarks: dict[str, datetime]  # each staged job's next watermark
    rest: Iterator[Planned]  # the items preparation had no time to build: built when the stage fires
    slices: list[PreparedSlice]  # sync point one built, not sent


def stageable(entry: Entry) -> bool:
    """Decided without asking a backend: `allow` jobs, or jobs with no previous launch to ask about."""
    return entry.spec.concurrency is Concurrency.ALLOW or entry.last_launch is None

"""Following every launched task to its end, off the launch path: backend calls only, never a store write.

One thread per backend in use. A backend that can watch (`abc.Watching`: Docker's events, Nomad's blocking
queries, the process backend's exit files) says which launches ended; the thread looks those up, and keeps a slow
sweep over the rest as the fallback (a watch misses what ended before it began, or while the backend's event
stream was down). A backend that cannot watch is swept alone. Either way the sweep has a budget of lookups per
second, so following 10k running launches costs a steady trickle of lookups, never a burst beside a herd.

What ended is queued for the leader, which writes it (fenced, batched) after a tick's launches (`results.py`).
Tests step the follower inline from the tick (`step`), on the fake clock; `start` runs it in threads.
"""

from __future__ import annotations

import heapq
import logging
import threading
from collections.abc import Iterable, Set
from dataclasses import dataclass
from typing import cast

from cronframework.abc import Backend, Clock, Watching
from cronframework.errors import BackendError
from cronframework.launch import BackendStatus
from cronframework.records import LaunchRecord

log = logging.getLogger("cronframework.results")


@dataclass(frozen=True)
class FollowConfig:
    sweep_every: float = 60.0  # a launch on a watching backend is also looked up this often (the fallback)
    poll_every: float = 2.0  # a launch on a backend that cannot watch is looked up this often
    first_lookup: float = 1.0  # how soon a launch is first looked up when no watch covers it (found at takeover)
    lookups_per_second: float = 500.0  # per backend: the sweep's budget
    watch_wait: float = 1.0  # one call to `Watching.ended` waits at most this long
    # results written per tick at most when an instant is near (a burst never stalls its launches for long), and
    # when none is: 10k tasks ending together are written in a tick or two
    max_results_per_tick: int = 2000
    max_results_per_quiet_tick: int = 50_000


@dataclass(frozen=True)
class Ended:
    """A launch its backend reports terminal (`status`), or no longer knows (`status` None)."""

    record: LaunchRecord
    status: BackendStatus | None


class BackendFollower:
    """The launches of one backend, each with the monotonic time of its next lookup."""

    def __init__(self, name: str, backend: Backend, clock: Clock, config: FollowConfig) -> None:
        self.name, self._backend, self._clock, self._config = name, backend, clock, config
        self._lock = threading.Lock()
        self._records: dict[str, LaunchRecord] = {}
        self._due: list[tuple[float, str]] = []  # heap; an entry whose name left `_records` is skipped
        self._ended: list[Ended] = []
        self._added = threading.Event()
        self._watch_failing = False

    def __len__(self) -> int:
        return len(self._records)

    def add(self, records: Iterable[LaunchRecord], *, soon: bool = False) -> None:
        """Follow `records`. A watching backend reports what ends from now on, so their first lookup is the sweep's;
        `soon` for launches that may have ended before anyone watched them (found at takeover)."""
        watched = self._backend.watches and not soon and not self._watch_failing
        first = self._clock.monotonic() + (self._config.sweep_every if watched else self._config.first_lookup)
        with self._lock:
            for record in records:
                if record.name not in self._records:
                    heapq.heappush(self._due, (first, record.name))
                self._records[record.name] = record
        self._added.set()

    def records(self) -> list[LaunchRecord]:
        with self._lock:
            return list(self._records.values())

    def remove(self, names: Iterable[str]) -> None:
        with self._lock:
            for name in names:
                self._records.pop(name, None)

    def take(self) -> list[Ended]:
        with self._lock:
            ended, self._ended = self._ended, []
        return ended

    def step(self, wait: float) -> None:
        """One pass: what the watch reports (waiting up to `wait` for it), then the sweep's share of lookups."""
        with self._lock:
            names = list(self._records)
        if not names:
            self._added.wait(wait)
            self._added.clear()
            return
        hinted = self._watch(names, wait) if self._backend.watches else set()
        if not self._backend.watches and wait > 0:
            self._clock.sleep(min(wait, self._until_due()), self._added)
            self._added.clear()
        self._look_up([*hinted, *self._sweep_share(hinted)])

    def _watch(self, names: list[str], wait: float) -> set[str]:
        try:
            hinted = cast(Watching, self._backend).ended(names, wait)
        except BackendError as exc:
            if not self._watch_failing:
                log.warning("backend cannot be watched; sweeping only", extra={"backend": self.name, "error": str(exc)})
            self._watch_failing = True
            self._clock.sleep(min(wait, 1.0))
            return set()
        if self._watch_failing:  # the stream was down: what ended meanwhile was reported to nobody
            self._all_due_now()
        self._watch_failing = False
        return hinted

    def _all_due_now(self) -> None:
        now = self._clock.monotonic()
        with self._lock:
            self._due = [(now, name) for name in self._records]
            heapq.heapify(self._due)

    def _until_due(self) -> float:
        with self._lock:
            first = self._due[0][0] if self._due else float("inf")
        return max(0.0, first - self._clock.monotonic())

    def _sweep_share(self, skip: set[str]) -> list[str]:
        """Launches whose lookup is due, at most a second's budget of them; each is due again one period later."""
        now = self._clock.monotonic()
        every = self._config.sweep_every if self._backend.watches else self._config.poll_every
        budget = max(1, int(self._config.lookups_per_second))
        due: list[str] = []
        with self._lock:
            while self._due and self._due[0][0] <= now and len(due) < budget:
                _, name = heapq.heappop(self._due)
                if name in self._records:
                    due.append(name)
                    heapq.heappush(self._due, (now + every, name))
        return [n for n in due if n not in skip]

    def _look_up(self, names: list[str]) -> None:
        """Each launch found ended is reported at once: against a backend that answers slowly, a pass over hundreds
        of names can outlast the leader, and what it found early would otherwise wait for its last lookup."""
        for name in names:
            with self._lock:
                record = self._records.get(name)
            if record is None:
                continue
            try:
                status = self._backend.lookup(name)
            except BackendError as exc:
                log.debug("lookup failed; asked again later", extra={"launch": name, "error": str(exc)})
                continue
            if status is None or not status.state.active:
                with self._lock:  # reported once: the leader writes it, or puts it back (`add`) to retry
                    if self._records.pop(name, None) is not None:
                        self._ended.append(Ended(record, status))

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.step(self._config.watch_wait)
            except Exception:  # a bug here must not end the following of every other launch
                log.exception("result follower pass failed", extra={"backend": self.name})
                stop.wait(1.0)

    def wake(self) -> None:
        self._added.set()


class ResultFollower:
    """Every launch the leader follows, by backend. `follow` and `take` are called from the leader's thread; the
    lookups run in one thread per backend once `start`ed, or inline in `step`."""

    def __init__(self, clock: Clock, config: FollowConfig | None = None) -> None:
        self._clock = clock
        self._config = config or FollowConfig()
        self._followers: dict[str, BackendFollower] = {}
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._threaded = False

    def __len__(self) -> int:
        return sum(len(f) for f in self._followers.values())

    def follow(
        self, backend_name: str, backend: Backend, records: Iterable[LaunchRecord], *, soon: bool = False
    ) -> None:
        follower = self._followers.get(backend_name)
        if follower is None:
            follower = self._followers[backend_name] = BackendFollower(backend_name, backend, self._clock, self._config)
            if self._threaded:
                self._start(follower)
        follower.add(records, soon=soon)

    def names_by_job(self, jobs: Set[str]) -> dict[str, set[str]]:
        """The followed launches of `jobs`, by job."""
        out: dict[str, set[str]] = {}
        for follower in self._followers.values():
            for record in follower.records():
                if record.job in jobs:
                    out.setdefault(record.job, set()).add(record.name)
        return out

    def forget(self, names: Iterable[str]) -> None:
        names = list(names)
        for follower in self._followers.values():
            follower.remove(names)

    def take(self) -> list[Ended]:
        return [item for follower in self._followers.values() for item in follower.take()]

    def step(self) -> None:
        """One pass over every backend without waiting (the tick calls it when no thread runs)."""
        if not self._threaded:
            for follower in list(self._followers.values()):
                follower.step(0.0)

    def start(self) -> None:
        self._threaded = True
        for follower in self._followers.values():
            self._start(follower)

    def _start(self, follower: BackendFollower) -> None:
        thread = threading.Thread(target=follower.run, args=(self._stop,), name=f"follow-{follower.name}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def close(self) -> None:
        self._stop.set()
        for follower in self._followers.values():
            follower.wake()
        for thread in self._threads:
            thread.join(timeout=5.0)
        self._threads.clear()
        self._threaded = False

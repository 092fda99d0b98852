"""The pruner's choice of jobs per tick: driven by launches and a slow sweep, never a scan of every job."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from cronframework.abc import Leadership, LeaderStore
from cronframework.adapters import BackendSet
from cronframework.engine.dispatcher import Dispatcher, Entry
from cronframework.engine.retention import Pruner
from cronframework.naming import LaunchIdentity
from cronframework.records import LaunchRecord
from cronframework.schedule.expression import parse_schedule
from tests.leader_harness import job

NOW = datetime(2026, 12, 6, 0, 0, tzinfo=UTC)


class HistoryReads:
    """A store that records whose history the pruner read (each read is a look at one job)."""

    def __init__(self) -> None:
        self.read: list[str] = []

    def history(self, job: str, limit: int = 20) -> list[LaunchRecord]:
        self.read.append(job)
        return []


class CountingDispatcher(Dispatcher):
    """Counts the pruner's per-job lookups and its walks over every scheduled job."""

    def __init__(self) -> None:
        super().__init__()
        self.gets = 0
        self.walks = 0

    def get(self, job: str) -> Entry | None:
        self.gets += 1
        return super().get(job)

    def names(self) -> Any:
        self.walks += 1
        return super().names()


def scheduled(names: Sequence[str], count: int = 100) -> CountingDispatcher:
    jobs = CountingDispatcher()
    for name in names:
        spec = job(name, retention={"count": count})
        jobs.upsert(Entry(spec, parse_schedule(spec.schedule, job=name), NOW))
    return jobs


def launched(*names: str) -> list[LaunchRecord]:
    return [LaunchRecord.begin(LaunchIdentity(name, NOW), leader="test", epoch=1, now=NOW) for name in names]


def pruner(store: HistoryReads, per_tick: int = 10, sweep_every: timedelta = timedelta(hours=1)) -> Pruner:
    return Pruner(
        cast(LeaderStore, store),
        cast(BackendSet, None),
        cast(Leadership, None),
        per_tick=per_tick,
        sweep_every=sweep_every,
    )


def test_a_tick_after_a_herd_looks_only_at_the_jobs_launched_since_the_last_tick() -> None:
    """At 100k jobs, looking at every launched job on every tick cost 118 ms a tick of the leader's thread
    (measured with a 100k herd's counts): most of a second's work went into jobs that were nowhere near due."""
    names = [f"job-{i:05d}" for i in range(5000)]
    jobs, store = scheduled(names), HistoryReads()
    prune = pruner(store)
    prune.note(launched(*names))  # a herd: every job launched once, a hundredth of its count
    prune.step(jobs, NOW)
    assert jobs.gets <= len(names) + 2  # the herd's jobs, checked once each, plus the sweep's share
    jobs.gets = jobs.walks = 0
    for second in range(1, 11):  # ten quiet ticks: nothing launched
        prune.step(jobs, NOW + timedelta(seconds=second))
    assert jobs.walks == 0  # the sweep's list is made once per sweep period, not per tick
    assert jobs.gets <= 10 * 2  # each tick: its sweep share (5000 jobs over an hour: 2 a tick)
    assert len(store.read) == 11 * 2  # only the sweep read histories; no job reached a tenth of its count


def test_a_job_is_pruned_once_it_has_launched_a_tenth_of_its_count() -> None:
    jobs, store = scheduled(["busy", "quiet"], count=30), HistoryReads()
    prune = pruner(store, sweep_every=timedelta(days=365))  # the sweep's share (one job a tick) is read too
    prune.step(jobs, NOW)
    assert store.read == ["busy"]  # the sweep's first share
    store.read.clear()
    prune.note(launched("busy", "busy"))
    prune.step(jobs, NOW + timedelta(seconds=1))
    assert store.read == ["quiet"]  # two launches of busy: not yet a tenth of 30; the sweep goes on
    store.read.clear()
    prune.note(launched("busy"))
    prune.step(jobs, NOW + timedelta(seconds=2))
    assert store.read == ["busy"]  # the third launch makes it due
    store.read.clear()
    prune.note(launched("busy"))
    prune.step(jobs, NOW + timedelta(seconds=3))
    assert store.read == []  # its count starts again after a prune


def test_due_jobs_beyond_the_per_tick_limit_wait_for_later_ticks_in_launch_order() -> None:
    names = ["a", "b", "c", "d", "e"]
    jobs, store = scheduled(names, count=1), HistoryReads()  # every launch makes its job due
    prune = pruner(store, per_tick=2, sweep_every=timedelta(days=365))
    prune.step(jobs, NOW)
    store.read.clear()  # the sweep's first share ("a")
    prune.note(launched("e", "d", "c", "b"))
    reads = []
    for second in (1, 2, 3):
        prune.step(jobs, NOW + timedelta(seconds=second))
        reads.append(store.read[:])
        store.read.clear()
    # due jobs first, in the order they launched, two a tick; then the sweep's share ("b", "c", "d"); a job the
    # sweep pruned is no longer due
    assert reads == [["e", "d", "b"], ["c"], ["d"]]


def test_a_job_no_longer_scheduled_is_not_pruned() -> None:
    jobs, store = scheduled(["kept", "gone"], count=1), HistoryReads()
    prune = pruner(store, sweep_every=timedelta(days=365))
    prune.note(launched("kept", "gone"))
    jobs.remove("gone")
    prune.step(jobs, NOW)
    assert store.read == ["kept"]

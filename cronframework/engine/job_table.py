"""The jobs a leader schedules, on the dispatcher's heap: placed at promotion from the specs and the stored job
states, then kept in step with spec changes. Computes only; the leader writes the job states it returns."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from cronframework.catalog.cache import Job
from cronframework.engine.dispatcher import Dispatcher, Entry
from cronframework.records import JobState


def load(
    dispatcher: Dispatcher, jobs: Mapping[str, Job], states: Mapping[str, JobState], now: datetime
) -> list[JobState]:
    """Every job at its stored watermark; the states to write for jobs seen for the first time (or re-enabled)."""
    fresh: list[JobState] = []
    for name, job in jobs.items():
        fresh += place(dispatcher, job, states.get(name), now)
    return fresh


def reconcile(dispatcher: Dispatcher, jobs: Mapping[str, Job], now: datetime) -> list[JobState]:
    """After a spec change: deleted jobs leave the heap, changed ones keep their watermark and last launch, new and
    re-enabled ones start after `now`, disabled ones are parked. Returns the states to write."""
    for name in [e.spec.name for e in dispatcher.entries() if e.spec.name not in jobs]:
        dispatcher.remove(name)
    fresh: list[JobState] = []
    for name, job in jobs.items():
        entry = dispatcher.get(name)
        if entry is not None and job.spec.enabled:
            dispatcher.upsert(Entry(job.spec, job.schedule, entry.watermark, entry.last_launch))
        elif entry is None or not job.spec.enabled:
            fresh += place(dispatcher, job, None if job.spec.enabled else JobState(name, now), now)
    return fresh


def place(dispatcher: Dispatcher, job: Job, state: JobState | None, now: datetime) -> list[JobState]:
    """Put a job on the heap at its stored watermark; a new or re-enabled job starts after `now`."""
    last = state.last_launch if state else None
    if not job.spec.enabled:
        dispatcher.remove(job.spec.name)
        return [JobState(job.spec.name, None, last)] if state and state.next_scheduled else []
    if state is not None and state.next_scheduled is not None:
        dispatcher.upsert(Entry(job.spec, job.schedule, state.next_scheduled, last))
        return []
    watermark = job.schedule.next_after(now)
    dispatcher.upsert(Entry(job.spec, job.schedule, watermark, last))
    return [JobState(job.spec.name, watermark, last)]

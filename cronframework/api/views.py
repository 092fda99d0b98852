"""The JSON bodies the API returns, built from the replicated state; keys are those of `status --json`,
`history --json` and `plan --json`, so scripts move between the CLI and the API unchanged."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cronframework.abc import ReadStore
from cronframework.adapters import BackendSet
from cronframework.catalog.cache import BrokenSpec, Job, compile_job
from cronframework.ops.status import LAUNCHED, backend_result, collect, job_status, newest
from cronframework.ops.upcoming import UpcomingLaunch, upcoming
from cronframework.records import StoredSpec
from cronframework.spec.model import JobSpec

from .cluster import Cluster
from .errors import NotFound

MAX_NEXT = 100
MAX_HISTORY = 1000
_SCHEDULING = ("schedule", "timezone", "backend", "concurrency")


def status(store: ReadStore, cluster: Cluster) -> dict[str, Any]:
    """`status --json`, with leader and replicas from the cluster view (they carry each replica's `api` URL)."""
    return collect(store, cluster.members())


def job_item(store: ReadStore, name: str) -> dict[str, Any]:
    """One element of `status --json` jobs[], for one job."""
    stored = _stored(store, name)
    summary, last = store.read_job_results([name]).get(name), newest(store.history(name, limit=1))
    state = store.read_job_states([name]).get(name)
    return job_status(stored, last, state, name in store.read_paused(), summary=summary)


def job_detail(store: ReadStore, name: str, now: datetime, count: int) -> dict[str, Any]:
    item = job_item(store, name)
    stored = _stored(store, name)
    try:
        job = compile_job(stored)
    except BrokenSpec:  # `item` says why; show what the stored spec says, and that nothing is coming
        item.update({key: _as_written(stored, key) for key in _SCHEDULING}, resolved="", next_launches=[])
        return item
    spec = job.spec
    # scheduling fields only: the task (command, env) may hold secrets and is never returned
    item.update(
        schedule=spec.schedule,
        timezone=spec.timezone,
        backend=spec.backend,
        concurrency=spec.concurrency.value,
        resolved=job.schedule.resolved,
    )
    item["next_launches"] = [p.as_json() for p in next_launches(job, now, count)] if spec.enabled else []
    return item


def _as_written(stored: StoredSpec, key: str) -> str:
    """A field of a stored spec that does not compile, as stored, or the model's default when absent."""
    field = JobSpec.model_fields[key]
    return str(stored.document.get(key, "" if field.is_required() else field.get_default()))


def next_launches(job: Job, now: datetime, count: int) -> list[UpcomingLaunch]:
    return upcoming(job.spec, job.schedule, now, min(count, MAX_NEXT))


def history(store: ReadStore, name: str, limit: int) -> list[dict[str, Any]]:
    _stored(store, name)
    return [r.to_dict() for r in store.history(name, limit=min(max(limit, 0), MAX_HISTORY))]


def _stored(store: ReadStore, name: str) -> StoredSpec:
    stored = store.read_specs().get(name)
    if stored is None:
        raise NotFound(f"unknown job {name!r}")
    return stored


def launch(store: ReadStore, backends: BackendSet | None, job: str, name: str) -> dict[str, Any]:
    """One launch record of the job; while its task's result is still to come, with `lookup` (the backend's view)."""
    stored = _stored(store, job)
    record = store.get_launch(name)
    if record is None or record.job != job:
        raise NotFound(f"job {job!r} has no launch {name!r}")
    item = record.to_dict()
    if backends is not None and record.outcome in LAUNCHED and record.result is None:
        item["lookup"] = backend_result(backends, _backend_of(stored), name)
    return item


def logs(store: ReadStore, backends: BackendSet | None, job: str, name: str) -> str:
    launch(store, None, job, name)  # a launch of this job, or 404
    if backends is None:
        raise NotFound("this process serves no launch logs (no backends configured)")
    return backends.get(_backend_of(_stored(store, job))).logs(name)


def _backend_of(stored: StoredSpec) -> str:
    return str(stored.document.get("backend", "process"))


def timezone_of(store: ReadStore, job: str) -> str:
    return str(_stored(store, job).document.get("timezone", "UTC"))

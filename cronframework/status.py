"""The status document shared by `status --json` and the HTTP API: leader, stale, replicas, takeover, each job's state.

A job whose stored spec the scheduler cannot compile is never silent here: its state is `broken`, with the reason.

Keys are stable (docs/operations.md). With a BackendSet, each last launch also carries `result`: what the backend
says about it now (a read-only lookup, never fatal).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cronframework.backend import BackendSet
from cronframework.errors import CronframeworkError
from cronframework.jobs import spec_problem
from cronframework.records import JobState, LaunchRecord, Outcome
from cronframework.store import StateStore, StoredSpec

LAUNCHED = (Outcome.SUBMITTED, Outcome.ALREADY_EXISTED)


def backend_result(backends: BackendSet, backend_name: str, launch: str) -> dict[str, Any]:
    """{state, exit_code, reason} from the backend now; `unknown` with the reason when it cannot answer."""
    try:
        status = backends.get(backend_name).lookup(launch)
    except CronframeworkError as exc:
        return {"state": "unknown", "exit_code": None, "reason": str(exc).splitlines()[0]}
    if status is None:
        return {"state": "not_found", "exit_code": None, "reason": None}
    return {"state": status.state.value, "exit_code": status.exit_code, "reason": status.reason}


def last_launch(record: LaunchRecord, document: Mapping[str, Any], backends: BackendSet | None) -> dict[str, Any]:
    data = record.to_dict()
    short = {k: data.get(k) for k in ("name", "scheduled", "state", "outcome", "reason")}
    if backends is not None and record.outcome in LAUNCHED:
        short["result"] = backend_result(backends, str(document.get("backend", "process")), record.name)
    return short


def job_status(
    store: StateStore,
    stored: StoredSpec,
    state: JobState | None,
    paused: bool,
    backends: BackendSet | None = None,
) -> dict[str, Any]:
    """One element of the document's `jobs` list. A broken job (its stored spec does not compile) has no next
    launch whatever its stored state says: the leader does not schedule it."""
    last = store.history(stored.name, limit=1)
    enabled = bool(stored.document.get("enabled", True))
    problem = spec_problem(stored)
    return {
        "job": stored.name,
        "enabled": enabled,
        "paused": paused,
        "state": job_state(enabled, paused, problem),
        "problem": problem,
        "next": state.next_scheduled.isoformat() if state and state.next_scheduled and not problem else None,
        "last_launch": last_launch(last[0], stored.document, backends) if last else None,
    }


def job_state(enabled: bool, paused: bool, problem: str | None) -> str:
    """`broken` (not scheduled: `problem` says why), `paused`, `disabled` or `enabled`; the first that holds."""
    if problem is not None:
        return "broken"
    return "paused" if paused else ("enabled" if enabled else "disabled")


def replicas(store: StateStore, root: str | None) -> list[dict[str, Any]]:
    """The election's members, leader first (empty for the embedded store, which has no election)."""
    client = getattr(store, "client", None)
    if client is None:
        return []
    from cronframework.election import Election

    reader = Election(client, root or "/cronframework", "status-reader")
    return [dict(vars(c)) for c in reader.replicas()]


def leader_of(store: StateStore, root: str | None) -> dict[str, Any] | None:
    """Who leads on this state now; None when no scheduler does (nothing launches, next instants are stale)."""
    return _leader(store, replicas(store, root))


def _leader(store: StateStore, members: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The election's first member, or the process holding the embedded store's lock as {replica, epoch}."""
    if members:
        return members[0]
    holder = getattr(store, "lock_holder", None)
    sole = holder() if holder is not None else None
    return {"replica": sole.replica, "epoch": sole.epoch} if sole is not None else None


def collect(store: StateStore, root: str | None, backends: BackendSet | None = None) -> dict[str, Any]:
    specs, states, paused = store.read_specs(), store.read_job_states(), store.read_paused()
    jobs = [job_status(store, specs[n], states.get(n), n in paused, backends) for n in sorted(specs)]
    members = replicas(store, root)
    leader = _leader(store, members)
    return {
        "leader": leader,
        "stale": leader is None,  # no scheduler: the `next` instants are what the last one planned
        "replicas": members,
        "takeover": store.read_takeover(),
        "jobs": jobs,
    }

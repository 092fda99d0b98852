"""The status document shared by `status --json` and the HTTP API: leader, replicas, takeover, each job's state.

Keys are stable (docs/operations.md). With a BackendSet, each last launch also carries `result`: what the backend
says about it now (a read-only lookup, never fatal).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cronframework.backend import BackendSet
from cronframework.errors import CronframeworkError
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
    """One element of the document's `jobs` list."""
    last = store.history(stored.name, limit=1)
    return {
        "job": stored.name,
        "enabled": bool(stored.document.get("enabled", True)),
        "paused": paused,
        "next": state.next_scheduled.isoformat() if state and state.next_scheduled else None,
        "last_launch": last_launch(last[0], stored.document, backends) if last else None,
    }


def replicas(store: StateStore, root: str | None) -> list[dict[str, Any]]:
    """The election's members, leader first (empty for the embedded store, which has no election)."""
    client = getattr(store, "client", None)
    if client is None:
        return []
    from cronframework.cluster.election import Election

    reader = Election(client, root or "/cronframework", "status-reader")
    return [dict(vars(c)) for c in reader.replicas()]


def collect(store: StateStore, root: str | None, backends: BackendSet | None = None) -> dict[str, Any]:
    specs, states, paused = store.read_specs(), store.read_job_states(), store.read_paused()
    jobs = [job_status(store, specs[n], states.get(n), n in paused, backends) for n in sorted(specs)]
    members = replicas(store, root)
    return {
        "leader": members[0] if members else None,
        "replicas": members,
        "takeover": store.read_takeover(),
        "jobs": jobs,
    }

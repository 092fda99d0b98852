"""The status document shared by `status --json` and the HTTP API: leader, replicas, takeover, each job's state.

Keys are stable (docs/operations.md). With a BackendSet, each last launch also carries `result`: what the backend
says about it now (a read-only lookup, never fatal).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cronframework.abc import StateStore
from cronframework.adapters import BackendSet
from cronframework.errors import CronframeworkError
from cronframework.records import JobState, LaunchRecord, Outcome, StoredSpec

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


def collect(store: StateStore, members: Sequence[dict[str, Any]], backends: BackendSet | None = None) -> dict[str, Any]:
    """The status document; `members` are the election's replicas, leader first (none in the embedded mode)."""
    specs, states, paused = store.read_specs(), store.read_job_states(), store.read_paused()
    jobs = [job_status(store, specs[n], states.get(n), n in paused, backends) for n in sorted(specs)]
    return {
        "leader": members[0] if members else None,
        "replicas": list(members),
        "takeover": store.read_takeover(),
        "jobs": jobs,
    }

"""The status document shared by `status --json` and the HTTP API: leader, stale, replicas, takeover, each job's state.

A job whose stored spec the scheduler cannot compile is never silent here: its state is `broken`, with the reason.

Keys are stable (docs/operations.md). Each job carries its last launch with the task's recorded result, and from its
results summary the last success and failure, the failed results in a row and the strip of its last runs. With a
BackendSet, a last launch whose result is still to come also carries `lookup`: what the backend says about it now (a
read-only lookup, never fatal).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from cronframework.abc import ReadStore
from cronframework.adapters import BackendSet
from cronframework.catalog.cache import spec_problem
from cronframework.errors import CronframeworkError
from cronframework.records import JobResults, JobState, LaunchRecord, NoticeState, Outcome, StoredSpec
from cronframework.store.sqlite import SqliteStore

LAUNCHED = (Outcome.SUBMITTED, Outcome.ALREADY_EXISTED)
ProblemOf = Callable[[StoredSpec], str | None]  # why a stored spec does not compile (None when it does)
UNDELIVERABLE_SHOWN = 20
LAST_LAUNCH_KEYS = (
    "name",
    "scheduled",
    "state",
    "outcome",
    "reason",
    "result",
    "exit_code",
    "result_reason",
    "started_at",
    "ended_at",
    "duration",
    "task_attempt",
)


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
    short = {k: data.get(k) for k in LAST_LAUNCH_KEYS}
    if backends is not None and record.following and record.result is None:
        short["lookup"] = backend_result(backends, str(document.get("backend", "process")), record.name)
    return short


def results_keys(summary: JobResults | None, paused: bool) -> dict[str, Any]:
    """A job's results summary as status keys: last success and failure, failures in a row, the last runs, since
    when it is overdue, and why it was suspended (while it is still paused)."""
    data = (summary or JobResults("")).to_dict()
    return {
        "last_success": data["last_success"],
        "last_failure": data["last_failure"],
        "failures": data["failures"],
        "recent": data["recent"],
        "overdue_since": data["overdue_since"],
        "suspended": data["suspended"] if paused else None,
    }


def notifications(store: ReadStore, shown: int = UNDELIVERABLE_SHOWN) -> dict[str, Any]:
    """The outbox: how many notifications wait, how many could not be delivered, and the newest of those (URLs
    without their path, which may hold a token)."""
    outbox = store.read_outbox()
    failed = [n for n in outbox if n.state is NoticeState.UNDELIVERABLE]
    return {
        "pending": len(outbox) - len(failed),
        "undeliverable": len(failed),
        "recent_undeliverable": [
            {
                "job": n.job,
                "event": n.event,
                "key": n.key,
                "url": safe_url(n.url),
                "attempts": n.attempts,
                "error": n.last_error,
                "created_at": n.created_at.isoformat(),
            }
            for n in reversed(failed[-shown:])
        ],
    }


def safe_url(url: str) -> str:
    """A webhook URL without its path and query, which often hold a token (Slack, Mattermost)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}/..."


def job_status(
    stored: StoredSpec,
    last: LaunchRecord | None,
    state: JobState | None,
    paused: bool,
    backends: BackendSet | None = None,
    summary: JobResults | None = None,
    problem_of: ProblemOf = spec_problem,
) -> dict[str, Any]:
    """One element of the document's `jobs` list. A broken job (its stored spec does not compile) has no next
    launch whatever its stored state says: the leader does not schedule it. `last` is the job's newest record."""
    enabled = bool(stored.document.get("enabled", True))
    problem = problem_of(stored)
    return {
        "job": stored.name,
        "enabled": enabled,
        "paused": paused,
        "state": job_state(enabled, paused, problem),
        "problem": problem,
        "next": state.next_scheduled.isoformat() if state and state.next_scheduled and not problem else None,
        "last_launch": last_launch(last, stored.document, backends) if last else None,
        **results_keys(summary, paused),
    }


def newest(records: Sequence[LaunchRecord] | None) -> LaunchRecord | None:
    """The first of a job's records, newest first (None for none)."""
    return records[0] if records else None


def job_state(enabled: bool, paused: bool, problem: str | None) -> str:
    """`broken` (not scheduled: `problem` says why), `paused`, `disabled` or `enabled`; the first that holds."""
    if problem is not None:
        return "broken"
    return "paused" if paused else ("enabled" if enabled else "disabled")


def leader_of(store: ReadStore, members: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """Who leads on this state now: the election's first member (`members`, leader first), or the process holding
    the embedded store's lock as {replica, epoch}; None when no scheduler does (nothing launches, next instants are
    stale)."""
    if members:
        return members[0]
    sole = store.lock_holder() if isinstance(store, SqliteStore) else None
    return {"replica": sole.replica, "epoch": sole.epoch} if sole is not None else None


def collect(
    store: ReadStore,
    members: Sequence[dict[str, Any]],
    backends: BackendSet | None = None,
    problem_of: ProblemOf = spec_problem,
) -> dict[str, Any]:
    """The status document; `members` are the election's replicas, leader first (none in the embedded mode).
    `problem_of` may remember each spec's compile check (compiling 10,000 specs costs a second)."""
    specs, states, paused = store.read_specs(), store.read_job_states(), store.read_paused()
    results, lasts = store.read_job_results(), store.histories(specs, 1)  # every job's last launch: one read
    jobs = [
        job_status(specs[n], newest(lasts.get(n)), states.get(n), n in paused, backends, results.get(n), problem_of)
        for n in sorted(specs)
    ]
    leader = leader_of(store, members)
    return {
        "leader": leader,
        "stale": leader is None,  # no scheduler: the `next` instants are what the last one planned
        "replicas": list(members),
        "takeover": store.read_takeover(),
        "jobs": jobs,
        "notifications": notifications(store),
    }

"""`cronframework status [--json]`: leader, replicas, the last takeover, and each job's next and last launch.

JSON keys are stable (docs/operations.md): leader, replicas, takeover, jobs[].{job, enabled, paused, next,
last_launch{name, scheduled, state, outcome, reason}}.
"""

from __future__ import annotations

import argparse
from typing import Any

from cronframework.cli.common import add_store_args, open_store, print_json, uses_zookeeper, zk_config
from cronframework.jobspec import JobSpec
from cronframework.store import StateStore


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("status", help="leader, replicas and each job's next and last launch")
    add_store_args(parser)
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(handler=handle)


def replicas(store: StateStore, root: str | None) -> list[dict[str, Any]]:
    client = getattr(store, "client", None)
    if client is None:
        return []
    from cronframework.election import Election

    reader = Election(client, root or "/cronframework", "status-reader")
    return [dict(vars(c)) for c in reader.replicas()]


def collect(store: StateStore, root: str | None) -> dict[str, Any]:
    specs, states, paused = store.read_specs(), store.read_job_states(), store.read_paused()
    jobs = []
    for name in sorted(specs):
        enabled = bool(specs[name].document.get("enabled", True))
        state = states.get(name)
        last = store.history(name, limit=1)
        jobs.append(
            {
                "job": name,
                "enabled": enabled,
                "paused": name in paused,
                "next": state.next_scheduled.isoformat() if state and state.next_scheduled else None,
                "last_launch": _short(last[0].to_dict()) if last else None,
            }
        )
    members = replicas(store, root)
    return {
        "leader": members[0] if members else None,
        "replicas": members,
        "takeover": store.read_takeover(),
        "jobs": jobs,
    }


def _short(record: dict[str, Any]) -> dict[str, Any]:
    return {k: record.get(k) for k in ("name", "scheduled", "state", "outcome", "reason")}


def handle(args: argparse.Namespace) -> int:
    store = open_store(args)
    root = zk_config(args).root if uses_zookeeper(args) else None
    try:
        status = collect(store, root)
    finally:
        store.close()
    if args.json:
        print_json(status)
        return 0
    leader = status["leader"]
    print(f"leader: {leader['replica']} (epoch {leader['epoch']})" if leader else "leader: (embedded or none)")
    takeover = status["takeover"]
    if takeover:
        opened = takeover.get("open_launches", [])
        print(f"last takeover: {takeover.get('at')} by {takeover.get('replica')}, {len(opened)} open launch(es)")
        for item in opened:
            print(f"  {item['launch']}: lookup {item['lookup']} -> {item['decision']}")
    print(f"{'JOB':30} {'NEXT':27} {'LAST LAUNCH':40} OUTCOME")
    for job in status["jobs"]:
        last = job["last_launch"] or {}
        flag = " (paused)" if job["paused"] else "" if job["enabled"] else " (disabled)"
        outcome = last.get("outcome") or last.get("state") or "-"
        print(f"{job['job'] + flag:30} {job['next'] or '-':27} {last.get('name') or '-':40} {outcome}")
    return 0


__all__ = ["JobSpec", "collect", "register"]

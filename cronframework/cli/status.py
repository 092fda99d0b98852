"""`cronframework status [--json]`: leader, replicas, the last takeover, and each job's next and last launch.

The leader is the election's (ZooKeeper) or the `run` process holding the embedded state's lock; with none, nothing
launches and each `next` is only what the last scheduler planned: `stale` is true and the table marks them.
JSON keys are stable (docs/operations.md): leader, stale, replicas, takeover, jobs[].{job, enabled, paused, state,
problem, next, last_launch{name, scheduled, state, outcome, reason, result, exit_code, result_reason, started_at,
ended_at, duration, task_attempt, lookup{state, exit_code, reason}}, last_success, last_failure, failures, recent[],
overdue_since, suspended}, notifications{pending, undeliverable, recent_undeliverable[]}.
A job whose stored spec does not compile is `broken`; the table flags it and a line after the table gives the reason.
"""

from __future__ import annotations

import argparse
from typing import Any

from cronframework.cli.common import (
    add_store_args,
    backend_set,
    members,
    open_store,
    print_json,
    result_text,
    uses_zookeeper,
)
from cronframework.ops.status import collect


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("status", help="leader, replicas and each job's next and last launch")
    add_store_args(parser)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--no-lookup", action="store_true", help="do not ask the backend about last launches")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    store = open_store(args)
    backends = None if args.no_lookup else backend_set(args)
    try:
        status = collect(store, members(store, args), backends)
    finally:
        store.close()
    if args.json:
        print_json(status)
        return 0
    print(leader_line(status["leader"], uses_zookeeper(args)))
    takeover = status["takeover"]
    if takeover:
        opened = takeover.get("open_launches", [])
        print(f"last takeover: {takeover.get('at')} by {takeover.get('replica')}, {len(opened)} open launch(es)")
        for item in opened:
            print(f"  {item['launch']}: lookup {item['lookup']} -> {item['decision']}")
    stale = " (stale)" if status["stale"] else ""
    print(f"{'JOB':30} {'NEXT':{27 + len(stale)}} {'LAST LAUNCH':40} {'RESULT':28} LAST SUCCESS")
    for job in status["jobs"]:
        last = job["last_launch"] or {}
        flag = "" if job["state"] == "enabled" else f" ({job['state']})"
        following = job["next"] + stale if job["next"] else "-"
        name = last.get("name") or "-"
        print(
            f"{job['job'] + flag:30} {following:{27 + len(stale)}} {name:40} {last_result(last):28} "
            f"{job['last_success'] or '-'}"
        )
    for job in status["jobs"]:
        if job["problem"]:
            print(f"broken: {job['job']}: not scheduled: {job['problem']}")
        if job["suspended"]:
            print(f"suspended: {job['job']}: {job['suspended']}; `cronframework resume {job['job']}` resumes it")
        if job["overdue_since"]:
            print(f"overdue: {job['job']}: no success within its expect.success_within (since {job['overdue_since']})")
    undelivered = status["notifications"]
    if undelivered["undeliverable"]:
        print(f"notifications: {undelivered['undeliverable']} undeliverable, {undelivered['pending']} pending")
        for item in undelivered["recent_undeliverable"]:
            print(f"  {item['key']} to {item['url']}: {item['error']} ({item['attempts']} attempt(s))")
    return 0


def last_result(last: dict[str, Any]) -> str:
    """The last launch in a few words: its task's result (`failed (exit 3) 12.0s`), or its outcome while the result is
    to come (`submitted, running?`), or `-`."""
    if not last:
        return "-"
    if last.get("result"):
        duration = last.get("duration")
        return result_text(last) + (f" {duration:.1f}s" if duration is not None else "")
    started = last.get("outcome") or last.get("state") or "-"
    return started + (f", {result_text(last)}" if last.get("lookup") else "")


def leader_line(leader: dict[str, Any] | None, cluster: bool) -> str:
    if leader is not None:
        held = "" if cluster else ", the embedded scheduler holding this state"
        return f"leader: {leader['replica']} (epoch {leader['epoch']}){held}"
    holder = (
        "no replica is elected" if cluster else "no scheduler holds this state (`cronframework run` is not running)"
    )
    return f"leader: none: {holder}; next launches are stale until one starts"

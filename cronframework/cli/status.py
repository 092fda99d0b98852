"""`cronframework status [JOB] [-o json]`: leader, replicas, the last takeover, and each job's next and last launch;
with JOB, that job alone with its schedule and next launches.

The leader is the election's (ZooKeeper) or the `run` process holding the embedded state's lock; with none, nothing
launches and each `next` is only what the last scheduler planned: `stale` is true and the table marks them.
JSON keys are stable (docs/operations.md): leader, stale, replicas, takeover, jobs[].{job, enabled, paused, state,
problem, next, last_launch{name, scheduled, state, outcome, reason, result, exit_code, result_reason, started_at,
ended_at, duration, task_attempt, lookup{state, exit_code, reason}}, last_success, last_failure, failures, recent[],
overdue_since, suspended}, notifications{pending, undeliverable, recent_undeliverable[]}; for one
job, its jobs[] item plus schedule, timezone, backend, concurrency, resolved and next_launches[] (`GET
/v1/jobs/{job}`). A job whose stored spec does not compile is `broken`; the table flags it and says why.
With --addr the answer comes from a replica's API (which asks no backend: no `lookup`).
"""

from __future__ import annotations

import argparse
from typing import Any

from cronframework.api.views import job_detail
from cronframework.cli.common import (
    add_output_args,
    add_remote_args,
    add_store_args,
    backend_set,
    command,
    members,
    open_store,
    print_json,
    require_job,
    result_text,
    uses_zookeeper,
    wants_json,
)
from cronframework.cli.remote import connect, job_path
from cronframework.clock import SystemClock
from cronframework.ops.status import LAUNCHED, backend_result, collect


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = command(
        sub,
        "status",
        "show the leader, the replicas and each job's next and last launch (or one job in detail)",
        [
            "cronframework status --zk zk1:2181,zk2:2181",
            "cronframework status nightly-report -o json",
            "CRONFRAMEWORK_ADDR=https://cron1:8461 cronframework status",
        ],
    )
    parser.add_argument("job", nargs="?", metavar="JOB", help="one job in detail")
    add_store_args(parser)
    add_remote_args(parser)
    add_output_args(parser, ("table", "json", "name"))  # name: one job name a line (shell completion uses it)
    parser.add_argument("--no-lookup", action="store_true", help="do not ask the backend about last launches")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    if args.job is not None:
        return _one(args)
    if args.output == "name":
        args.no_lookup = True  # names only: no backend is asked anything
    remote = connect(args)
    status = remote.get("/v1/jobs") if remote is not None else _collect(args)
    if args.output == "name":
        print("\n".join(job["job"] for job in status["jobs"]))
        return 0
    if wants_json(args):
        print_json(status)
        return 0
    _print_table(status, remote is not None or uses_zookeeper(args))
    return 0


def _collect(args: argparse.Namespace) -> dict[str, Any]:
    store = open_store(args)
    backends = None if args.no_lookup else backend_set(args)
    try:
        return collect(store, members(store, args), backends)
    finally:
        store.close()


def _print_table(status: dict[str, Any], cluster: bool) -> None:
    print(leader_line(status["leader"], cluster))
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
            f"{job['job'] + flag:30} {following:{27 + len(stale)}} {name:40} {_outcome(last):28} "
            f"{job.get('last_success') or '-'}"
        )
    for job in status["jobs"]:
        if job["problem"]:
            print(f"broken: {job['job']}: not scheduled: {job['problem']}")
        if job.get("suspended"):
            print(f"suspended: {job['job']}: {job['suspended']}; `cronframework resume {job['job']}` resumes it")
        if job.get("overdue_since"):
            print(f"overdue: {job['job']}: no success within its expect.success_within (since {job['overdue_since']})")
    undelivered = status.get("notifications") or {}
    if undelivered.get("undeliverable"):
        print(f"notifications: {undelivered['undeliverable']} undeliverable, {undelivered['pending']} pending")
        for item in undelivered["recent_undeliverable"]:
            print(f"  {item['key']} to {item['url']}: {item['error']} ({item['attempts']} attempt(s))")


def _outcome(last: dict[str, Any]) -> str:
    """The last launch in a few words: its task's result (`failed (exit 3) 12.0s`), or its outcome while the result is
    to come (`submitted, running?`), or `-`."""
    if not last:
        return "-"
    if last.get("result"):
        duration = last.get("duration")
        return result_text(last) + (f" {duration:.1f}s" if duration is not None else "")
    started = str(last.get("outcome") or last.get("state") or "-")
    return started + (f", {result_text(last)}" if last.get("lookup") else "")


def _one(args: argparse.Namespace) -> int:
    remote = connect(args)
    detail = remote.get(job_path(args.job)) if remote is not None else _detail(args)
    if args.output == "name":
        print(detail["job"])
        return 0
    if wants_json(args):
        print_json(detail)
        return 0
    flag = "" if detail["state"] == "enabled" else f" ({detail['state']})"
    print(f"job:       {detail['job']}{flag}")
    print(f"schedule:  {detail['schedule']} ({detail['timezone']}) on {detail['backend']}, ", end="")
    print(f"concurrency {detail['concurrency']}")
    if detail["problem"]:
        print(f"broken:    not scheduled: {detail['problem']}")
    print(f"next:      {detail['next'] or '-'}")
    last = detail["last_launch"] or {}
    print(f"last:      {last.get('name') or '-'} {_outcome(last) if last else ''}".rstrip())
    for planned in detail["next_launches"]:
        print(f"  {planned['scheduled']:27} {planned['utc']:22} {planned['name']}")
    return 0


def _detail(args: argparse.Namespace) -> dict[str, Any]:
    store = open_store(args)
    try:
        require_job(store, args.job)
        detail = job_detail(store, args.job, SystemClock().now(), 5)
    finally:
        store.close()
    last = detail["last_launch"]
    if last and not args.no_lookup and not last.get("result") and last.get("outcome") in {o.value for o in LAUNCHED}:
        last["lookup"] = backend_result(backend_set(args), detail["backend"], last["name"])
    return detail


def leader_line(leader: dict[str, Any] | None, cluster: bool) -> str:
    if leader is not None:
        held = "" if cluster else ", the embedded scheduler holding this state"
        return f"leader: {leader['replica']} (epoch {leader['epoch']}){held}"
    holder = (
        "no replica is elected" if cluster else "no scheduler holds this state (`cronframework run` is not running)"
    )
    return f"leader: none: {holder}; next launches are stale until one starts"

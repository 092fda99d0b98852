"""`cronframework status [--json]`: leader, replicas, the last takeover, and each job's next and last launch.

JSON keys are stable (docs/operations.md): leader, replicas, takeover, jobs[].{job, enabled, paused, next,
last_launch{name, scheduled, state, outcome, reason, result{state, exit_code, reason}}}.
"""

from __future__ import annotations

import argparse

from cronframework.cli.common import add_store_args, backend_set, open_store, print_json, uses_zookeeper, zk_config
from cronframework.cluster.election import election_members
from cronframework.ops.status import collect
from cronframework.store.zookeeper.store import ZooKeeperStore


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("status", help="leader, replicas and each job's next and last launch")
    add_store_args(parser)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--no-lookup", action="store_true", help="do not ask the backend about last launches")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    store = open_store(args)
    root = zk_config(args).root if uses_zookeeper(args) else None
    backends = None if args.no_lookup else backend_set(args)
    try:
        members = election_members(store.client, root) if root and isinstance(store, ZooKeeperStore) else []
        status = collect(store, members, backends)
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
        if last.get("result"):
            outcome += f" -> {last['result']['state']}"
        print(f"{job['job'] + flag:30} {job['next'] or '-':27} {last.get('name') or '-':40} {outcome}")
    return 0

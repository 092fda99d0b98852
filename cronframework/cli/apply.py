"""`cronframework apply PATH... --zk ...`: show the diff against the applied specs, then write it (apply.py).

Only a ZooKeeper cluster takes applied specs: the embedded scheduler's jobs are the files given to `run`, which
replaces the stored specs with them at every start, so an apply into its state dir would be silently undone (or,
while it runs, never scheduled). That is refused with the way to change its jobs instead.
"""

from __future__ import annotations

import argparse

from cronframework.catalog.apply import apply_diff, diff_specs
from cronframework.cli.common import add_store_args, command, open_store, state_dir, uses_zookeeper
from cronframework.errors import CronframeworkError
from cronframework.spec.files import load_jobs
from cronframework.store.sqlite import SqliteStore


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = command(
        sub,
        "apply",
        "write job files to a ZooKeeper cluster (shows the diff first)",
        ["cronframework apply jobs/ --zk zk1:2181 --dry-run", "cronframework apply jobs/ --zk zk1:2181 --prune"],
    )
    parser.add_argument("paths", nargs="+", metavar="PATH")
    add_store_args(parser)
    parser.add_argument("--prune", action="store_true", help="delete applied jobs missing from the files")
    parser.add_argument("--dry-run", action="store_true", help="show the diff, write nothing")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    specs = [loaded.spec for loaded in load_jobs(args.paths)]  # all validation before any write
    if not uses_zookeeper(args):
        raise CronframeworkError(embedded_refusal(args))
    store = open_store(args)
    try:
        diff = diff_specs(specs, store.read_specs(), prune=args.prune)
        if diff.text:
            print(diff.text)
        summary = f"{len(diff.created)} created, {len(diff.updated)} updated, {len(diff.deleted)} deleted"
        if diff.empty:
            print("no changes")
        elif args.dry_run:
            print(f"dry run: would apply {summary}")
        else:
            apply_diff(store, diff)
            print(f"applied: {summary}")
        return 0
    finally:
        store.close()


def embedded_refusal(args: argparse.Namespace, command: str = "apply") -> str:
    folder = state_dir(args)
    change = "edit the files given to `cronframework run`"
    if not (folder / "state.sqlite").exists():
        return f"{command} writes to a ZooKeeper cluster: pass --zk or --config (embedded jobs: {change})"
    store = SqliteStore(folder / "state.sqlite")
    try:
        holder = store.lock_holder()
    finally:
        store.close()
    if holder is not None:
        return (
            f"a scheduler is running on {folder} ({holder.replica}): its jobs come from its files; "
            f"{change} and send it SIGHUP (or restart it)"
        )
    return (
        f"{folder} is embedded state, and each `cronframework run` replaces its jobs with the files it is given: "
        f"edit those files and start `run` with them ({command} writes to a ZooKeeper cluster: --zk or --config)"
    )

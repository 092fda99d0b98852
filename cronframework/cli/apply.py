"""`cronframework apply PATH... --zk ...`: show the diff against the applied specs, then write it (apply.py)."""

from __future__ import annotations

import argparse

from cronframework.catalog.apply import apply_diff, diff_specs
from cronframework.cli.common import add_store_args, open_store
from cronframework.spec.files import load_jobs


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("apply", help="write job files to the cluster (shows the diff first)")
    parser.add_argument("paths", nargs="+", metavar="PATH")
    add_store_args(parser)
    parser.add_argument("--prune", action="store_true", help="delete applied jobs missing from the files")
    parser.add_argument("--dry-run", action="store_true", help="show the diff, write nothing")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    specs = [loaded.spec for loaded in load_jobs(args.paths)]  # all validation before any write
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

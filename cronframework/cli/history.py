"""`cronframework history JOB [--json] [--limit N]`: launch records, newest first (keys: records.LaunchRecord)."""

from __future__ import annotations

import argparse

from cronframework.cli.common import add_store_args, open_store, print_json


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("history", help="a job's launch records, newest first")
    parser.add_argument("job")
    add_store_args(parser)
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    store = open_store(args)
    try:
        records = store.history(args.job, limit=args.limit)
    finally:
        store.close()
    if args.json:
        print_json([r.to_dict() for r in records])
        return 0
    for r in records:
        outcome = r.outcome.value if r.outcome else r.state.value
        print(f"{r.name:45} {r.scheduled.isoformat():27} {outcome:16} {r.reason or ''}")
    return 0

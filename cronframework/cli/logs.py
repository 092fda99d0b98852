"""`cronframework logs JOB [--launch NAME]`: a launch's output, read through its backend (default: the last one)."""

from __future__ import annotations

import argparse

from cronframework.cli.common import add_store_args, backend_set, open_store
from cronframework.errors import CronframeworkError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("logs", help="print a launch's output")
    parser.add_argument("job")
    parser.add_argument("--launch", default=None, help="launch name (default: the job's latest)")
    add_store_args(parser)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    store = open_store(args)
    try:
        stored = store.read_specs().get(args.job)
        if stored is None:
            raise CronframeworkError(f"unknown job {args.job!r}")
        name = args.launch or next((r.name for r in store.history(args.job, limit=1)), None)
    finally:
        store.close()
    if name is None:
        raise CronframeworkError(f"job {args.job!r} has no launches yet")
    backend = backend_set(args).get(str(stored.document.get("backend", "process")))
    print(backend.logs(name), end="")
    return 0

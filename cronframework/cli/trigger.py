"""`cronframework trigger JOB [--force]`: ask the leader for a manual launch; --force skips the concurrency check."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from cronframework.cli.common import add_store_args, open_store
from cronframework.errors import CronframeworkError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("trigger", help="launch a job now, with its own identity")
    parser.add_argument("job")
    parser.add_argument("--force", action="store_true", help="ignore the job's concurrency policy")
    add_store_args(parser)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    store = open_store(args)
    try:
        if args.job not in store.read_specs():
            raise CronframeworkError(f"unknown job {args.job!r}")
        request = store.request_trigger(args.job, force=args.force, now=datetime.now(UTC).replace(microsecond=0))
    finally:
        store.close()
    print(f"trigger {request.id} requested for {args.job}; the leader launches it within a second")
    return 0

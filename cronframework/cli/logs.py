"""`cronframework logs JOB [--launch NAME]`: a launch's output, read through its backend (default: the last one)."""

from __future__ import annotations

import argparse

from cronframework.abc import ReadStore
from cronframework.cli.common import add_store_args, backend_set, open_store, require_job
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
        stored = require_job(store, args.job)
        name = launch_of(store, args.job, args.launch)
    finally:
        store.close()
    backend = backend_set(args).get(str(stored.document.get("backend", "process")))
    print(backend.logs(name), end="")
    return 0


def launch_of(store: ReadStore, job: str, launch: str | None) -> str:
    """The named launch of the job (it must be recorded), or the job's latest."""
    if launch is None:
        latest = store.history(job, limit=1)
        if not latest:
            raise CronframeworkError(f"job {job!r} has no launches yet")
        return latest[0].name
    record = store.get_launch(launch)
    if record is None or record.job != job:
        raise CronframeworkError(f"job {job!r} has no launch {launch!r} (`cronframework history {job}` lists them)")
    return launch

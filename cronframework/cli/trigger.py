"""`cronframework trigger JOB [--force] [--queue]`: ask the leader for a manual launch; --force skips the
concurrency check.

Refused (exit 1, nothing written) whenever the leader would drop the request or nothing would act on it: an
unknown or disabled job, a stored spec that does not compile, or no scheduler running. `--queue` writes it anyway
when no scheduler runs: the next one to start launches it.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from cronframework.catalog.cache import BrokenSpec, compile_job
from cronframework.cli.common import (
    add_remote_args,
    add_store_args,
    command,
    open_store,
    require_job,
    running_scheduler,
    target,
)
from cronframework.cli.remote import RemoteApi, connect, job_path
from cronframework.errors import CronframeworkError
from cronframework.records import StoredSpec


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = command(
        sub,
        "trigger",
        "launch a job now, with its own identity (the leader launches it within a second)",
        [
            "cronframework trigger nightly-report",
            "cronframework trigger nightly-report --force --addr https://cron1:8461",
        ],
    )
    parser.add_argument("job", metavar="JOB")
    parser.add_argument("--force", action="store_true", help="ignore the job's concurrency policy")
    parser.add_argument(
        "--queue", action="store_true", help="with no scheduler running, leave the request for the next one to start"
    )
    add_store_args(parser)
    add_remote_args(parser)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    remote = connect(args)
    if remote is not None:
        return _through(remote, args)
    store = open_store(args)
    try:
        check_launchable(require_job(store, args.job))
        leader = running_scheduler(store, args)
        if leader is None and not args.queue:
            raise CronframeworkError(
                f"no scheduler is running on {target(args)}, so nothing would launch {args.job} until one starts; "
                "pass --queue to leave the request for it"
            )
        request = store.request_trigger(args.job, force=args.force, now=datetime.now(UTC).replace(microsecond=0))
    finally:
        store.close()
    if leader is None:
        print(f"trigger {request.id} queued for {args.job}; no scheduler is running: the next one to start launches it")
    else:
        print(f"trigger {request.id} requested for {args.job}; the leader ({leader}) launches it within a second")
    return 0


def check_launchable(stored: StoredSpec) -> None:
    """The leader launches a trigger only for a job it schedules: enabled, and with a spec that compiles."""
    try:
        job = compile_job(stored)
    except BrokenSpec as exc:
        raise CronframeworkError(f"job {stored.name!r} has an invalid stored spec ({exc}): not launched") from None
    if not job.spec.enabled:
        raise CronframeworkError(f"job {stored.name!r} is disabled (enabled: false): not launched")


def _through(remote: RemoteApi, args: argparse.Namespace) -> int:
    """The API refuses what the store path refuses (unknown job); the leader it reaches launches it."""
    made = remote.post(job_path(args.job, "trigger"), {"force": True} if args.force else {})
    print(f"trigger {made['trigger']} requested for {args.job} through {remote.url}")
    return 0

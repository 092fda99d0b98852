"""`cronframework delete JOB --zk ...`: remove an applied job from the cluster; its launch records stay.

A version-checked write, like `apply --prune` for one job: a concurrent change to the job fails it. The embedded
scheduler's jobs are the files given to `run`, so a delete there is refused the way `apply` is.
"""

from __future__ import annotations

import argparse

from cronframework.cli.apply import embedded_refusal
from cronframework.cli.common import add_store_args, command, open_store, require_job, uses_zookeeper
from cronframework.errors import CronframeworkError
from cronframework.records import SpecChange


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = command(
        sub,
        "delete",
        "remove an applied job from the cluster (its launch records stay)",
        ["cronframework delete nightly-report --zk zk1:2181"],
    )
    parser.add_argument("job", metavar="JOB")
    add_store_args(parser)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    if not uses_zookeeper(args):
        raise CronframeworkError(embedded_refusal(args, "delete"))
    store = open_store(args)
    try:
        stored = require_job(store, args.job)
        store.write_specs([SpecChange(stored.name, None, stored.version)])
    finally:
        store.close()
    print(f"deleted {args.job}; its launch records stay (`cronframework history {args.job}`)")
    return 0

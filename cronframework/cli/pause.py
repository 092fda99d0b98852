"""`cronframework pause JOB` / `resume JOB`: paused jobs record each due instant as skipped ("paused")."""

from __future__ import annotations

import argparse

from cronframework.cli.common import add_remote_args, add_store_args, command, open_store, require_job
from cronframework.cli.remote import connect, job_path


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for name, paused in (("pause", True), ("resume", False)):
        summary = "pause a job: its due instants are recorded as skipped" if paused else "resume a paused job"
        parser = command(sub, name, summary, [f"cronframework {name} nightly-report --zk zk1:2181"])
        parser.add_argument("job", metavar="JOB")
        add_store_args(parser)
        add_remote_args(parser)
        parser.set_defaults(handler=lambda args, p=paused: handle(args, p))


def handle(args: argparse.Namespace, paused: bool) -> int:
    remote = connect(args)
    if remote is not None:
        remote.post(job_path(args.job, "pause" if paused else "resume"))
    else:
        store = open_store(args)
        try:
            require_job(store, args.job)
            store.set_paused(args.job, paused)
        finally:
            store.close()
    print(f"{args.job}: {'paused' if paused else 'resumed'}")
    return 0

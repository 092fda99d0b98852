"""`cronframework pause JOB` / `resume JOB`: paused jobs record each due instant as skipped ("paused")."""

from __future__ import annotations

import argparse

from cronframework.cli.common import add_store_args, open_store, require_job


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for name, paused in (("pause", True), ("resume", False)):
        parser = sub.add_parser(name, help=f"{name} a job")
        parser.add_argument("job")
        add_store_args(parser)
        parser.set_defaults(handler=lambda args, p=paused: handle(args, p))


def handle(args: argparse.Namespace, paused: bool) -> int:
    store = open_store(args)
    try:
        require_job(store, args.job)
        store.set_paused(args.job, paused)
    finally:
        store.close()
    print(f"{args.job}: {'paused' if paused else 'resumed'}")
    return 0

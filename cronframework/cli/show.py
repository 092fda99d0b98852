"""`cronframework show JOB [-o yaml|json]`: the spec as applied, read from the state store.

YAML is a job file (`job: {NAME: ...}`) that `apply` takes back as it is; JSON is the stored document. The task is
shown (command, environment): this reads the store, which only operators with store access can. The HTTP API never
returns it.
"""

from __future__ import annotations

import argparse
import sys

import yaml

from cronframework.cli.common import add_store_args, command, open_store, print_json, require_job


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = command(
        sub,
        "show",
        "print a job's spec as applied (a job file apply takes back)",
        ["cronframework show nightly-report --zk zk1:2181", "cronframework show nightly-report > nightly-report.yaml"],
    )
    parser.add_argument("job", metavar="JOB")
    add_store_args(parser)
    parser.add_argument("-o", "--output", choices=("yaml", "json"), default="yaml", help="output format")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    store = open_store(args)
    try:
        stored = require_job(store, args.job)
    finally:
        store.close()
    if args.output == "json":
        print_json(dict(stored.document))
        return 0
    print(f"# {stored.name}, as applied (version {stored.version})")
    yaml.safe_dump({"job": {stored.name: dict(stored.document)}}, sys.stdout, sort_keys=False)
    return 0

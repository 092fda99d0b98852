"""`cronframework validate PATH...`: check job files; every error on stderr, a one-line summary when valid."""

from __future__ import annotations

import argparse

from cronframework.cli.common import command
from cronframework.spec.files import load_jobs


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = command(
        sub,
        "validate",
        "check job files and report every error with its file, line and column",
        ["cronframework validate jobs/", "cronframework validate nightly.yaml hourly.yaml"],
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="job files or directories (*.yaml, *.yml)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    jobs = load_jobs(args.paths)  # SpecErrors -> every line on stderr, exit 1 (cli.main)
    files = len({job.file for job in jobs})  # every file read holds at least one job, or it is an error
    print(f"{_plural(files, 'file')}, {_plural(len(jobs), 'job')}: valid")
    return 0


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"

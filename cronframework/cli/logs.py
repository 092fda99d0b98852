"""`cronframework logs JOB [--launch NAME] [-f]`: a launch's output, read through its backend (default: the job's
latest launch); `-f` keeps printing what it adds until the launch ends.

With --addr the output comes from a replica's API (`GET /v1/jobs/{job}/launches/{launch}/logs`, which always needs
the token: what a job prints may hold what its task was given).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Protocol

from cronframework.abc import ReadStore
from cronframework.adapters import BackendSet
from cronframework.cli.common import add_remote_args, add_store_args, backend_set, command, open_store, require_job
from cronframework.cli.remote import RemoteApi, connect, job_path
from cronframework.errors import CronframeworkError

ACTIVE = ("pending", "running")


class Source(Protocol):
    def latest(self) -> str: ...

    def logs(self, launch: str) -> str: ...

    def running(self, launch: str) -> bool:
        """Not finished yet: its record is still open, or its backend runs it."""
        ...


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = command(
        sub,
        "logs",
        "print a launch's output (default: the job's latest launch); -f follows it until it ends",
        [
            "cronframework logs nightly-report",
            "cronframework logs nightly-report -f --launch nightly-report-20261125t013000z",
        ],
    )
    parser.add_argument("job", metavar="JOB")
    parser.add_argument("--launch", default=None, metavar="NAME", help="launch name (default: the job's latest)")
    parser.add_argument("-f", "--follow", action="store_true", help="keep printing the output until the launch ends")
    parser.add_argument("--interval", type=float, default=1.0, metavar="SECONDS", help="how often -f looks (1s)")
    add_store_args(parser)
    add_remote_args(parser)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    remote = connect(args)
    source: Source = _Remote(remote, args.job) if remote is not None else _Local(args)
    try:
        name = args.launch or source.latest()
        if not args.follow:
            print(source.logs(name), end="")
            return 0
        follow(source, name, time.sleep, args.interval)
        return 0
    finally:
        if isinstance(source, _Local):
            source.close()


def follow(source: Source, launch: str, sleep: Callable[[float], None], interval: float) -> None:
    """Print the output as it grows; the state is read before the output, so the last read has all of it."""
    shown = ""
    while True:
        active = source.running(launch)
        text = source.logs(launch)
        sys.stdout.write(added(shown, text))
        sys.stdout.flush()
        shown = text
        if not active:
            return
        sleep(interval)


def added(shown: str, text: str) -> str:
    """What `text` has beyond what was shown. A backend that returns stdout then stderr can change the middle:
    everything after the common beginning is new then."""
    common = 0
    for old, new in zip(shown, text, strict=False):
        if old != new:
            break
        common += 1
    return text[common:]


class _Local:
    def __init__(self, args: argparse.Namespace) -> None:
        self.job = args.job
        self.store = open_store(args)
        try:
            stored = require_job(self.store, args.job)
        except CronframeworkError:
            self.store.close()
            raise
        self.backends: BackendSet = backend_set(args)
        self.backend = self.backends.get(str(stored.document.get("backend", "process")))

    def latest(self) -> str:
        return latest_launch(self.store, self.job)

    def logs(self, launch: str) -> str:
        launch_of(self.store, self.job, launch)
        return self.backend.logs(launch)

    def running(self, launch: str) -> bool:
        record = self.store.get_launch(launch)
        if record is not None and record.open:
            return True
        status = self.backend.lookup(launch)
        return status is not None and status.state.active

    def close(self) -> None:
        self.store.close()
        self.backends.close()


class _Remote:
    def __init__(self, api: RemoteApi, job: str) -> None:
        self.api, self.job = api, job

    def latest(self) -> str:
        records = self.api.get(job_path(self.job, "history"), limit=1)
        if not records:
            raise CronframeworkError(f"job {self.job!r} has no launches yet")
        return str(records[0]["name"])

    def logs(self, launch: str) -> str:
        return self.api.text(job_path(self.job, "launches", launch, "logs"))

    def running(self, launch: str) -> bool:
        record = self.api.get(job_path(self.job, "launches", launch))
        lookup = record.get("lookup") or {}
        return bool(record["state"] == "begun" or (not record.get("result") and lookup.get("state") in ACTIVE))


def latest_launch(store: ReadStore, job: str) -> str:
    latest = store.history(job, limit=1)
    if not latest:
        raise CronframeworkError(f"job {job!r} has no launches yet")
    return latest[0].name


def launch_of(store: ReadStore, job: str, launch: str | None) -> str:
    """The named launch of the job (it must be recorded), or the job's latest."""
    if launch is None:
        return latest_launch(store, job)
    record = store.get_launch(launch)
    if record is None or record.job != job:
        raise CronframeworkError(f"job {job!r} has no launch {launch!r} (`cronframework history {job}` lists them)")
    return launch

"""`cronframework plan PATH...`: the next launches of each job, in its zone and in UTC, with launch names.

Nothing is contacted: this is the schedule engine applied to the files, so it answers "when will this run
and what will the launch be called" before anything is deployed. Disabled jobs launch nothing: the table
lists them as disabled and `--json` leaves them out.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from cronframework.cli.common import command
from cronframework.clock import SystemClock
from cronframework.ops.upcoming import UpcomingLaunch, upcoming
from cronframework.schedule.expression import parse_schedule
from cronframework.spec.files import LoadedJob, did_you_mean, load_jobs

USAGE_ERROR = 2


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = command(
        sub,
        "plan",
        "show the next launches of each job in its zone and in UTC, with launch names (nothing is contacted)",
        [
            "cronframework plan jobs/",
            "cronframework plan jobs/ --job nightly-report --count 10 --from 2026-03-29T00:00:00Z",
        ],
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="job files or directories (*.yaml, *.yml)")
    parser.add_argument("--job", action="append", metavar="NAME", help="only this job (repeatable)")
    parser.add_argument(
        "--from",
        dest="start",
        metavar="ISO8601",
        help="launches at or after this instant (default: now; without an offset it is UTC)",
    )
    parser.add_argument("--count", type=int, default=5, metavar="N", help="launches per job (default 5)")
    parser.add_argument("--json", action="store_true", help="a JSON list of launches")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    try:
        start = parse_start(args.start) if args.start else SystemClock().now()
        if args.count < 1:
            raise ValueError(f"--count must be at least 1, got {args.count}")
    except ValueError as exc:
        return _usage_error(str(exc))
    jobs = load_jobs(args.paths)
    try:
        jobs = select_jobs(jobs, args.job)
    except LookupError as exc:
        return _usage_error(str(exc.args[0]))
    plans = [(job, plan_for(job, start, args.count)) for job in jobs]
    if args.json:
        print(json.dumps([launch.as_json() for _, launches in plans for launch in launches], indent=2))
    else:
        print(render_table(plans))
    return 0


def parse_start(text: str) -> datetime:
    """ISO 8601; 'Z' and offsets accepted; a naive instant is taken as UTC."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--from: {text!r} is not an ISO 8601 instant (e.g. 2026-11-25T06:30:00Z)") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def select_jobs(jobs: list[LoadedJob], names: Sequence[str] | None) -> list[LoadedJob]:
    if not names:
        return jobs
    known = [job.spec.name for job in jobs]
    for name in names:
        if name not in known:
            raise LookupError(f"--job: no job {name!r} in the given files{did_you_mean(name, known)}")
    return [job for job in jobs if job.spec.name in names]


def plan_for(job: LoadedJob, start: datetime, count: int) -> list[UpcomingLaunch]:
    """The first `count` launches at or after `start`; none for a disabled job."""
    spec = job.spec
    schedule = parse_schedule(spec.schedule, job=spec.name, timezone=spec.timezone, dst=spec.dst)
    # launches are whole seconds, so "strictly after start - 1us" is "at or after start"
    return upcoming(spec, schedule, start - timedelta(microseconds=1), count)


def render_table(plans: list[tuple[LoadedJob, list[UpcomingLaunch]]]) -> str:
    headers = ("JOB", "SCHEDULED (JOB'S ZONE)", "UTC", "LAUNCH NAME")
    rows: list[tuple[str, ...]] = []
    notes: list[str] = []
    for job, launches in plans:
        spec = job.spec
        if not spec.enabled:
            rows.append((spec.name, "disabled: no launches", "", ""))
        for launch in launches:
            utc = launch.scheduled.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
            local = f"{launch.scheduled:%Y-%m-%d %H:%M:%S %Z} ({spec.timezone})"
            rows.append((spec.name, local, utc, launch.name))
        if launches and "?" in spec.schedule:
            notes.append(f"{spec.name}: schedule {spec.schedule!r} resolves to {launches[0].resolved!r}")
    return "\n".join([_format_rows([headers, *rows]), *notes])


def _format_rows(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def _usage_error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return USAGE_ERROR

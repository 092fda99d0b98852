"""Next-launch computation for many jobs: `python -m benchmarks.bench_schedule [--jobs N]`.

Parses N jobs with mixed schedules and zones, then times one `next_after` per job from a common instant
(a dispatcher's start-up) and a second pass from each job's own launch (the steady state).
Figures, not asserts.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import UTC, datetime

from cronframework.schedule.expression import Schedule, parse_schedule

EXPRESSIONS = [
    "*/5 * * * *",
    "? ? * * *",
    "0 9 * * MON-FRI",
    "30 1 * * *",
    "30 2 * * *",
    "0 0 1 * *",
    "*/15 * * * * *",
    "0 0 13 * 5",
    "@hourly",
    "@daily",
    "@every 90s",
    "0 0 29 2 *",
    "0,30 8-18 * JAN-JUN *",
    "0 0 L * *",
]
ZONES = [
    "UTC",
    "America/New_York",
    "Europe/Berlin",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "America/Sao_Paulo",
]


def build(jobs: int) -> list[Schedule]:
    return [
        parse_schedule(EXPRESSIONS[i % len(EXPRESSIONS)], job=f"job-{i}", timezone=ZONES[i % len(ZONES) - 1])
        for i in range(jobs)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=100_000)
    args = parser.parse_args()
    started = time.perf_counter()
    schedules = build(args.jobs)
    parse_seconds = time.perf_counter() - started
    now = datetime(2024, 11, 2, 23, 59, 30, tzinfo=UTC)  # hours before New York's fall-back
    started = time.perf_counter()
    launches = [s.next_after(now) for s in schedules]
    first_seconds = time.perf_counter() - started
    started = time.perf_counter()
    for schedule, launch in zip(schedules, launches, strict=True):
        schedule.next_after(launch)
    steady_seconds = time.perf_counter() - started
    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} cpus")
    print(f"python: {platform.python_version()}")
    print(f"jobs: {args.jobs}")
    for label, seconds in (
        ("parse", parse_seconds),
        ("next_after (first)", first_seconds),
        ("next_after (steady)", steady_seconds),
    ):
        print(f"{label}: {seconds:.3f} s, {seconds / args.jobs * 1e6:.1f} µs/job")


if __name__ == "__main__":
    main()

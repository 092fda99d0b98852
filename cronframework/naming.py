"""The naming contract: launch identity (job + scheduled UTC instant) <-> deterministic backend name.

This string is how a new leader finds what an old one launched, so it is a compatibility promise: it never changes
between releases, and `tests/test_naming.py` pins exact strings. Format (docs/design.md, "Naming contract"):

    scheduled launch:  <job>-<YYYYMMDD>t<HHMMSS>z        e.g. nightly-report-20261125t063000z
    manual trigger:    <job>-<YYYYMMDD>t<HHMMSS>z-m      (the trigger instant, to the second)
    retry (`retry:`):  either of the above + -a<N>        e.g. nightly-report-20261125t063000z-a2 (N from 2 up)

Job names match JOB_NAME_PATTERN (lowercase DNS-label style, at most 63 characters), so every launch name is a
valid Nomad job ID, Docker container name and znode name. The timestamp suffix has a fixed width, so the mapping is
injective and `parse_launch_name` inverts it exactly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property, lru_cache

JOB_NAME_MAX = 63
JOB_NAME_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9_.-]{0,61}[a-z0-9])?$")
_STAMP = "%Y%m%dt%H%M%Sz"
_NAME_PATTERN = re.compile(r"^(?P<job>.+)-(?P<stamp>\d{8}t\d{6}z)(?P<manual>-m)?(?:-a(?P<attempt>[1-9]\d*))?$")
MAX_TASK_ATTEMPT = 100  # `retry.attempts` at most: "-a100" keeps every launch name a valid backend ID


def job_name_problem(name: str) -> str | None:
    """Why `name` cannot be a job name (None when it can). Used by spec validation for a precise message."""
    if not name:
        return "job name is empty"
    if len(name) > JOB_NAME_MAX:
        return f"job name is {len(name)} characters; at most {JOB_NAME_MAX} keep launch names valid backend IDs"
    if not JOB_NAME_PATTERN.match(name):
        return (
            "job name must be lowercase letters, digits, '-', '_' or '.', start and end with a letter or digit "
            "(it becomes part of Nomad job IDs and Docker container names)"
        )
    return None


@dataclass(frozen=True, order=True)
class LaunchIdentity:
    """Who a launch is: a job and the instant it was scheduled for (UTC, whole seconds); `attempt` numbers the runs
    of one launch that `retry:` starts (1: the launch itself)."""

    job: str
    scheduled: datetime
    manual: bool = False
    attempt: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.attempt <= MAX_TASK_ATTEMPT:
            raise ValueError(f"attempt must be 1..{MAX_TASK_ATTEMPT}, not {self.attempt}")
        scheduled = self.scheduled
        if scheduled.tzinfo is UTC and not scheduled.microsecond:
            return  # already normal: every instant the schedule math hands out
        if scheduled.tzinfo is None:
            raise ValueError("scheduled instant must be timezone-aware")
        object.__setattr__(self, "scheduled", scheduled.astimezone(UTC).replace(microsecond=0))

    @cached_property
    def name(self) -> str:  # asked for several times per launch, by every launch of a herd
        return launch_name(self.job, self.scheduled, manual=self.manual, attempt=self.attempt)

    def retry(self, attempt: int) -> LaunchIdentity:
        """The same launch's run number `attempt` (its own backend name)."""
        return LaunchIdentity(self.job, self.scheduled, manual=self.manual, attempt=attempt)


def launch_name(job: str, scheduled: datetime, *, manual: bool = False, attempt: int = 1) -> str:
    """The backend name for a launch; see the module docstring for the contract."""
    return f"{job}-{_stamp(scheduled)}{'-m' if manual else ''}{f'-a{attempt}' if attempt > 1 else ''}"


@lru_cache(maxsize=64)
def _stamp(scheduled: datetime) -> str:
    """The same few instants come up for every job of a herd. Kept to about an hour of minutes: 1024 instants, a
    new one each minute, held ~250 KB in a leader after a day (benchmarks/bench_memory.py)."""
    return scheduled.astimezone(UTC).strftime(_STAMP)


def parse_launch_name(name: str) -> LaunchIdentity:
    """Invert `launch_name`; raises ValueError for a string that is not a launch name."""
    match = _NAME_PATTERN.match(name)
    if not match or job_name_problem(match.group("job")):
        raise ValueError(f"not a cronframework launch name: {name!r}")
    scheduled = datetime.strptime(match.group("stamp"), _STAMP).replace(tzinfo=UTC)
    attempt = int(match.group("attempt") or 1)
    if (attempt == 1 and match.group("attempt")) or attempt > MAX_TASK_ATTEMPT:
        raise ValueError(f"not a cronframework launch name: {name!r}")  # "-a1" is never written: one name each
    return LaunchIdentity(match.group("job"), scheduled, manual=bool(match.group("manual")), attempt=attempt)

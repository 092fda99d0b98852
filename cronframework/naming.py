"""The naming contract: launch identity (job + scheduled UTC instant) <-> deterministic backend name.

This string is how a new leader finds what an old one launched, so it is a compatibility promise: it never changes
between releases, and `tests/test_naming.py` pins exact strings. Format (docs/design.md, "Naming contract"):

    scheduled launch:  <job>-<YYYYMMDD>t<HHMMSS>z        e.g. nightly-report-20261125t063000z
    manual trigger:    <job>-<YYYYMMDD>t<HHMMSS>z-m      (the trigger instant, to the second)

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
_NAME_PATTERN = re.compile(r"^(?P<job>.+)-(?P<stamp>\d{8}t\d{6}z)(?P<manual>-m)?$")


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
    """Who a launch is: a job and the instant it was scheduled for (UTC, whole seconds)."""

    job: str
    scheduled: datetime
    manual: bool = False

    def __post_init__(self) -> None:
        scheduled = self.scheduled
        if scheduled.tzinfo is UTC and not scheduled.microsecond:
            return  # already normal: every instant the schedule math hands out
        if scheduled.tzinfo is None:
            raise ValueError("scheduled instant must be timezone-aware")
        object.__setattr__(self, "scheduled", scheduled.astimezone(UTC).replace(microsecond=0))

    @cached_property
    def name(self) -> str:  # asked for several times per launch, by every launch of a herd
        return launch_name(self.job, self.scheduled, manual=self.manual)


def launch_name(job: str, scheduled: datetime, *, manual: bool = False) -> str:
    """The backend name for a launch; see the module docstring for the contract."""
    return f"{job}-{_stamp(scheduled)}{'-m' if manual else ''}"


@lru_cache(maxsize=1024)
def _stamp(scheduled: datetime) -> str:
    """The same few instants come up for every job of a herd."""
    return scheduled.astimezone(UTC).strftime(_STAMP)


def parse_launch_name(name: str) -> LaunchIdentity:
    """Invert `launch_name`; raises ValueError for a string that is not a launch name."""
    match = _NAME_PATTERN.match(name)
    if not match or job_name_problem(match.group("job")):
        raise ValueError(f"not a cronframework launch name: {name!r}")
    scheduled = datetime.strptime(match.group("stamp"), _STAMP).replace(tzinfo=UTC)
    return LaunchIdentity(match.group("job"), scheduled, manual=bool(match.group("manual")))

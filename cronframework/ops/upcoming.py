"""A job's next launches as operators read them (`plan`, the API, the status page): when, in which zone, what name."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from typing import Any
from zoneinfo import ZoneInfo

from cronframework.naming import launch_name
from cronframework.schedule.expression import Schedule
from cronframework.spec.model import JobSpec


@dataclass(frozen=True)
class UpcomingLaunch:
    job: str
    scheduled: datetime  # in the job's zone
    name: str
    schedule: str
    resolved: str

    def as_json(self) -> dict[str, Any]:
        utc = self.scheduled.astimezone(UTC).isoformat().replace("+00:00", "Z")
        return {
            "job": self.job,
            "scheduled": self.scheduled.isoformat(),
            "utc": utc,
            "name": self.name,
            "schedule": self.schedule,
            "resolved": self.resolved,
        }


def upcoming(spec: JobSpec, schedule: Schedule, after: datetime, count: int) -> list[UpcomingLaunch]:
    """The first `count` launches strictly after `after`; none for a disabled job."""
    if not spec.enabled:
        return []
    zone = ZoneInfo(spec.timezone)
    return [
        UpcomingLaunch(spec.name, at.astimezone(zone), launch_name(spec.name, at), spec.schedule, schedule.resolved)
        for at in islice(schedule.iter_after(after), max(count, 0))
    ]

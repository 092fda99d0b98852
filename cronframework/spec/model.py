"""The job model: what one job declares, as frozen, validated values.

Only the data contract lives here; `cronframework.spec.files` reads YAML into it and turns pydantic's errors into
`file:line:col: job: field: message` lines. Documented for users in docs/jobs.md.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any, Final
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
    model_validator,
)

from cronframework.naming import MAX_TASK_ATTEMPT, job_name_problem
from cronframework.schedule.dst import RepeatedTime, SkippedTime
from cronframework.schedule.duration import (
    RESOLUTION,
    checked_duration,
    format_duration,
    parse_duration,
    seconds_duration,
)
from cronframework.schedule.expression import (
    parse_schedule,  # the schedule engine validates its own language
)

# The bounds of every number a job takes, in one place (docs/jobs.md, "Bounds"). Durations are whole milliseconds
# up to MAX_DURATION (cronframework.schedule.duration); each duration field also says whether 0 means something.
MAX_CATCHUP_REPLAYS: Final = 10_000
MAX_ATTEMPTS: Final = 100
MAX_RETAINED: Final = 100_000
MAX_WEBHOOKS: Final = 10
MAX_SUSPEND_AFTER: Final = 1000
MAX_CPU: Final = 1024.0
MAX_MEMORY_MIB: Final = 16 * 1024 * 1024  # 16 TiB


def _duration_at_least(least: timedelta) -> Callable[[Any], Any]:
    """The validator of a duration field: a Go-style string or a plain number of seconds, from `least` up."""

    def validate(value: Any) -> Any:
        if isinstance(value, str):
            delta = parse_duration(value)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            delta = seconds_duration(value)
        elif isinstance(value, timedelta):
            delta = checked_duration(value)
        else:
            return value  # pydantic reports the type
        if delta < least:
            raise ValueError(f"must be at least {format_duration(least)}, got {value!r}")
        return delta

    return validate


_AS_TEXT = PlainSerializer(format_duration, return_type=str)
Duration = Annotated[timedelta, BeforeValidator(_duration_at_least(timedelta(0))), _AS_TEXT]
"""0 up to MAX_DURATION."""
PositiveDuration = Annotated[timedelta, BeforeValidator(_duration_at_least(RESOLUTION)), _AS_TEXT]
"""1ms up to MAX_DURATION: for fields where 0 would mean nothing (a timeout that has always passed)."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class Concurrency(StrEnum):
    ALLOW = "allow"
    FORBID = "forbid"
    REPLACE = "replace"


class CatchupPolicy(StrEnum):
    NONE = "none"
    LATEST = "latest"
    ALL = "all"


class OnUncertain(StrEnum):
    SKIP = "skip"
    RELAUNCH = "relaunch"


class Resources(_Frozen):
    cpu: float | None = Field(default=None, gt=0, le=MAX_CPU, description="CPU cores (0.5 = half a core)")
    memory: int | None = Field(default=None, gt=0, le=MAX_MEMORY_MIB, description="memory limit in MiB")


class Mount(_Frozen):
    source: str
    target: str
    read_only: bool = True


class Task(_Frozen):
    image: str | None = None
    command: list[str] | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    workdir: str | None = None
    user: str | None = None
    resources: Resources = Resources()
    timeout: PositiveDuration | None = Field(default=None, description="run-time limit; past it the launch is stopped")
    network: str | None = None
    mounts: list[Mount] = Field(default_factory=list)

    @model_validator(mode="after")
    def _needs_something_to_run(self) -> Task:
        if not self.image and not self.command:
            raise ValueError("a task needs an image or a command")
        return self


class Catchup(_Frozen):
    policy: CatchupPolicy = CatchupPolicy.NONE
    window: PositiveDuration = timedelta(hours=1)
    max: int = Field(
        default=10, ge=1, le=MAX_CATCHUP_REPLAYS, description="replayed at most; the rest are recorded skipped"
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"policy": value} if isinstance(value, str) else value


class Retries(_Frozen):
    """`retries:`: how often one submit is tried again on a transient backend error (not `retry:`)."""

    attempts: int = Field(default=3, ge=1, le=MAX_ATTEMPTS)
    backoff: PositiveDuration = timedelta(seconds=1)
    max_backoff: PositiveDuration = timedelta(seconds=30)


class RetryOn(StrEnum):
    """The task results `retry.on` may name (records.TaskResult but success)."""

    FAILED = "failed"
    TIMED_OUT = "timed_out"
    LOST = "lost"


class Retry(_Frozen):
    """`retry:`: run a launch again, as a new backend object `<launch>-a<N>`, when its task ends as `on` says."""

    attempts: int = Field(default=3, ge=1, le=MAX_TASK_ATTEMPT, description="runs in all, the first included")
    backoff: PositiveDuration = timedelta(seconds=30)
    max_backoff: PositiveDuration = timedelta(minutes=10)
    on: tuple[RetryOn, ...] = Field(default=tuple(RetryOn), min_length=1)
    past_next: bool = Field(default=False, description="a retry may start after the job's next instant")

    @model_validator(mode="after")
    def _consistent(self) -> Retry:
        if len(set(self.on)) != len(self.on):
            raise ValueError("retry.on names a result twice")
        if self.max_backoff < self.backoff:
            raise ValueError(
                f"retry.max_backoff ({format_duration(self.max_backoff)}) is shorter than retry.backoff "
                f"({format_duration(self.backoff)})"
            )
        return self

    def delay(self, attempt: int) -> timedelta:
        """The wait before run `attempt + 1`, after run `attempt` ended: backoff, doubled each time, capped."""
        try:
            delay: timedelta = min(self.backoff * (2 ** (attempt - 1)), self.max_backoff)
        except OverflowError:  # past any duration a timedelta holds: far past the cap
            return self.max_backoff
        return delay


class NotifyEvent(StrEnum):
    """What a webhook may be told about (docs/jobs.md, "Notifications")."""

    FAILED = "failed"  # a final failed, timed_out or lost result (no retry to come)
    SUCCEEDED = "succeeded"
    RECOVERED = "recovered"  # a success after failed results
    MISSED = "missed"  # an instant recorded skipped because no leader ran it in time (missed, stale)
    SKIPPED = "skipped"  # an instant recorded skipped for another reason (concurrency, uncertain ...); not paused
    OVERDUE = "overdue"  # no success within `expect.success_within`
    FAILED_TO_LAUNCH = "failed_to_launch"


DEFAULT_EVENTS = (NotifyEvent.FAILED, NotifyEvent.RECOVERED, NotifyEvent.OVERDUE, NotifyEvent.FAILED_TO_LAUNCH)


class Webhook(_Frozen):
    """`notify:` item: a URL POSTed a JSON body, signed with HMAC-SHA256 under a secret read from the scheduler's
    environment (`secret_env`) or a file (`secret_file`)."""

    url: str
    events: tuple[NotifyEvent, ...] = Field(default=DEFAULT_EVENTS, min_length=1)
    secret_env: str | None = None
    secret_file: str | None = None

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"must be an http:// or https:// URL with a host, got {value!r}")
        return value

    @model_validator(mode="after")
    def _one_secret(self) -> Webhook:
        if (self.secret_env is None) == (self.secret_file is None):
            raise ValueError("needs its signing secret: set exactly one of secret_env and secret_file")
        if len(set(self.events)) != len(self.events):
            raise ValueError("events names an event twice")
        return self


class Expect(_Frozen):
    """`expect:` what the job promises; broken, it raises `overdue`."""

    success_within: PositiveDuration = Field(description="overdue when the job has not succeeded for this long")


class Retention(_Frozen):
    count: int = Field(default=100, ge=1, le=MAX_RETAINED)
    age: PositiveDuration = timedelta(days=30)


class DstPolicy(_Frozen):
    skipped: SkippedTime = SkippedTime.SHIFT
    repeated: RepeatedTime = RepeatedTime.FIRST


class JobSpec(_Frozen):
    name: str
    schedule: str
    timezone: str = "UTC"
    backend: str = "process"
    enabled: bool = True
    task: Task
    concurrency: Concurrency = Concurrency.ALLOW
    catchup: Catchup = Catchup()
    on_uncertain: OnUncertain = OnUncertain.SKIP
    recovery_window: Duration = Field(
        default=timedelta(hours=1),
        description="open launches younger than this are resubmitted when the backend has no record of them; "
        "keep it below the backend's own GC horizon",
    )
    retries: Retries = Retries()
    retry: Retry | None = None
    notify: tuple[Webhook, ...] = Field(default=(), max_length=MAX_WEBHOOKS)
    expect: Expect | None = None
    suspend_after_failures: int | None = Field(default=None, ge=1, le=MAX_SUSPEND_AFTER)
    retention: Retention = Retention()
    dst: DstPolicy = DstPolicy()
    labels: dict[str, str] = Field(default_factory=dict)
    meta: dict[str, str] = Field(default_factory=dict)
    nomad: dict[str, Any] = Field(default_factory=dict)
    docker: dict[str, Any] = Field(default_factory=dict)
    process: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        problem = job_name_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r}") from None
        return value

    @model_validator(mode="after")
    def _schedule_parses(self) -> JobSpec:
        parse_schedule(self.schedule, job=self.name, timezone=self.timezone, dst=self.dst)
        return self

    def backend_options(self) -> dict[str, Any]:
        """The backend-specific block for the backend this job runs on, merged into what that backend receives."""
        block = getattr(self, self.backend, None)
        return dict(block) if isinstance(block, dict) else {}


BACKEND_BLOCKS = ("nomad", "docker", "process")

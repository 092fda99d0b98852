"""The API's bodies as pydantic models: every JSON response is validated and serialised through one of them, and the
OpenAPI document is generated from the same classes, so the document cannot drift from what is sent.

Times are strings exactly as the status document and launch records write them (ISO 8601 with an offset), not
re-rendered. The documents that grow (a job, a launch record, a replica, a launch's result) accept keys beyond the
documented ones and pass them through: a key added to the status document reaches API clients unchanged.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, TypeAdapter

Time = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
JobState = Literal["enabled", "disabled", "paused", "broken"]
RecordState = Literal["begun", "finished"]


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Open(BaseModel):
    """A document that may carry more keys than documented (they pass through)."""

    model_config = ConfigDict(extra="allow")


class Error(_Closed):
    error: str


TaskResult = Literal["succeeded", "failed", "timed_out", "lost"]


class BackendView(_Open):
    """What the backend says about a launch whose result is still to come: pending, running, succeeded, failed,
    lost; unknown or not_found."""

    state: str
    exit_code: int | None = None
    reason: str | None = None


class LastLaunch(_Open):
    """`outcome` says whether the launch started (sync point two); `result` how its task ended, once it did."""

    name: str
    scheduled: Time
    state: RecordState
    outcome: str | None
    reason: str | None
    result: TaskResult | None = None
    exit_code: int | None = None
    result_reason: str | None = None
    started_at: Time | None = None
    ended_at: Time | None = None
    duration: float | None = None
    task_attempt: int | None = None
    lookup: BackendView | None = None


class RecentRun(_Open):
    launch: str
    result: TaskResult
    ended_at: Time | None = None
    duration: float | None = None


class Job(_Open):
    job: str
    enabled: bool
    paused: bool
    state: JobState
    problem: str | None
    next: Time | None
    last_launch: LastLaunch | None
    last_success: Time | None = None
    last_failure: Time | None = None
    failures: int = 0
    recent: list[RecentRun] = Field(default_factory=list)
    overdue_since: Time | None = None
    suspended: str | None = None


class Undeliverable(_Open):
    job: str
    event: str
    key: str
    url: str
    attempts: int
    error: str | None = None
    created_at: Time


class Notifications(_Open):
    pending: int
    undeliverable: int
    recent_undeliverable: list[Undeliverable] = Field(default_factory=list)


class Replica(_Open):
    replica: str
    api: str | None = None
    epoch: int | None = None
    host: str | None = None
    pid: int | None = None
    started: str | None = None
    node: str | None = None


class Page(_Closed):
    """Where this answer sits in the filtered list: `total` jobs, `matched` by the filters, the next page's cursor."""

    total: int
    matched: int
    limit: int | None
    next_after: str | None = Field(description="pass as `after` for the next page; null on the last one")


class Status(_Open):
    leader: Replica | None
    stale: bool
    replicas: list[Replica]
    takeover: dict[str, Any] | None
    jobs: list[Job]
    page: Page | None = None
    notifications: Notifications | None = None


class PlannedLaunch(_Closed):
    job: str
    scheduled: Time
    utc: Time
    name: str
    schedule: str
    resolved: str


class JobDetail(Job):
    schedule: str
    timezone: str
    backend: str
    concurrency: str
    resolved: str
    next_launches: list[PlannedLaunch]


class LaunchRecord(_Open):
    name: str
    job: str
    scheduled: Time
    state: RecordState
    manual: bool
    outcome: str | None
    reason: str | None
    leader: str
    epoch: int
    attempt: int
    begun_at: Time | None
    finished_at: Time | None
    backend_state: str | None
    exit_code: int | None
    result: TaskResult | None = None
    result_reason: str | None = None
    started_at: Time | None = None
    ended_at: Time | None = None
    duration: float | None = None
    task_attempt: int = 1
    retry_at: Time | None = None
    lookup: BackendView | None = None


History = TypeAdapter(list[LaunchRecord])


class Leader(_Closed):
    leader: Replica | None
    takeover: dict[str, Any] | None


class Replicas(_Closed):
    replicas: list[Replica]


class TriggerBody(BaseModel):
    """Optional; `?force=true` in the query does the same."""

    force: StrictBool | None = Field(default=None, description="launch whatever the job's concurrency policy says")


class TriggerAccepted(_Closed):
    trigger: str
    job: str
    force: bool
    requested_at: Time


class PauseState(_Closed):
    job: str
    paused: bool


class Health(_Closed):
    status: Literal["ok"]
    replica: str


class Ready(_Closed):
    ready: bool
    reason: str
    leader: bool
    replica: str

"""What the state store holds: launch records and per-job schedule state, with their compact JSON form.

The JSON keys are the stable keys of `status --json` / `history --json` (docs/design.md, "Records").
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any

from cronframework.errors import StateStoreError
from cronframework.naming import LaunchIdentity


class RecordState(StrEnum):
    BEGUN = "begun"  # sync point one passed: the backend may or may not have been called
    FINISHED = "finished"  # sync point two passed: the outcome is final


class Outcome(StrEnum):
    SUBMITTED = "submitted"
    ALREADY_EXISTED = "already_existed"
    FAILED = "failed_to_launch"
    SKIPPED = "skipped"

    @property
    def launched(self) -> bool:
        """The backend has the launch: its task's result is followed."""
        return self is Outcome.SUBMITTED or self is Outcome.ALREADY_EXISTED


class TaskResult(StrEnum):
    """How a launched task ended, as its backend reported it (the `result` key)."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"  # exited non-zero, could not start, or was stopped
    TIMED_OUT = "timed_out"  # stopped past `task.timeout`
    LOST = "lost"  # the backend lost it (node gone, supervisor died) or no longer knows it


# one encoder for every record: json.dumps builds a new one per call when given separators
_encode = json.JSONEncoder(separators=(",", ":")).encode
_PLAIN = re.compile(r"[ !#-\[\]-~]*").fullmatch  # printable ASCII but '"' and '\\': JSON needs no escape


def _jstr(text: str) -> str:
    """A JSON string literal, as json's encoder writes it."""
    return f'"{text}"' if _PLAIN(text) else _encode(text)


def _iso(value: datetime | None) -> str | None:
    if not value:
        return None
    return _iso_utc(value)


@lru_cache(maxsize=64)
def _iso_utc(value: datetime) -> str:
    """A herd's records share their scheduled instant and, per batch, their begun/finished time; only the latest
    instants come up again (see naming._stamp)."""
    return (value if value.tzinfo is UTC else value.astimezone(UTC)).isoformat()


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@dataclass(frozen=True)
class LaunchRecord:
    name: str
    job: str
    scheduled: datetime
    state: RecordState
    manual: bool = False
    outcome: Outcome | None = None
    reason: str | None = None
    leader: str = ""
    epoch: int = 0
    attempt: int = 1
    begun_at: datetime | None = None
    finished_at: datetime | None = None
    backend_state: str | None = None
    exit_code: int | None = None
    # the task's end, written by the result follower after sync point two (docs/design.md, "Following a launch")
    result: TaskResult | None = None
    result_reason: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    duration: float | None = None  # seconds from started_at to ended_at
    task_attempt: int = 1  # which run of the launch under `retry:` (1: the scheduled one)
    retry_at: datetime | None = None  # a retry of this run is due then, and not yet begun

    @classmethod
    def begin(cls, identity: LaunchIdentity, *, leader: str, epoch: int, now: datetime) -> LaunchRecord:
        return cls(
            name=identity.name,
            job=identity.job,
            scheduled=identity.scheduled,
            manual=identity.manual,
            state=RecordState.BEGUN,
            leader=leader,
            epoch=epoch,
            begun_at=now,
            task_attempt=identity.attempt,
        )

    @property
    def identity(self) -> LaunchIdentity:
        return LaunchIdentity(self.job, self.scheduled, manual=self.manual, attempt=self.task_attempt)

    @property
    def open(self) -> bool:
        return self.state is RecordState.BEGUN

    @property
    def following(self) -> bool:
        """Launched and not concluded: its task's result, or a retry it asked for, is still to come. The store keeps
        such a record listed (with the open ones) so that a new leader follows it on."""
        if self.state is not RecordState.FINISHED or self.outcome is None or not self.outcome.launched:
            return False
        return self.result is None or self.retry_at is not None

    @property
    def concluded(self) -> bool:
        return not self.open and not self.following

    @property
    def word(self) -> str:
        """The record in one word, as a status row shows it: its task's result, else its outcome, else its state."""
        return (self.result or self.outcome or self.state).value

    def with_result(
        self,
        result: TaskResult,
        *,
        reason: str | None = None,
        exit_code: int | None = None,
        started_at: datetime | None = None,
        ended_at: datetime | None = None,
    ) -> LaunchRecord:
        """The record with its task's end written in; `duration` follows from the two instants when both are known."""
        duration = None
        if started_at is not None and ended_at is not None:
            duration = round(max(0.0, (ended_at - started_at).total_seconds()), 3)
        return replace(
            self,
            result=result,
            result_reason=reason or None,
            exit_code=exit_code,
            started_at=started_at,
            ended_at=ended_at,
            duration=duration,
        )

    def finish(
        self, outcome: Outcome, *, now: datetime, reason: str | None = None, attempt: int | None = None, **extra: Any
    ) -> LaunchRecord:
        """The finished form. Copied field by field when only the attempt changes (every launch of a herd): a
        frozen dataclass's `__init__` sets its 21 fields one `object.__setattr__` at a time, and
        `dataclasses.replace` costs more again."""
        if extra:
            attempt = self.attempt if attempt is None else attempt
            return replace(
                self,
                state=RecordState.FINISHED,
                outcome=outcome,
                reason=reason,
                finished_at=now,
                attempt=attempt,
                **extra,
            )
        finished = object.__new__(LaunchRecord)
        fields = finished.__dict__
        fields.update(self.__dict__)
        fields["state"], fields["outcome"], fields["reason"], fields["finished_at"] = (
            RecordState.FINISHED,
            outcome,
            reason,
            now,
        )
        if attempt is not None:
            fields["attempt"] = attempt
        return finished

    def to_dict(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in _record_fields()}  # shallow: every field is a scalar
        out["scheduled"] = _iso(self.scheduled)
        for key in _INSTANTS:
            out[key] = _iso(out[key])
        out["state"] = self.state.value
        out["outcome"] = self.outcome.value if self.outcome else None
        out["result"] = self.result.value if self.result else None
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LaunchRecord:
        """Decoded in one copy of `data` (a status page of 10,000 jobs decodes 10,000 records per request)."""
        fields = dict(data)
        for key in _INSTANTS:
            if key in fields:
                fields[key] = _dt(fields[key])
        scheduled = _dt(data["scheduled"])
        assert scheduled is not None
        fields["scheduled"] = scheduled
        fields["state"] = RecordState(data["state"])
        fields["outcome"] = Outcome(data["outcome"]) if data.get("outcome") else None
        fields["result"] = TaskResult(data["result"]) if data.get("result") else None
        return cls(**fields)

    def to_bytes(self) -> bytes:
        """to_dict() minus empty values, in field order, as compact JSON. Formatted by hand (the same bytes as
        json's encoder, pinned by tests/test_records.py): a 100k herd finishes 100k of these at its instant."""
        out = (
            f'{{"name":{_jstr(self.name)},"job":{_jstr(self.job)},"scheduled":"{_iso_utc(self.scheduled)}",'
            f'"state":"{self.state._value_}","manual":{"true" if self.manual else "false"}'
        )
        if self.outcome:
            out += f',"outcome":"{self.outcome._value_}"'
        if self.reason:
            out += f',"reason":{_jstr(self.reason)}'
        if self.leader:
            out += f',"leader":{_jstr(self.leader)}'
        if self.epoch is not None:
            out += f',"epoch":{int(self.epoch)}'
        if self.attempt is not None:
            out += f',"attempt":{int(self.attempt)}'
        if self.begun_at:
            out += f',"begun_at":"{_iso_utc(self.begun_at)}"'
        if self.finished_at:
            out += f',"finished_at":"{_iso_utc(self.finished_at)}"'
        if self.backend_state:
            out += f',"backend_state":{_jstr(self.backend_state)}'
        if self.exit_code is not None:
            out += f',"exit_code":{int(self.exit_code)}'
        if self.result is not None or self.retry_at is not None or self.task_attempt != 1:
            out += self._result_bytes()
        else:
            out += ',"task_attempt":1'
        return (out + "}").encode()

    def _result_bytes(self) -> str:
        """The keys after `exit_code`, rare enough (a record's result is written once) to go through json."""
        data = self.to_dict()
        keys = ("result", "result_reason", "started_at", "ended_at", "duration", "task_attempt", "retry_at")
        return "".join(f",{_jstr(k)}:{_encode(data[k])}" for k in keys if data[k] is not None and data[k] != "")

    @classmethod
    def from_bytes(cls, raw: bytes) -> LaunchRecord:
        return cls.from_dict(json.loads(raw))


def record_word(raw: bytes) -> str:
    """`LaunchRecord.word` of a stored record without decoding the rest of it: a filter by last result over 10,000
    jobs spent more in building records than in reading them. A record is a flat JSON object, so a key followed by
    `":"` is never inside a string (a quote there is escaped); a record of another shape is decoded."""
    found = dict(_WORD_KEYS.findall(raw))
    word: bytes | None = found.get(b"result") or found.get(b"outcome") or found.get(b"state")
    if word is None:
        data = json.loads(raw)
        return str(data.get("result") or data.get("outcome") or data["state"])
    return word.decode()


_WORD_KEYS = re.compile(rb'"(result|outcome|state)"\s*:\s*"([a-z_]+)"')


def _record_fields() -> tuple[str, ...]:
    """LaunchRecord's field names, computed once: dataclasses.fields() is costly per record."""
    global _RECORD_FIELDS
    if not _RECORD_FIELDS:
        _RECORD_FIELDS = tuple(f.name for f in fields(LaunchRecord))
    return _RECORD_FIELDS


_RECORD_FIELDS: tuple[str, ...] = ()
_INSTANTS = ("begun_at", "finished_at", "started_at", "ended_at", "retry_at")


@dataclass(frozen=True)
class JobState:
    """The leader-owned schedule state of one job: the next instant it will launch."""

    job: str
    next_scheduled: datetime | None = None
    last_launch: str | None = None

    def to_bytes(self) -> bytes:
        following = f'"{_iso_utc(self.next_scheduled)}"' if self.next_scheduled else "null"
        last = _jstr(self.last_launch) if self.last_launch is not None else "null"
        return f'{{"next":{following},"last":{last}}}'.encode()

    @classmethod
    def from_bytes(cls, job: str, raw: bytes) -> JobState:
        """`to_bytes`' own form is read without json (a status page ordered by next launch reads 10,000 states per
        request); any other form, e.g. a string with escapes, goes through json."""
        if found := _STATE_FORM.fullmatch(raw):
            following, last = found.groups()
            return cls(job, _dt(following.decode()) if following else None, None if last is None else last.decode())
        data = json.loads(raw) if raw else {}
        return cls(job=job, next_scheduled=_dt(data.get("next")), last_launch=data.get("last"))


_STATE_FORM = re.compile(rb'\{"next":(?:"([^"\\]+)"|null),"last":(?:"([^"\\]*)"|null)\}')


@dataclass(frozen=True)
class TriggerRequest:
    """An operator's `trigger JOB`: a request the leader turns into a manual launch."""

    id: str
    job: str
    requested_at: datetime
    force: bool = False


class JsonDocument(Mapping[str, Any]):
    """A stored JSON object, decoded when first read. A leader starting over 100k specs validates each from its
    JSON (`catalog.cache.compile_job`, pydantic's JSON mode): decoding them all into dicts first had cost a fifth
    of its start. Not a JSON object: StateStoreError when read."""

    __slots__ = ("_decoded", "_what", "raw")

    def __init__(self, raw: bytes, what: str) -> None:
        self.raw = raw
        self._what = what
        self._decoded: Mapping[str, Any] | None = None

    @property
    def decoded(self) -> bool:
        return self._decoded is not None

    def _value(self) -> Mapping[str, Any]:
        if self._decoded is None:
            try:
                value = json.loads(self.raw)
            except ValueError as exc:
                raise StateStoreError(f"{self._what} is not valid JSON: {exc}") from exc
            if not isinstance(value, dict):
                raise StateStoreError(f"{self._what} is not a JSON object")
            self._decoded = value
        return self._decoded

    def __getitem__(self, key: str) -> Any:
        return self._value()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._value())

    def __len__(self) -> int:
        return len(self._value())

    def __eq__(self, other: object) -> bool:
        return dict(self) == other if isinstance(other, Mapping) else NotImplemented

    def __repr__(self) -> str:
        return repr(dict(self))


@dataclass(frozen=True)
class StoredSpec:
    """A job spec as applied: its JSON document and the version `apply` wrote."""

    name: str
    document: Mapping[str, Any]
    version: int


@dataclass(frozen=True)
class Begin:
    """Sync point one for one launch: the new record, and the job's next scheduled instant after it; a skipped
    instant's notifications (`notices`) are written with it."""

    record: LaunchRecord
    next_state: JobState
    consumed_trigger: str | None = None
    notices: tuple[Notice, ...] = ()


@dataclass(frozen=True)
class SpecChange:
    """One job's change for `apply`: document None deletes. `expected_version` None means "must not exist"."""

    name: str
    document: Mapping[str, Any] | None
    expected_version: int | None


RECENT_RUNS = 10  # the strip of last runs each job's summary keeps (status, API, page)


@dataclass(frozen=True)
class RecentRun:
    """One run in a job's strip of last runs."""

    launch: str
    result: TaskResult
    ended_at: datetime | None = None
    duration: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "launch": self.launch,
            "result": self.result.value,
            "ended_at": _iso(self.ended_at),
            "duration": self.duration,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RecentRun:
        return cls(data["launch"], TaskResult(data["result"]), _dt(data.get("ended_at")), data.get("duration"))


@dataclass(frozen=True)
class JobResults:
    """What a job's results add up to, kept beside its job state and written with each result: the last success
    and failure (the timestamps alert rules need, like Kubernetes' `lastSuccessfulTime`), the failed results in a
    row, the strip of last runs, and whether the job is overdue or was suspended for failing.

    A failed run that is retried is in the strip but does not count as the job's failure: only a launch's final
    result (no retry to come) moves `last_failure`, `failures` and the events."""

    job: str
    last_result: TaskResult | None = None
    last_launch: str | None = None
    last_success: datetime | None = None
    last_failure: datetime | None = None
    failures: int = 0
    since: datetime | None = None  # first watched: the overdue clock's start until the first success
    overdue_since: datetime | None = None
    suspended: str | None = None
    recent: tuple[RecentRun, ...] = ()

    def add(self, record: LaunchRecord, *, final: bool, now: datetime) -> JobResults:
        """This summary once `record`'s result is in; `final` when no retry of it is to come."""
        assert record.result is not None
        run = RecentRun(record.name, record.result, record.ended_at, record.duration)
        summary = replace(self, recent=(run, *self.recent)[:RECENT_RUNS], since=self.since or now)
        return summary.conclude(record, now=now) if final or record.result is TaskResult.SUCCEEDED else summary

    def conclude(self, record: LaunchRecord, *, now: datetime) -> JobResults:
        """This summary once `record`'s result is final: its run is already in the strip (a run whose retry was
        skipped, or given up, is concluded after its result was added)."""
        assert record.result is not None
        ended = record.ended_at or now
        if record.result is TaskResult.SUCCEEDED:
            return replace(
                self,
                last_result=record.result,
                last_launch=record.name,
                last_success=ended,
                failures=0,
                overdue_since=None,
                suspended=None,
            )
        return replace(
            self, last_result=record.result, last_launch=record.name, last_failure=ended, failures=self.failures + 1
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "last_result": self.last_result.value if self.last_result else None,
            "last_launch": self.last_launch,
            "last_success": _iso(self.last_success),
            "last_failure": _iso(self.last_failure),
            "failures": self.failures,
            "since": _iso(self.since),
            "overdue_since": _iso(self.overdue_since),
            "suspended": self.suspended,
            "recent": [run.to_dict() for run in self.recent],
        }

    def to_bytes(self) -> bytes:
        return _encode(self.to_dict()).encode()

    @classmethod
    def from_bytes(cls, job: str, raw: bytes) -> JobResults:
        return cls.from_dict(job, json.loads(raw) if raw else {})

    @classmethod
    def from_dict(cls, job: str, data: Mapping[str, Any]) -> JobResults:
        return cls(
            job=job,
            last_result=TaskResult(data["last_result"]) if data.get("last_result") else None,
            last_launch=data.get("last_launch"),
            last_success=_dt(data.get("last_success")),
            last_failure=_dt(data.get("last_failure")),
            failures=int(data.get("failures", 0)),
            since=_dt(data.get("since")),
            overdue_since=_dt(data.get("overdue_since")),
            suspended=data.get("suspended"),
            recent=tuple(RecentRun.from_dict(r) for r in data.get("recent", ())),
        )


class NoticeState(StrEnum):
    PENDING = "pending"  # to be delivered (again, by a new leader, if this one dies first)
    UNDELIVERABLE = "undeliverable"  # its retries ran out: kept for `status`, never sent again


@dataclass(frozen=True)
class Notice:
    """One webhook notification in the outbox: written in the same fenced transaction as what it is about (a
    result, a skip, a failed launch, an overdue job), delivered at least once, then deleted. `key` (launch + event)
    is the Idempotency-Key every delivery of it carries; `id` adds the webhook's place in the job's list. Only
    where the secret is kept is stored, never the secret."""

    id: str
    key: str
    job: str
    event: str
    url: str
    payload: Mapping[str, Any]
    created_at: datetime
    secret_env: str | None = None
    secret_file: str | None = None
    state: NoticeState = NoticeState.PENDING
    attempts: int = 0
    last_error: str | None = None

    @property
    def launch(self) -> str | None:
        value = self.payload.get("launch")
        return value if isinstance(value, str) else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "key": self.key,
            "job": self.job,
            "event": self.event,
            "url": self.url,
            "secret_env": self.secret_env,
            "secret_file": self.secret_file,
            "payload": dict(self.payload),
            "created_at": _iso(self.created_at),
            "state": self.state.value,
            "attempts": self.attempts,
            "last_error": self.last_error,
        }

    def to_bytes(self) -> bytes:
        return _encode(self.to_dict()).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Notice:
        return cls.from_dict(json.loads(raw))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Notice:
        created = _dt(data["created_at"])
        assert created is not None
        return cls(
            id=data["id"],
            key=data["key"],
            job=data["job"],
            event=data["event"],
            url=data["url"],
            payload=data.get("payload") or {},
            created_at=created,
            secret_env=data.get("secret_env"),
            secret_file=data.get("secret_file"),
            state=NoticeState(data.get("state", "pending")),
            attempts=int(data.get("attempts", 0)),
            last_error=data.get("last_error"),
        )


@dataclass(frozen=True)
class ResultBatch:
    """One fenced write of the result follower: task results (and retry decisions) written into their records, the
    summaries of the jobs they belong to, the notifications they raise, and the jobs they suspend (paused). Stores
    apply each job's part atomically."""

    records: Sequence[LaunchRecord] = ()
    summaries: Sequence[JobResults] = ()
    notices: Sequence[Notice] = ()
    pause: Sequence[str] = ()

    def __bool__(self) -> bool:
        return bool(self.records or self.summaries or self.notices or self.pause)

    def by_job(self) -> dict[str, JobPart]:
        """Each job's part, in the order of first appearance."""
        out: dict[str, JobPart] = {}
        for record in self.records:
            out.setdefault(record.job, JobPart()).records.append(record)
        for summary in self.summaries:
            out.setdefault(summary.job, JobPart()).summary = summary
        for notice in self.notices:
            out.setdefault(notice.job, JobPart()).notices.append(notice)
        for job in self.pause:
            out.setdefault(job, JobPart()).pause = True
        return out


@dataclass
class JobPart:
    """One job's share of a ResultBatch: applied atomically."""

    records: list[LaunchRecord] = field(default_factory=list)
    summary: JobResults | None = None
    notices: list[Notice] = field(default_factory=list)
    pause: bool = False

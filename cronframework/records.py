"""What the state store holds: launch records and per-job schedule state, with their compact JSON form.

The JSON keys are the stable keys of `status --json` / `history --json` (docs/design.md, "Records").
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any

from cronframework.naming import LaunchIdentity


class RecordState(StrEnum):
    BEGUN = "begun"  # sync point one passed: the backend may or may not have been called
    FINISHED = "finished"  # sync point two passed: the outcome is final


class Outcome(StrEnum):
    SUBMITTED = "submitted"
    ALREADY_EXISTED = "already_existed"
    FAILED = "failed_to_launch"
    SKIPPED = "skipped"


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


@lru_cache(maxsize=1024)
def _iso_utc(value: datetime) -> str:
    """A herd's records share their scheduled instant and, per batch, their begun/finished time."""
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
        )

    @property
    def identity(self) -> LaunchIdentity:
        return LaunchIdentity(self.job, self.scheduled, manual=self.manual)

    @property
    def open(self) -> bool:
        return self.state is RecordState.BEGUN

    def finish(
        self, outcome: Outcome, *, now: datetime, reason: str | None = None, attempt: int | None = None, **extra: Any
    ) -> LaunchRecord:
        """The finished form. Built field by field when only the attempt changes (every launch of a herd):
        `dataclasses.replace` cost more than the rest of the submit path."""
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
        return LaunchRecord(
            self.name,
            self.job,
            self.scheduled,
            RecordState.FINISHED,
            self.manual,
            outcome,
            reason,
            self.leader,
            self.epoch,
            self.attempt if attempt is None else attempt,
            self.begun_at,
            now,
            self.backend_state,
            self.exit_code,
        )

    def to_dict(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in _record_fields()}  # shallow: every field is a scalar
        out["scheduled"] = _iso(self.scheduled)
        out["begun_at"] = _iso(self.begun_at)
        out["finished_at"] = _iso(self.finished_at)
        out["state"] = self.state.value
        out["outcome"] = self.outcome.value if self.outcome else None
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LaunchRecord:
        scheduled = _dt(data["scheduled"])
        assert scheduled is not None
        return cls(
            **{
                **data,
                "scheduled": scheduled,
                "begun_at": _dt(data.get("begun_at")),
                "finished_at": _dt(data.get("finished_at")),
                "state": RecordState(data["state"]),
                "outcome": Outcome(data["outcome"]) if data.get("outcome") else None,
            }
        )

    def to_bytes(self) -> bytes:
        """to_dict() minus empty values, in field order, as compact JSON. Formatted by hand (the same bytes as
        json's encoder, pinned by tests/test_records.py): 20k of these per 10k-launch herd."""
        parts = [
            f'{{"name":{_jstr(self.name)},"job":{_jstr(self.job)},"scheduled":"{_iso(self.scheduled)}",'
            f'"state":"{self.state.value}","manual":{"true" if self.manual else "false"}'
        ]
        if self.outcome:
            parts.append(f',"outcome":"{self.outcome.value}"')
        for key, text in (("reason", self.reason), ("leader", self.leader)):
            if text:
                parts.append(f',"{key}":{_jstr(text)}')
        for key, number in (("epoch", self.epoch), ("attempt", self.attempt)):
            if number is not None:
                parts.append(f',"{key}":{int(number)}')
        for key, instant in (("begun_at", self.begun_at), ("finished_at", self.finished_at)):
            if instant:
                parts.append(f',"{key}":"{_iso_utc(instant)}"')
        if self.backend_state:
            parts.append(f',"backend_state":{_jstr(self.backend_state)}')
        if self.exit_code is not None:
            parts.append(f',"exit_code":{int(self.exit_code)}')
        parts.append("}")
        return "".join(parts).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> LaunchRecord:
        return cls.from_dict(json.loads(raw))


def _record_fields() -> tuple[str, ...]:
    """LaunchRecord's field names, computed once: dataclasses.fields() is costly per record."""
    global _RECORD_FIELDS
    if not _RECORD_FIELDS:
        _RECORD_FIELDS = tuple(f.name for f in fields(LaunchRecord))
    return _RECORD_FIELDS


_RECORD_FIELDS: tuple[str, ...] = ()


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
        data = json.loads(raw) if raw else {}
        return cls(job=job, next_scheduled=_dt(data.get("next")), last_launch=data.get("last"))


@dataclass(frozen=True)
class TriggerRequest:
    """An operator's `trigger JOB`: a request the leader turns into a manual launch."""

    id: str
    job: str
    requested_at: datetime
    force: bool = False


@dataclass(frozen=True)
class StoredSpec:
    """A job spec as applied: its JSON document and the version `apply` wrote."""

    name: str
    document: Mapping[str, Any]
    version: int


@dataclass(frozen=True)
class Begin:
    """Sync point one for one launch: the new record, and the job's next scheduled instant after it."""

    record: LaunchRecord
    next_state: JobState
    consumed_trigger: str | None = None


@dataclass(frozen=True)
class SpecChange:
    """One job's change for `apply`: document None deletes. `expected_version` None means "must not exist"."""

    name: str
    document: Mapping[str, Any] | None
    expected_version: int | None

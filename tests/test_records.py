"""Records are stored as compact JSON formatted by hand for speed; these pin that the bytes are exactly what
json's own encoder writes for the same content, so stores written before and after read the same."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cronframework.naming import LaunchIdentity
from cronframework.records import JobResults, JobState, LaunchRecord, Outcome, RecordState, TaskResult

ENCODE = json.JSONEncoder(separators=(",", ":")).encode
T = datetime(2026, 11, 25, 6, 0, tzinfo=UTC)


def reference(record: LaunchRecord) -> bytes:
    """The record's to_dict() without empty values, through json's encoder."""
    return ENCODE({k: v for k, v in record.to_dict().items() if v is not None and v != ""}).encode()


def test_a_begun_and_a_finished_record_match_the_reference_encoder() -> None:
    begun = LaunchRecord.begin(LaunchIdentity("nightly.report_2", T), leader="r1", epoch=0, now=T)
    finished = begun.finish(Outcome.SUBMITTED, now=T + timedelta(microseconds=1234), attempt=2, exit_code=0)
    for record in (begun, finished):
        assert record.to_bytes() == reference(record)
        assert LaunchRecord.from_bytes(record.to_bytes()) == record
    assert b'"epoch":0' in begun.to_bytes() and b'"exit_code":0' in finished.to_bytes()


@pytest.mark.parametrize("attempt", [None, 1, 3])
@pytest.mark.parametrize("reason", [None, "refused"])
def test_finish_copies_every_field_as_replace_does(attempt: int | None, reason: str | None) -> None:
    """`finish` copies the record's fields directly (the herd's fast path): it must give what `replace` gives,
    compare and hash the same, and leave the begun record as it was."""
    identity = LaunchIdentity("job-a", T, manual=True, attempt=2)
    begun = LaunchRecord.begin(identity, leader="r1", epoch=4, now=T)
    done_at = T + timedelta(seconds=1)
    finished = begun.finish(Outcome.SUBMITTED, now=done_at, reason=reason, attempt=attempt)
    expected = dataclasses.replace(
        begun,
        state=RecordState.FINISHED,
        outcome=Outcome.SUBMITTED,
        reason=reason,
        finished_at=done_at,
        attempt=begun.attempt if attempt is None else attempt,
    )
    assert finished == expected and hash(finished) == hash(expected)
    assert finished.to_bytes() == expected.to_bytes() == reference(expected)
    assert begun.state is RecordState.BEGUN and begun.outcome is None and begun.finished_at is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        finished.state = RecordState.BEGUN  # type: ignore[misc]


@given(
    reason=st.one_of(st.none(), st.text(max_size=40)),
    leader=st.text(max_size=20),
    backend_state=st.one_of(st.none(), st.text(max_size=12)),
    exit_code=st.one_of(st.none(), st.integers(-(2**31), 2**31)),
    manual=st.booleans(),
    offset_minutes=st.integers(-12 * 60, 14 * 60),
)
def test_any_text_in_any_field_is_escaped_as_json_does(
    reason: str | None,
    leader: str,
    backend_state: str | None,
    exit_code: int | None,
    manual: bool,
    offset_minutes: int,
) -> None:
    zone = timezone(timedelta(minutes=offset_minutes))
    record = LaunchRecord(
        name=LaunchIdentity("job-a", T, manual=manual).name,
        job="job-a",
        scheduled=T,
        manual=manual,
        state=RecordState.FINISHED,
        outcome=Outcome.FAILED,
        reason=reason,
        leader=leader,
        epoch=7,
        begun_at=T.astimezone(zone),
        finished_at=(T + timedelta(seconds=1)).astimezone(zone),
        backend_state=backend_state,
        exit_code=exit_code,
    )
    assert record.to_bytes() == reference(record)
    assert json.loads(record.to_bytes())["reason" if reason else "job"] == (reason or "job-a")


@given(last=st.one_of(st.none(), st.text(max_size=30)), has_next=st.booleans())
def test_job_state_bytes_match_the_reference_encoder(last: str | None, has_next: bool) -> None:
    state = JobState("job-a", T if has_next else None, last)
    expected = ENCODE({"next": T.isoformat() if has_next else None, "last": last}).encode()
    assert state.to_bytes() == expected
    assert JobState.from_bytes("job-a", state.to_bytes()) == state


@pytest.mark.parametrize(
    "raw",
    [b'{"last": "x", "next": "2026-11-25T06:30:00+01:00"}', b'{"next":null,"last":"a\\"b"}', b"{}", b""],
)
def test_a_job_state_in_another_form_than_its_own_is_read_as_json(raw: bytes) -> None:
    data = json.loads(raw) if raw else {}
    following = datetime.fromisoformat(data["next"]) if data.get("next") else None
    assert JobState.from_bytes("job-a", raw) == JobState("job-a", following, data.get("last"))


@given(
    result=st.sampled_from(TaskResult),
    reason=st.one_of(st.none(), st.text(max_size=40)),
    exit_code=st.one_of(st.none(), st.integers(-255, 255)),
    ran=st.one_of(st.none(), st.integers(0, 10**7)),
    attempt=st.integers(1, 100),
    retry=st.booleans(),
)
def test_a_record_with_its_result_matches_the_reference_encoder(
    result: TaskResult, reason: str | None, exit_code: int | None, ran: int | None, attempt: int, retry: bool
) -> None:
    identity = LaunchIdentity("job-a", T, attempt=attempt)
    launched = LaunchRecord.begin(identity, leader="r1", epoch=3, now=T).finish(Outcome.SUBMITTED, now=T)
    started = T + timedelta(seconds=1)
    ended = started + timedelta(milliseconds=ran) if ran is not None else None
    record = launched.with_result(result, reason=reason, exit_code=exit_code, started_at=started, ended_at=ended)
    if retry:
        record = LaunchRecord.from_dict({**record.to_dict(), "retry_at": (T + timedelta(minutes=1)).isoformat()})
    assert record.to_bytes() == reference(record)
    assert LaunchRecord.from_bytes(record.to_bytes()) == record
    assert record.following is retry and record.duration == (None if ran is None else ran / 1000)


def test_a_job_s_summary_counts_only_final_failures_and_keeps_the_last_runs() -> None:
    identity = LaunchIdentity("job-a", T)
    launched = LaunchRecord.begin(identity, leader="r1", epoch=1, now=T).finish(Outcome.SUBMITTED, now=T)
    failed = launched.with_result(TaskResult.FAILED, ended_at=T)
    retried = launched.with_result(TaskResult.FAILED, ended_at=T)
    summary = JobResults("job-a").add(retried, final=False, now=T).add(failed, final=True, now=T)
    assert summary.failures == 1 and len(summary.recent) == 2 and summary.last_failure == T
    for n in range(12):
        summary = summary.add(launched.with_result(TaskResult.SUCCEEDED, ended_at=T + timedelta(n)), final=True, now=T)
    assert summary.failures == 0 and len(summary.recent) == 10 and summary.last_success == T + timedelta(11)
    assert JobResults.from_bytes("job-a", summary.to_bytes()) == summary

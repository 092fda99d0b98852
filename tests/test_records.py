"""Records are stored as compact JSON formatted by hand for speed; these pin that the bytes are exactly what
json's own encoder writes for the same content, so stores written before and after read the same."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from cronframework.naming import LaunchIdentity
from cronframework.records import JobState, LaunchRecord, Outcome, RecordState

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

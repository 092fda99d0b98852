"""Schedule math at named instants: DST edges, leap days, seconds, @every anchoring, `?` contract, errors."""

from __future__ import annotations

import hashlib
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from itertools import islice

import pytest

from cronframework.errors import ScheduleError
from cronframework.schedule.dst import RepeatedTime, SkippedTime
from cronframework.schedule.expression import parse_schedule
from cronframework.spec.model import DstPolicy

BOTH = DstPolicy(repeated=RepeatedTime.BOTH)
SKIP = DstPolicy(skipped=SkippedTime.SKIP)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# (name, expression, zone, policy, after, the next launches in UTC)
LAUNCHES = [
    (
        "just before the fall-back hour in New York: the repeated 01:30 fires once",
        "30 1 * * *",
        "America/New_York",
        None,
        "2024-11-03T05:00:00",
        ["2024-11-03T05:30:00", "2024-11-04T06:30:00"],
    ),
    (
        "fall-back in New York with repeated: both fires 01:30 EDT and 01:30 EST",
        "30 1 * * *",
        "America/New_York",
        BOTH,
        "2024-11-03T05:00:00",
        ["2024-11-03T05:30:00", "2024-11-03T06:30:00", "2024-11-04T06:30:00"],
    ),
    (
        "inside the repeated hour (01:10 EST): the second 01:30 is not a new launch",
        "30 1 * * *",
        "America/New_York",
        None,
        "2024-11-03T06:10:00",
        ["2024-11-04T06:30:00"],
    ),
    (
        "every 20 minutes through the fall-back: the repeated hour is not fired again",
        "*/20 * * * *",
        "America/New_York",
        None,
        "2024-11-03T05:30:00",
        ["2024-11-03T05:40:00", "2024-11-03T07:00:00", "2024-11-03T07:20:00"],
    ),
    (
        "every 20 minutes through the fall-back, repeated: both",
        "*/20 * * * *",
        "America/New_York",
        BOTH,
        "2024-11-03T05:30:00",
        [
            "2024-11-03T05:40:00",
            "2024-11-03T06:00:00",
            "2024-11-03T06:20:00",
            "2024-11-03T06:40:00",
            "2024-11-03T07:00:00",
        ],
    ),
    (
        "spring-forward gap in Europe/Berlin: 02:30 does not exist, fires at 03:00 CEST",
        "30 2 * * *",
        "Europe/Berlin",
        None,
        "2024-03-30T12:00:00",
        ["2024-03-31T01:00:00", "2024-04-01T00:30:00"],
    ),
    (
        "spring-forward gap in Europe/Berlin with skipped: skip",
        "30 2 * * *",
        "Europe/Berlin",
        SKIP,
        "2024-03-30T12:00:00",
        ["2024-04-01T00:30:00"],
    ),
    (
        "spring-forward gap: four skipped matches and 03:00 itself collapse into one launch",
        "*/15 2-3 * * *",
        "Europe/Berlin",
        None,
        "2024-03-31T00:50:00",
        ["2024-03-31T01:00:00", "2024-03-31T01:15:00", "2024-03-31T01:30:00"],
    ),
    (
        "after is exactly the instant before the gap ends",
        "30 2 * * *",
        "America/New_York",
        None,
        "2024-03-10T06:59:59",
        ["2024-03-10T07:00:00", "2024-03-11T06:30:00"],
    ),
    (
        "Australia/Lord_Howe 30-minute DST: 02:15 is skipped, fires at 02:30 LHDT",
        "15 2 * * *",
        "Australia/Lord_Howe",
        None,
        "2024-10-05T00:00:00",
        ["2024-10-05T15:30:00", "2024-10-06T15:15:00"],
    ),
    (
        "Australia/Lord_Howe 30-minute fall-back: 01:45 repeats after half an hour, fired once",
        "45 1 * * *",
        "Australia/Lord_Howe",
        None,
        "2024-04-06T00:00:00",
        ["2024-04-06T14:45:00", "2024-04-07T15:15:00"],
    ),
    (
        "Australia/Lord_Howe 30-minute fall-back, repeated: both",
        "45 1 * * *",
        "Australia/Lord_Howe",
        BOTH,
        "2024-04-06T00:00:00",
        ["2024-04-06T14:45:00", "2024-04-06T15:15:00", "2024-04-07T15:15:00"],
    ),
    (
        "Asia/Kolkata: a fixed +05:30 offset",
        "0 9 * * *",
        "Asia/Kolkata",
        None,
        "2024-03-10T00:00:00",
        ["2024-03-10T03:30:00", "2024-03-11T03:30:00"],
    ),
    (
        "Feb 29 on a leap year, then four years on",
        "0 12 29 2 *",
        "UTC",
        None,
        "2023-03-01T00:00:00",
        ["2024-02-29T12:00:00", "2028-02-29T12:00:00"],
    ),
    (
        "Feb 29 skips 2100, which is not a leap year",
        "0 0 29 2 *",
        "UTC",
        None,
        "2096-03-01T00:00:00",
        ["2104-02-29T00:00:00"],
    ),
    (
        "6-field: seconds come first",
        "*/20 * * * * *",
        "UTC",
        None,
        "2024-05-01T10:00:30",
        ["2024-05-01T10:00:40", "2024-05-01T10:01:00", "2024-05-01T10:01:20"],
    ),
    (
        "6-field: 12:00:30 every day",
        "30 0 12 * * *",
        "UTC",
        None,
        "2024-05-01T12:00:30",
        ["2024-05-02T12:00:30"],
    ),
    (
        "6-field in the New York spring-forward gap",
        "15 30 2 * * *",
        "America/New_York",
        None,
        "2024-03-10T00:00:00",
        ["2024-03-10T07:00:00", "2024-03-11T06:30:15"],
    ),
    (
        "6-field through the New York fall-back: the repeated hour's seconds fire once",
        "0 */30 1 * * *",
        "America/New_York",
        None,
        "2024-11-03T05:00:00",
        ["2024-11-03T05:30:00", "2024-11-04T06:00:00"],
    ),
    (
        "@every 1h +0s is anchored at Unix multiples of 3600",
        "@every 1h +0s",
        "UTC",
        None,
        "2024-05-01T10:17:03",
        ["2024-05-01T11:00:00", "2024-05-01T12:00:00"],
    ),
    (
        "@every 7m +0s: Unix time a multiple of 420 s, not the wall-clock hour",
        "@every 7m +0s",
        "UTC",
        None,
        "2024-05-01T10:05:00",
        ["2024-05-01T10:07:00", "2024-05-01T10:14:00"],  # 10:00 UTC is 1714557600 = 420 * 4082280
    ),
    (
        "@every is absolute time: no DST in New York's fall-back",
        "@every 1h+15m",
        "America/New_York",
        None,
        "2024-11-03T04:30:00",
        ["2024-11-03T05:15:00", "2024-11-03T06:15:00", "2024-11-03T07:15:00"],
    ),
    (
        "OR semantics: day 13 or any Friday",
        "0 0 13 * 5",
        "UTC",
        None,
        "2024-09-01T00:00:00",
        [
            "2024-09-06T00:00:00",
            "2024-09-13T00:00:00",
            "2024-09-20T00:00:00",
            "2024-09-27T00:00:00",
            "2024-10-04T00:00:00",
            "2024-10-11T00:00:00",
            "2024-10-13T00:00:00",
        ],
    ),
    (
        "day-of-month `*` with a weekday: Fridays only",
        "0 0 * * FRI",
        "UTC",
        None,
        "2024-09-01T00:00:00",
        ["2024-09-06T00:00:00", "2024-09-13T00:00:00"],
    ),
    (
        "names, ranges and lists",
        "0 9,17 * JAN-FEB MON-FRI",
        "UTC",
        None,
        "2024-02-29T12:00:00",
        ["2024-02-29T17:00:00", "2025-01-01T09:00:00"],
    ),
    (
        "a wrapping weekday range FRI-MON",
        "0 0 * * FRI-MON",
        "UTC",
        None,
        "2024-09-02T12:00:00",
        [
            "2024-09-06T00:00:00",
            "2024-09-07T00:00:00",
            "2024-09-08T00:00:00",
            "2024-09-09T00:00:00",
            "2024-09-13T00:00:00",
        ],
    ),
    (
        "an equal range is one value, not the whole field",
        "5-5 * * * *",
        "UTC",
        None,
        "2024-01-01T00:00:00",
        ["2024-01-01T00:05:00", "2024-01-01T01:05:00"],
    ),
    ("day-of-week 7 is Sunday", "0 0 * * 7", "UTC", None, "2024-09-01T12:00:00", ["2024-09-08T00:00:00"]),
    (
        "L: last day of the month",
        "0 0 L * *",
        "UTC",
        None,
        "2024-02-01T00:00:00",
        ["2024-02-29T00:00:00", "2024-03-31T00:00:00"],
    ),
    (
        "5#2: second Friday",
        "0 0 * * 5#2",
        "UTC",
        None,
        "2024-09-01T00:00:00",
        ["2024-09-13T00:00:00", "2024-10-11T00:00:00"],
    ),
    (
        "5L: last Friday",
        "0 0 * * 5L",
        "UTC",
        None,
        "2024-09-01T00:00:00",
        ["2024-09-27T00:00:00", "2024-10-25T00:00:00"],
    ),
    (
        "15W: nearest weekday to the 15th (Saturday 2024-06-15 -> Friday)",
        "0 0 15W * *",
        "UTC",
        None,
        "2024-06-01T00:00:00",
        ["2024-06-14T00:00:00", "2024-07-15T00:00:00"],
    ),
    (
        "@daily in a zone",
        "@daily",
        "Europe/Berlin",
        None,
        "2024-07-01T00:00:00",
        ["2024-07-01T22:00:00", "2024-07-02T22:00:00"],
    ),
    ("@weekly is Sunday midnight", "@weekly", "UTC", None, "2024-09-02T00:00:00", ["2024-09-08T00:00:00"]),
]


@pytest.mark.parametrize(
    ("expression", "zone", "dst", "after", "expected"),
    [pytest.param(*case[1:], id=case[0]) for case in LAUNCHES],
)
def test_next_launches(expression: str, zone: str, dst: DstPolicy | None, after: str, expected: list[str]) -> None:
    schedule = parse_schedule(expression, job="table", timezone=zone, dst=dst)
    assert list(islice(schedule.iter_after(utc(after)), len(expected))) == [utc(e) for e in expected]
    assert schedule.next_after(utc(after)) == utc(expected[0])


def test_results_are_utc_whole_seconds_strictly_after() -> None:
    schedule = parse_schedule("* * * * * *", job="j")
    after = datetime(2024, 5, 1, 12, 0, 0, 500_000, tzinfo=timezone(timedelta(hours=2)))
    launch = schedule.next_after(after)
    assert launch == utc("2024-05-01T10:00:01") and launch.tzinfo is UTC and launch.microsecond == 0
    assert schedule.next_after(launch) == launch + timedelta(seconds=1)


def test_naive_instants_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_schedule("@hourly", job="j").next_after(datetime(2024, 1, 1))


def test_between_excludes_start_and_includes_end() -> None:
    schedule = parse_schedule("0 * * * *", job="j")
    got = list(schedule.between(utc("2024-01-01T01:00:00"), utc("2024-01-01T03:00:00")))
    assert got == [utc("2024-01-01T02:00:00"), utc("2024-01-01T03:00:00")]
    assert list(schedule.between(utc("2024-01-01T01:00:00"), utc("2024-01-01T01:59:59"))) == []


@pytest.mark.parametrize(
    ("expression", "zone", "dst", "at", "not_before", "expected"),
    [
        pytest.param(
            "30 1 * * *",
            "America/New_York",
            None,
            "2024-11-03T07:00:00",
            "2024-11-03T00:00:00",
            "2024-11-03T05:30:00",
            id="fall-back, first occurrence only",
        ),
        pytest.param(
            "30 1 * * *",
            "America/New_York",
            BOTH,
            "2024-11-03T07:00:00",
            "2024-11-03T00:00:00",
            "2024-11-03T06:30:00",
            id="fall-back, both occurrences",
        ),
        pytest.param(
            "30 2 * * *",
            "Europe/Berlin",
            None,
            "2024-03-31T01:59:00",
            "2024-03-31T00:00:00",
            "2024-03-31T01:00:00",
            id="spring-forward shifted launch",
        ),
        pytest.param(
            "30 2 * * *",
            "Europe/Berlin",
            SKIP,
            "2024-03-31T01:59:00",
            "2024-03-30T00:00:00",
            "2024-03-30T01:30:00",
            id="spring-forward skipped launch",
        ),
        pytest.param(
            "0 * * * *",
            "UTC",
            None,
            "2024-01-01T05:00:00",
            "2024-01-01T05:00:00",
            "2024-01-01T05:00:00",
            id="both bounds inclusive",
        ),
        pytest.param(
            "0 * * * *",
            "UTC",
            None,
            "2024-01-01T05:59:59",
            "2024-01-01T05:00:00.5",
            None,
            id="nothing in the window",
        ),
        pytest.param(
            "@every 90s +0s",
            "UTC",
            None,
            "2024-01-01T00:01:29",
            "2023-12-31T23:00:00",
            "2024-01-01T00:00:00",
            id="@every",
        ),  # 1704067200 = 90 * 18934080
        pytest.param(
            "0 0 29 2 *",
            "UTC",
            None,
            "2027-01-01T00:00:00",
            "2020-01-01T00:00:00",
            "2024-02-29T00:00:00",
            id="leap day years back",
        ),
    ],
)
def test_latest_at_or_before(
    expression: str, zone: str, dst: DstPolicy | None, at: str, not_before: str, expected: str | None
) -> None:
    schedule = parse_schedule(expression, job="j", timezone=zone, dst=dst)
    assert schedule.latest_at_or_before(utc(at), utc(not_before)) == (utc(expected) if expected else None)


# The `?` contract (docs/schedules.md): these values must never change between releases.
QUESTION_CONTRACT = [
    ("nightly-report", "? ? * * *", "57 8 * * *"),
    ("billing-sync", "? ? ? * *", "27 20 22 * *"),
    ("cache-warm", "?(0-29) ?(1-5) * * ?", "13 1 * * 6"),
    ("db-backup", "? ? ? * * *", "18 32 7 * * *"),
    ("weekly-digest", "0 ? * * ?", "0 17 * * 3"),
]


@pytest.mark.parametrize(("job", "expression", "resolved"), QUESTION_CONTRACT)
def test_question_mark_contract(job: str, expression: str, resolved: str) -> None:
    schedule = parse_schedule(expression, job=job, timezone="Europe/Berlin")
    assert (schedule.expression, schedule.resolved, schedule.timezone) == (
        expression,
        resolved,
        "Europe/Berlin",
    )


def test_question_mark_formula_is_sha256_of_job_and_field_index() -> None:
    # minute is field index 0, range 0-59; hour index 1; day-of-month index 2 within 1-28.
    def pick(job: str, index: int, low: int, high: int) -> int:
        digest = hashlib.sha256(f"{job}/{index}".encode()).digest()
        return low + int.from_bytes(digest[:8], "big") % (high - low + 1)

    resolved = parse_schedule("? ? ? * *", job="some-job").resolved
    assert resolved == f"{pick('some-job', 0, 0, 59)} {pick('some-job', 1, 0, 23)} {pick('some-job', 2, 1, 28)} * *"


def test_day_of_month_question_mark_stays_within_1_to_28() -> None:
    days = {int(parse_schedule("0 0 ? * *", job=f"job-{i}").resolved.split()[2]) for i in range(400)}
    assert days == set(range(1, 29))


def test_question_mark_differs_between_jobs_and_fields() -> None:
    resolved = {parse_schedule("? ? * * *", job=f"job-{i}").resolved for i in range(50)}
    assert len(resolved) > 40


# The `@every` offset contract (docs/schedules.md): without `+<offset>` the offset is hashed from the job's name.
EVERY_CONTRACT = [
    ("nightly-report", "@every 10s", "@every 10s +6s"),
    ("nightly-report", "@every 1h", "@every 1h +52m36s"),
    ("billing-sync", "@every 90s +?", "@every 90s +34s"),
]


@pytest.mark.parametrize(("job", "expression", "resolved"), EVERY_CONTRACT)
def test_every_offset_contract(job: str, expression: str, resolved: str) -> None:
    assert parse_schedule(expression, job=job).resolved == resolved


def test_every_offset_formula_and_instants() -> None:
    digest = hashlib.sha256(b"some-job/@every").digest()
    offset = int.from_bytes(digest[:8], "big") % 600
    schedule = parse_schedule("@every 10m", job="some-job", timezone="America/New_York")
    first = schedule.next_after(utc("2024-05-01T10:00:00"))
    assert (int(first.timestamp()) - offset) % 600 == 0
    assert first - utc("2024-05-01T10:00:00") <= timedelta(minutes=10)
    assert list(schedule.between(first, first + timedelta(minutes=30))) == [
        first + timedelta(minutes=10 * k) for k in (1, 2, 3)
    ]
    assert schedule.latest_at_or_before(first + timedelta(minutes=9), first) == first


def test_every_without_offset_spreads_jobs_over_the_period() -> None:
    seconds = Counter(
        parse_schedule("@every 10s", job=f"every10-{i:05d}").next_after(utc("2024-05-01T10:00:00")).second % 10
        for i in range(1000)
    )
    assert set(seconds) == set(range(10))
    assert max(seconds.values()) < 150  # 100 a second on average; aligned, all 1,000 would share one second


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("61 * * * *", "minute field: 61 out of range 0-59"),
        ("* 24 * * *", "hour field: 24 out of range 0-23"),
        ("* * 0 * *", "day-of-month field: 0 out of range 1-31"),
        ("* * * 13 *", "month field: 13 out of range 1-12"),
        ("* * * * 8", "day-of-week field: 8 out of range 0-7"),
        ("60 * * * * *", "second field: 60 out of range 0-59"),
        ("* * * FOO *", "month field: invalid value 'FOO'"),
        ("* * * * MON-FOO", "day-of-week field: invalid value 'FOO'"),
        ("*/0 * * * *", "minute field: step must be at least 1"),
        ("1-70/5 * * * *", "minute field: 70 out of range 0-59"),
        ("* * * * * * *", "got 7"),
        ("* * * *", "got 4"),
        ("", "empty schedule"),
        ("   ", "empty schedule"),
        ("@fortnightly", "unknown macro '@fortnightly'"),
        ("@every 0s", "at least 1s"),
        ("@every 1500ms", "whole seconds"),
        ("@every soon", "@every: period: invalid duration"),
        ("@every 10s +10s", "@every: offset must be below the period 10s, got '10s'"),
        ("@every 10s +1.5s", "@every: offset must be whole seconds, got '1.5s'"),
        ("@every 10s +later", "@every: offset: invalid duration"),
        ("?,5 * * * *", "minute field: '?' must stand alone"),
        ("?(5-1) * * * *", "minute field: empty range"),
        ("?(0-99) * * * *", "minute field: 99 out of range 0-59"),
        ("H * * * *", "minute field: 'H' is not supported"),
        ("R * * * *", "minute field: 'R' is not supported"),
        ("0 0 30 2 *", "day-of-month field: '30' never occurs in month field '2'"),
        ("0 0 * * MON#6", "day-of-week field: #6 out of range 1-5"),
        ("0 0 1,,2 * *", "day-of-month field: invalid value ''"),
        ("0 0 L5 * *", "day-of-month field: invalid value 'L5'"),
    ],
)
def test_errors_name_the_field(expression: str, message: str) -> None:
    with pytest.raises(ScheduleError) as raised:
        parse_schedule(expression, job="j")
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_unknown_time_zone() -> None:
    with pytest.raises(ScheduleError, match="unknown IANA time zone 'Mars/Olympus'"):
        parse_schedule("@hourly", job="j", timezone="Mars/Olympus")


def test_macros_resolve_to_themselves_and_every_keeps_its_text() -> None:
    assert parse_schedule("@hourly", job="j").resolved == "@hourly"
    assert parse_schedule("@every 90s +0s", job="j").resolved == "@every 90s +0s"
    assert parse_schedule("@every 1h +90s", job="j").resolved == "@every 1h +1m30s"
    assert parse_schedule("@ANNUALLY", job="j").next_after(utc("2024-05-01T00:00:00")) == utc("2025-01-01T00:00:00")


def test_schedules_compare_by_value() -> None:
    assert parse_schedule("0 * * * *", job="a") == parse_schedule("0 * * * *", job="b")
    assert parse_schedule("0 * * * *", job="a") != parse_schedule("0 * * * *", job="a", dst=BOTH)

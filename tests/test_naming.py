"""The naming contract, pinned: these strings are how a new leader finds an old leader's launches. Never edit them."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cronframework.naming import JOB_NAME_MAX, LaunchIdentity, job_name_problem, launch_name, parse_launch_name

DOCKER_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")


@pytest.mark.parametrize(
    ("job", "scheduled", "manual", "name"),
    [
        ("nightly-report", datetime(2026, 11, 25, 6, 30, tzinfo=UTC), False, "nightly-report-20261125t063000z"),
        ("a", datetime(2026, 1, 1, tzinfo=UTC), False, "a-20260101t000000z"),
        ("etl.v2_daily", datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC), False, "etl.v2_daily-20240229t235959z"),
        ("backup", datetime(2026, 3, 8, 2, 30, tzinfo=UTC), True, "backup-20260308t023000z-m"),
        # an aware instant in another zone names the same UTC second
        ("tz", datetime(2026, 11, 1, 1, 30, tzinfo=timezone(timedelta(hours=-4))), False, "tz-20261101t053000z"),
    ],
)
def test_launch_names_are_pinned(job: str, scheduled: datetime, manual: bool, name: str) -> None:
    assert launch_name(job, scheduled, manual=manual) == name
    assert LaunchIdentity(job, scheduled, manual=manual).name == name
    assert parse_launch_name(name) == LaunchIdentity(job, scheduled, manual=manual)


def test_sub_second_parts_do_not_change_the_name() -> None:
    base = datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC)
    assert LaunchIdentity("j", base.replace(microsecond=999_999)).name == LaunchIdentity("j", base).name


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "empty"),
        ("Nightly", "lowercase"),
        ("has space", "lowercase"),
        ("-leading", "start and end"),
        ("trailing-", "start and end"),
        ("x" * (JOB_NAME_MAX + 1), "at most 63"),
    ],
)
def test_job_names_that_cannot_become_backend_ids_are_refused(name: str, problem: str) -> None:
    reason = job_name_problem(name)
    assert reason is not None and problem in reason


@pytest.mark.parametrize(
    ("identity", "name"),
    [
        (
            LaunchIdentity("nightly-report", datetime(2026, 11, 25, 6, 30, tzinfo=UTC), attempt=2),
            "nightly-report-20261125t063000z-a2",
        ),
        (
            LaunchIdentity("backup", datetime(2026, 3, 8, 2, 30, tzinfo=UTC), manual=True, attempt=10),
            "backup-20260308t023000z-m-a10",
        ),
        (LaunchIdentity("app-a2", datetime(2026, 1, 1, tzinfo=UTC)), "app-a2-20260101t000000z"),
    ],
)
def test_retry_names_are_pinned(identity: LaunchIdentity, name: str) -> None:
    """A retry (`retry:`) is the launch's own name plus -a<N>; the first run keeps the plain name."""
    assert identity.name == name
    assert parse_launch_name(name) == identity
    assert identity.retry(1).name == launch_name(identity.job, identity.scheduled, manual=identity.manual)


@pytest.mark.parametrize(
    "text",
    [
        "plain",
        "job-2026",
        "job-20261125t063000",
        "Job-20261125t063000z",
        "x-20261125t063000z-n",
        "x-20261125t063000z-a1",
        "x-20261125t063000z-a0",
        "x-20261125t063000z-a101",
        "x-20261125t063000z-a2-m",
    ],
)
def test_strings_that_are_not_launch_names_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a cronframework launch name"):
        parse_launch_name(text)


job_names = st.from_regex(r"[a-z0-9]([a-z0-9_.-]{0,20}[a-z0-9])?", fullmatch=True)
instants = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(9999, 1, 1), timezones=st.just(UTC))


attempts = st.integers(1, 100)


@given(job_names, job_names, instants, instants, st.booleans(), st.booleans(), attempts, attempts)
def test_names_are_injective_valid_and_invertible(
    job_a: str, job_b: str, at_a: datetime, at_b: datetime, manual_a: bool, manual_b: bool, try_a: int, try_b: int
) -> None:
    a = LaunchIdentity(job_a, at_a, manual=manual_a, attempt=try_a)
    b = LaunchIdentity(job_b, at_b, manual=manual_b, attempt=try_b)
    assert (a.name == b.name) == (a == b)
    assert parse_launch_name(a.name) == a
    assert DOCKER_NAME.match(a.name) and " " not in a.name and len(a.name) <= JOB_NAME_MAX + 24

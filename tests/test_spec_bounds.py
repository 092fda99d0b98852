"""Every duration and number a job takes is bounded, refused at read time with its position, and what is accepted
survives being stored: the leader compiles the stored form of every spec `validate` accepts (issue: a spec that
validated, then was refused by the leader from the store and silently never ran)."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cronframework.catalog.apply import spec_document
from cronframework.catalog.cache import compile_job
from cronframework.cli import main
from cronframework.errors import SpecErrors
from cronframework.records import StoredSpec
from cronframework.schedule.duration import MAX_DURATION, format_duration, parse_duration
from cronframework.spec.files import load_jobs_from_text
from cronframework.spec.model import JobSpec

FILE = "f.yaml"
DURATION_FIELDS = (
    ("task", "timeout"),
    ("catchup", "window"),
    ("recovery_window",),
    ("retries", "backoff"),
    ("retries", "max_backoff"),
    ("retention", "age"),
    ("expect", "success_within"),
)


def job_yaml(path: tuple[str, ...], value: str) -> tuple[str, int, int]:
    """A one-job file with `value` written at `path`; returns the text and the value's line and column."""
    lines = ["job:", "  j:", '    schedule: "@every 1m"', "    task:", "      command: [/bin/true]"]
    if path == ("schedule",):
        lines[2] = f"    schedule: {value}"
        return "\n".join(lines) + "\n", 3, len("    schedule: ") + 1
    if path[0] == "task":
        lines.append(f"      {path[1]}: {value}")
    elif len(path) == 1:
        lines.append(f"    {path[0]}: {value}")
    else:
        lines += [f"    {path[0]}:", f"      {path[1]}: {value}"]
    return "\n".join(lines) + "\n", len(lines), len(lines[-1]) - len(value) + 1


def stored_form(spec: JobSpec) -> StoredSpec:
    """What `apply` and `run` write, through JSON as the stores keep it."""
    return StoredSpec(spec.name, json.loads(json.dumps(spec_document(spec))), 1)


REFUSED = [
    (("task", "timeout"), "-30"),
    (("task", "timeout"), "0"),
    (("task", "timeout"), "0s"),
    (("task", "timeout"), "99999999999999999999999d"),
    (("task", "timeout"), ".inf"),
    (("task", "timeout"), "-.inf"),
    (("task", "timeout"), ".nan"),
    (("task", "timeout"), "1e300"),
    (("task", "timeout"), "367d"),
    (("task", "timeout"), "500us"),
    (("task", "timeout"), "0.0001s"),
    (("retries", "backoff"), "-1"),
    (("retries", "max_backoff"), "0"),
    (("retention", "age"), "0"),
    (("recovery_window",), "-1"),
    (("catchup", "window"), "99999999999999999999d"),
    (("catchup", "window"), "0"),
    (("catchup", "max"), "99999999999999999999"),
    (("retries", "attempts"), "99999999999999999999"),
    (("retention", "count"), "99999999999999999999"),
    (("task", "resources"), "{cpu: .inf}"),
    (("task", "resources"), "{cpu: 1e9}"),
    (("task", "resources"), "{memory: 99999999999999999999}"),
    (("schedule",), '"@every 999999999999999999999s"'),
    (("schedule",), '"@every 367d"'),
    (("schedule",), '"@every 1h +99999999999999999999999d"'),
    (("retry", "attempts"), "0"),
    (("retry", "attempts"), "101"),
    (("retry", "backoff"), "0"),
    (("retry", "max_backoff"), "-1"),
    (("expect", "success_within"), "0"),
    (("expect", "success_within"), "367d"),
    (("suspend_after_failures",), "0"),
    (("suspend_after_failures",), "1001"),
]


@pytest.mark.parametrize(("path", "value"), REFUSED, ids=[f"{'.'.join(p)}={v}" for p, v in REFUSED])
def test_out_of_bounds_values_are_field_errors_with_positions(
    path: tuple[str, ...], value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text, line, col = job_yaml(path, value)
    (tmp_path / FILE).write_text(text)
    for command in ("validate", "plan"):
        code = main([command, str(tmp_path / FILE)])
        out, err = capsys.readouterr()
        assert code == 1, (command, out)
        field = ".".join(path) if path[-1] != "resources" else "task.resources."
        assert f"{FILE}:{line}:" in err and f"job 'j': field '{field}" in err, err
        assert re.search(rf"{FILE}:{line}:{col}: ", err) or path[-1] == "resources", err


@pytest.mark.parametrize(
    "value",
    ["99999999999999999999999d", ".inf"],
)
def test_validate_and_plan_print_no_traceback(value: str, tmp_path: Path) -> None:
    text, line, col = job_yaml(("task", "timeout"), value)
    (tmp_path / FILE).write_text(text)
    for command in ("validate", "plan"):
        result = subprocess.run(
            [sys.executable, "-m", "cronframework", command, str(tmp_path / FILE)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 1
        assert "Traceback" not in result.stderr
        assert result.stderr.startswith(f"error: {tmp_path / FILE}:{line}:{col}: job 'j': field 'task.timeout': ")


ACCEPTED = [
    (("task", "timeout"), "366d", timedelta(days=366)),
    (("task", "timeout"), "1ms", timedelta(milliseconds=1)),
    (("task", "timeout"), "1.5", timedelta(seconds=1.5)),
    (("task", "timeout"), "1.001s", timedelta(milliseconds=1001)),
    (("recovery_window",), "0", timedelta(0)),
    (("catchup", "window"), "366d", timedelta(days=366)),
]


@pytest.mark.parametrize(("path", "value", "expected"), ACCEPTED)
def test_bounds_are_inclusive_and_accepted_values_survive_the_store(
    path: tuple[str, ...], value: str, expected: timedelta
) -> None:
    [loaded] = load_jobs_from_text(job_yaml(path, value)[0], FILE)
    got = loaded.spec
    for part in path:
        got = getattr(got, part)
    assert got == expected
    assert compile_job(stored_form(loaded.spec)).spec == loaded.spec


def test_every_period_up_to_the_bound_is_accepted() -> None:
    [loaded] = load_jobs_from_text(job_yaml(("schedule",), '"@every 366d +1s"')[0], FILE)
    assert compile_job(stored_form(loaded.spec)).schedule.resolved == "@every 366d +1s"


# --- the durations themselves -----------------------------------------------------------------------------------

_MS = timedelta(milliseconds=1)


@given(st.integers(min_value=0, max_value=MAX_DURATION // _MS))
def test_format_then_parse_is_the_identity(milliseconds: int) -> None:
    delta = timedelta(milliseconds=milliseconds)
    assert parse_duration(format_duration(delta)) == delta


def test_parse_refuses_what_it_cannot_represent_with_value_errors() -> None:
    for text in ("99999999999999999999999d", "367d", "0.5ms", "1" * 5000 + "s"):
        with pytest.raises(ValueError):
            parse_duration(text)


# --- the property: whatever validates, the leader compiles from the store ---------------------------------------

_UNITS = st.sampled_from(["ms", "s", "m", "h", "d"])
_NUMBER_TEXT = st.one_of(
    st.integers(min_value=0, max_value=10**25).map(str),
    st.decimals(min_value=0, max_value=10**6, places=4, allow_nan=False, allow_infinity=False).map(str),
)
_GO_STYLE = st.lists(st.tuples(_NUMBER_TEXT, _UNITS), min_size=1, max_size=3).map(
    lambda parts: json.dumps("".join(n + u for n, u in parts))
)
_NUMBERS = st.one_of(
    st.integers(min_value=-(10**25), max_value=10**25).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(
        lambda f: ".nan" if math.isnan(f) else (".inf" if f > 0 else "-.inf") if math.isinf(f) else repr(f)
    ),
)
_VALUES = st.one_of(_GO_STYLE, _NUMBERS)


def _accepted_or_field_error(path: tuple[str, ...], value: str) -> None:
    text, line, _ = job_yaml(path, value)
    try:
        [loaded] = load_jobs_from_text(text, FILE)
    except SpecErrors as exc:
        assert [(e.line, e.job) for e in exc.errors] == [(line, "j")], exc
        assert all(e.field and e.field.startswith(".".join(path)) for e in exc.errors), exc
        return
    job = compile_job(stored_form(loaded.spec))
    assert job.spec == loaded.spec
    assert compile_job(stored_form(job.spec)).spec == loaded.spec


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(DURATION_FIELDS), _VALUES)
def test_any_duration_either_is_a_field_error_or_round_trips_through_the_store(
    path: tuple[str, ...], value: str
) -> None:
    _accepted_or_field_error(path, value)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(
        [
            ("catchup", "max"),
            ("retries", "attempts"),
            ("retention", "count"),
            ("retry", "attempts"),
            ("suspend_after_failures",),
        ]
    ),
    _NUMBERS,
)
def test_any_count_either_is_a_field_error_or_round_trips_through_the_store(path: tuple[str, ...], value: str) -> None:
    _accepted_or_field_error(path, value)


@settings(max_examples=200, deadline=None)
@given(_GO_STYLE, st.one_of(st.none(), _GO_STYLE))
def test_any_every_schedule_either_is_a_field_error_or_round_trips_through_the_store(
    period: str, offset: str | None
) -> None:
    text = json.loads(period) + ("" if offset is None else " +" + json.loads(offset))
    _accepted_or_field_error(("schedule",), json.dumps("@every " + text))


@pytest.mark.parametrize("command", ["apply", "run"])
def test_apply_and_run_refuse_before_writing_anything(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text, line, col = job_yaml(("task", "timeout"), "-30")
    (tmp_path / FILE).write_text(text)
    state = tmp_path / "state"
    assert main([command, str(tmp_path / FILE), "--state-dir", str(state)]) == 1
    assert f"{FILE}:{line}:{col}: job 'j': field 'task.timeout': " in capsys.readouterr().err
    assert not state.exists()


BAD_NOTIFY = """\
job:
  j:
    schedule: "@every 1m"
    task: {command: [/bin/true]}
    retry: {attempts: 3, on: [failed, crashed]}
    notify:
      - url: ftp://hooks.example/x
        secret_env: CF_BOUNDS_SECRET
      - url: https://hooks.example/y
        events: [failed, exploded]
        secret_env: CF_BOUNDS_SECRET
      - url: https://hooks.example/z
  k:
    schedule: "@every 1m"
    task: {command: [/bin/true]}
    retry: {backoff: 10m, max_backoff: 1m}
"""


def test_bad_webhooks_retries_and_events_are_field_errors_with_positions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Never a job that silently does not notify: each problem is its own line, at the offending value."""
    monkeypatch.setenv("CF_BOUNDS_SECRET", "s3cret")
    (tmp_path / FILE).write_text(BAD_NOTIFY)
    assert main(["validate", str(tmp_path / FILE)]) == 1
    prefix = f"error: {tmp_path / FILE}:"
    errors = [line.removeprefix(prefix) for line in capsys.readouterr().err.splitlines()]
    assert [e.split(": ", 3)[:3] for e in errors] == [
        ["5:39", "job 'j'", "field 'retry.on[1]'"],
        ["7:14", "job 'j'", "field 'notify[0].url'"],
        ["10:26", "job 'j'", "field 'notify[1].events[1]'"],
        ["12:9", "job 'j'", "field 'notify[2]'"],
        ["16:12", "job 'k'", "field 'retry'"],
    ], errors
    for error, words in zip(errors, ["'crashed'", "http://", "'exploded'", "secret_env", "max_backoff"], strict=True):
        assert words in error, error


def test_a_webhook_secret_missing_here_is_an_error_at_its_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CF_BOUNDS_UNSET", raising=False)
    text = (
        'job:\n  j:\n    schedule: "@every 1m"\n    task: {command: [/bin/true]}\n    notify:\n'
        "      - url: https://hooks.example/y\n        secret_env: CF_BOUNDS_UNSET\n"
        f"      - url: https://hooks.example/w\n        secret_file: {tmp_path / 'none'}\n"
    )
    (tmp_path / FILE).write_text(text)
    assert main(["validate", str(tmp_path / FILE)]) == 1
    err = capsys.readouterr().err
    assert f"{FILE}:7:21: job 'j': field 'notify[0].secret_env': the secret 'CF_BOUNDS_UNSET' is not set" in err
    assert f"{FILE}:9:22: job 'j': field 'notify[1].secret_file': the secret file " in err

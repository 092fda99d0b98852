"""`cronframework validate` and `cronframework plan`: exit codes, exact output, JSON keys, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cronframework.cli import main

MINIMAL = """\
job:
  nightly-report:
    schedule: "30 1 * * *"
    timezone: America/New_York
    backend: process
    task:
      command: ["/bin/echo", "hello"]
"""
MORE = """\
job:
  spread:
    schedule: "? 3 * * *"
    task: {command: [/bin/true]}
  paused:
    schedule: "0 * * * *"
    enabled: false
    task: {command: [/bin/true]}
"""
BAD = """\
job:
  nightly:
    schedual: "30 1 * * *"
    task: {command: [/bin/true]}
  other:
    schedule: "0 * * * *"
    timezone: Mars/Base
    task: {command: [/bin/true]}
"""
FALL_BACK_EVE = "2026-10-31T12:00:00Z"  # New York falls back on 2026-11-01


@pytest.fixture
def jobs_dir(tmp_path: Path) -> Path:
    (tmp_path / "nightly.yaml").write_text(MINIMAL)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "more.yml").write_text(MORE)
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --- validate ----------------------------------------------------------------------------------------


def test_validate_valid_prints_one_summary_line(jobs_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "validate", str(jobs_dir)) == (0, "2 files, 3 jobs: valid\n", "")
    assert run(capsys, "validate", str(jobs_dir / "nightly.yaml")) == (0, "1 file, 1 job: valid\n", "")


def test_validate_invalid_prints_every_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    code, out, err = run(capsys, "validate", str(bad), str(tmp_path / "missing"))
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        f"error: {bad}:3:5: job 'nightly': unknown key 'schedual' (did you mean 'schedule'?)",
        f"error: {bad}:7:15: job 'other': field 'timezone': unknown IANA time zone 'Mars/Base'",
        f"error: {tmp_path / 'missing'}: no such file or directory",
    ]


# --- plan --------------------------------------------------------------------------------------------


def test_plan_json_has_the_documented_keys(jobs_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(jobs_dir / "nightly.yaml")
    code, out, err = run(capsys, "plan", path, "--from", FALL_BACK_EVE, "--count", "3", "--json")
    assert (code, err) == (0, "")
    launches = json.loads(out)
    assert [set(item) for item in launches] == [{"job", "scheduled", "utc", "name", "schedule", "resolved"}] * 3
    assert [(item["scheduled"], item["utc"], item["name"]) for item in launches] == [
        ("2026-11-01T01:30:00-04:00", "2026-11-01T05:30:00Z", "nightly-report-20261101t053000z"),
        ("2026-11-02T01:30:00-05:00", "2026-11-02T06:30:00Z", "nightly-report-20261102t063000z"),
        ("2026-11-03T01:30:00-05:00", "2026-11-03T06:30:00Z", "nightly-report-20261103t063000z"),
    ]


def test_plan_from_is_inclusive_and_naive_means_utc(jobs_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(jobs_dir / "nightly.yaml")
    code, out, _ = run(capsys, "plan", path, "--from", "2026-11-02T06:30:00", "--count", "1", "--json")
    assert code == 0 and json.loads(out)[0]["utc"] == "2026-11-02T06:30:00Z"


def test_plan_table(jobs_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "plan", str(jobs_dir), "--from", FALL_BACK_EVE, "--count", "2")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == ["JOB", "SCHEDULED", "(JOB'S", "ZONE)", "UTC", "LAUNCH", "NAME"]
    assert lines[1].split() == [
        "nightly-report",
        "2026-11-01",
        "01:30:00",
        "EDT",
        "(America/New_York)",
        "2026-11-01",
        "05:30:00",
        "nightly-report-20261101t053000z",
    ]
    assert lines[3].split()[:4] == ["spread", "2026-11-01", "03:46:00", "UTC"]
    assert lines[5].split() == ["paused", "disabled:", "no", "launches"]
    assert lines[6] == "spread: schedule '? 3 * * *' resolves to '46 3 * * *'"
    assert len(lines) == 7


def test_plan_json_leaves_disabled_jobs_out(jobs_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "plan", str(jobs_dir), "--from", FALL_BACK_EVE, "--count", "2", "--json")
    launches = json.loads(out)
    assert code == 0 and [item["job"] for item in launches] == ["nightly-report"] * 2 + ["spread"] * 2
    assert launches[2]["resolved"] == "46 3 * * *" and launches[2]["schedule"] == "? 3 * * *"


def test_plan_job_filter(jobs_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "plan", str(jobs_dir), "--job", "spread", "--from", FALL_BACK_EVE, "--json")
    assert code == 0 and {item["job"] for item in json.loads(out)} == {"spread"} and len(json.loads(out)) == 5


def test_plan_defaults_to_now(jobs_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "plan", str(jobs_dir / "nightly.yaml"), "--json")
    from datetime import UTC, datetime, timedelta

    first = datetime.fromisoformat(json.loads(out)[0]["scheduled"])
    assert code == 0 and timedelta(0) <= first - datetime.now(UTC) <= timedelta(days=1)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--job", "nightly-reprt"],
            "error: --job: no job 'nightly-reprt' in the given files (did you mean 'nightly-report'?)",
        ),
        (
            ["--from", "tomorrow"],
            "error: --from: 'tomorrow' is not an ISO 8601 instant (e.g. 2026-11-25T06:30:00Z)",
        ),
        (["--count", "0"], "error: --count must be at least 1, got 0"),
    ],
)
def test_plan_usage_errors_are_one_line_exit_2(
    jobs_dir: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert run(capsys, "plan", str(jobs_dir), *args) == (2, "", message + "\n")


def test_plan_of_invalid_files_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.yaml").write_text(BAD)
    code, out, err = run(capsys, "plan", str(tmp_path))
    assert (code, out, len(err.splitlines())) == (1, "", 2)


# --- the real command, as a user runs it ---------------------------------------------------------------


def cli(*argv: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "cronframework", *argv]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def test_validate_subprocess_bad_input(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_bytes(b"job:\n  x: !!python/object/apply:os.system [true]\n  \xff\n")
    result = cli("validate", str(tmp_path))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr == f"error: {tmp_path / 'bad.yaml'}:3:3: not UTF-8 at byte 51\n"


def test_plan_subprocess_bad_from(jobs_dir: Path) -> None:
    result = cli("plan", str(jobs_dir), "--from", "2026-13-45")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and result.stdout == ""

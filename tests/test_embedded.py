"""The embedded default as a user runs it: `cronframework run` in a subprocess, SQLite state, process backend.

Real time, real processes: the same two sync points and the same recovery as the ZooKeeper replicas.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cronframework.records import Outcome, RecordState
from cronframework.store.sqlite import SqliteStore

JOBS = """
job:
  beat:
    schedule: "* * * * * *"
    backend: process
    task:
      command: ["/bin/sh", "-c", "echo beat $CRONFRAMEWORK_LAUNCH"]
"""


def run(state: Path, jobs: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "cronframework", "run", str(jobs), "--state-dir", str(state), *extra]
    import os

    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}
    )


@pytest.fixture
def jobs(tmp_path: Path) -> Path:
    path = tmp_path / "jobs.yaml"
    path.write_text(JOBS)
    return path


def launched(state: Path) -> list[str]:
    folder = state / "process"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_run_launches_and_stops_cleanly_on_sigterm(tmp_path: Path, jobs: Path) -> None:
    state = tmp_path / "state"
    proc = run(state, jobs)
    deadline = time.monotonic() + 30
    while len(launched(state)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "launch outcome recorded" in err
    store = SqliteStore(state / "state.sqlite")
    try:
        records = store.history("beat", limit=100)
        assert len(records) >= 2
        assert store.open_launches() == []
        assert {r.name for r in records if r.outcome is Outcome.SUBMITTED} == set(launched(state))
    finally:
        store.close()


@pytest.mark.parametrize("point", ["after_sync_one", "after_submit"])
def test_crash_is_concluded_by_the_next_run(tmp_path: Path, jobs: Path, point: str) -> None:
    state = tmp_path / "state"
    doomed = run(state, jobs, env={"CRONFRAMEWORK_CRASH_AT": point})
    _, err = doomed.communicate(timeout=30)
    assert doomed.returncode == 137, err
    store = SqliteStore(state / "state.sqlite")
    [left_open] = store.open_launches()
    store.close()
    assert launched(state) == ([left_open.name] if point == "after_submit" else [])
    again = run(state, jobs, "--duration", "2")
    _, err = again.communicate(timeout=30)
    assert again.returncode == 0, err
    store = SqliteStore(state / "state.sqlite")
    try:
        record = store.get_launch(left_open.name)
        assert record is not None and record.state is RecordState.FINISHED
        expected = Outcome.SUBMITTED if point == "after_sync_one" else Outcome.ALREADY_EXISTED
        assert record.outcome is expected
        assert launched(state).count(left_open.name) == 1
        takeover = store.read_takeover()
        assert takeover is not None and takeover["open_launches"][0]["launch"] == left_open.name
    finally:
        store.close()


def test_second_run_on_the_same_state_is_refused(tmp_path: Path, jobs: Path) -> None:
    state = tmp_path / "state"
    first = run(state, jobs)
    time.sleep(1.5)
    second = run(state, jobs, "--duration", "1")
    _, err = second.communicate(timeout=30)
    first.send_signal(signal.SIGTERM)
    first.communicate(timeout=20)
    assert second.returncode == 1
    assert "another cronframework process is running" in err
    assert "Traceback" not in err


def test_invalid_job_file_is_one_line_per_error_and_exit_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("job:\n  x:\n    schedul: '* * * * *'\n    task: {command: [/bin/true]}\n")
    proc = run(tmp_path / "state", bad)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "Traceback" not in err
    assert "bad.yaml:3" in err


SECOND_JOB = """
  second:
    schedule: "* * * * * *"
    backend: process
    task:
      command: ["/bin/true"]
"""


def launches_of(state: Path, job: str) -> int:
    return sum(name.startswith(f"{job}-") for name in launched(state))


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_sighup_reloads_the_job_files_and_keeps_the_jobs_when_a_file_is_invalid(tmp_path: Path, jobs: Path) -> None:
    state = tmp_path / "state"
    proc = run(state, jobs, "--no-api")
    try:
        wait_for(lambda: launches_of(state, "beat") >= 1, "the first launch")
        jobs.write_text(JOBS + SECOND_JOB)
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: launches_of(state, "second") >= 1, "the added job's first launch")
        jobs.write_text(JOBS + SECOND_JOB + "    schedul: oops\n")
        proc.send_signal(signal.SIGHUP)
        beats, seconds = launches_of(state, "beat"), launches_of(state, "second")
        wait_for(lambda: launches_of(state, "beat") >= beats + 2, "launches after the invalid reload")
        wait_for(lambda: launches_of(state, "second") >= seconds + 2, "the added job after the invalid reload")
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    [reloaded] = [line for line in err.splitlines() if "jobs reloaded" in line]
    assert "jobs_created=1" in reloaded and "jobs_updated=0" in reloaded and "jobs_deleted=0" in reloaded
    assert f"{jobs}:14:5" in err  # the invalid key, by file:line:col
    assert "jobs not reloaded" in err
    store = SqliteStore(state / "state.sqlite")
    try:
        assert set(store.read_specs()) == {"beat", "second"}
    finally:
        store.close()


def test_run_config_file_reaches_the_backends(tmp_path: Path, jobs: Path) -> None:
    state, elsewhere = tmp_path / "state", tmp_path / "elsewhere"
    config = tmp_path / "run.yaml"
    config.write_text(f"backends:\n  process:\n    state_dir: {elsewhere}\nscheduler:\n  poll_interval: 0.5\n")
    proc = run(state, jobs, "--config", str(config), "--duration", "3s", "--no-api")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert [p.name for p in elsewhere.iterdir()]
    assert launched(state) == []


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("backends: {}\nscheduler:\n  workers: many\n", ":3:12"),
        ("scheduler: {}\nzookeeper:\n  hosts: zk1:2181\n", ":2:1"),
        ("api:\n  port: 1\n  port: 2\n", ":3:3"),
    ],
)
def test_a_bad_run_config_is_one_positioned_line_and_exit_1(tmp_path: Path, jobs: Path, text: str, where: str) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(text)
    proc = run(tmp_path / "state", jobs, "--config", str(config), "--no-api")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "Traceback" not in err
    assert f"{config}{where}" in err


def test_run_duration_refuses_what_is_not_a_duration(tmp_path: Path, jobs: Path) -> None:
    proc = run(tmp_path / "state", jobs, "--duration", "soon")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "Traceback" not in err
    assert "--duration" in err

"""Operator commands that used to report success and do nothing: each now does what it says or refuses, exit 1
for a refused operation, exit 2 for a bad argument (issue 21, item 5; `status` in embedded mode, item 7)."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cronframework.catalog.apply import apply_diff, diff_specs
from cronframework.cli import main
from cronframework.errors import StateStoreUnavailable
from cronframework.records import (
    Begin,
    JobResults,
    JobState,
    LaunchRecord,
    Outcome,
    RecordState,
    ResultBatch,
    SpecChange,
    TaskResult,
)
from cronframework.spec.files import load_jobs
from cronframework.store.sqlite import SqliteStore
from cronframework.store.zookeeper.client import connect_zk

JOBS = """
job:
  beat:
    schedule: "0 3 * * *"
    backend: process
    task:
      command: ["/bin/true"]
  asleep:
    schedule: "0 4 * * *"
    enabled: false
    backend: process
    task:
      command: ["/bin/true"]
"""


@pytest.fixture
def jobs(tmp_path: Path) -> Path:
    path = tmp_path / "jobs.yaml"
    path.write_text(JOBS)
    return path


@pytest.fixture
def state(tmp_path: Path, jobs: Path) -> Path:
    """An embedded state dir holding the jobs of `jobs` and the next instant of `beat`, as a stopped `run` leaves
    it."""
    folder = tmp_path / "state"
    store = SqliteStore(folder / "state.sqlite")
    try:
        apply_diff(store, diff_specs([j.spec for j in load_jobs([str(jobs)])], {}, prune=True))
        fence = store.acquire_leadership("earlier-run")
        store.put_job_states(fence, [JobState("beat", datetime(2026, 11, 25, 3, tzinfo=UTC))])
    finally:
        store.close()
    return folder


@pytest.fixture
def running(state: Path) -> Iterator[SqliteStore]:
    """A scheduler holding the state's lock, as `run` does (an flock taken through another open file)."""
    store = SqliteStore(state / "state.sqlite")
    store.acquire_leadership("host-a:4242")
    yield store
    store.close()


def cli(*args: str) -> int:
    return main(list(args))


def stored(state: Path) -> SqliteStore:
    return SqliteStore(state / "state.sqlite")


def pending(state: Path) -> list[str]:
    store = stored(state)
    try:
        return [t.job for t in store.pending_triggers()]
    finally:
        store.close()


# -- apply -----------------------------------------------------------------------------------------------------------
def test_apply_is_refused_while_run_holds_the_state_and_writes_nothing(
    tmp_path: Path, jobs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [sys.executable, "-m", "cronframework", "run", str(jobs), "--state-dir", str(state), "--no-api"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        wait_until_held(state)
        more = tmp_path / "more.yaml"
        more.write_text(JOBS.replace("beat", "extra").replace("asleep", "other"))
        assert cli("apply", str(more), "--state-dir", str(state)) == 1
        err = capsys.readouterr().err
        assert "running" in err and "SIGHUP" in err and str(state) in err
        store = stored(state)
        assert sorted(store.read_specs()) == ["asleep", "beat"]
        store.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err


def wait_until_held(state: Path) -> None:
    """Until `run` holds the state's lock (probed with a shared lock of our own, as `status` does)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if locked(state / "state.sqlite.lock"):
            return
        time.sleep(0.1)
    raise AssertionError("`run` never took the state lock")


def locked(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def test_apply_into_a_stopped_embedded_state_is_refused_as_the_next_run_replaces_it(
    state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    more = tmp_path / "more.yaml"
    more.write_text(JOBS.replace("beat", "extra"))
    assert cli("apply", str(more), "--state-dir", str(state)) == 1
    assert "cronframework run" in capsys.readouterr().err
    store = stored(state)
    assert sorted(store.read_specs()) == ["asleep", "beat"]
    store.close()


def test_apply_without_a_cluster_or_state_names_the_options(
    tmp_path: Path, jobs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("apply", str(jobs), "--state-dir", str(tmp_path / "none")) == 1
    assert "--zk" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()


# -- trigger ---------------------------------------------------------------------------------------------------------
def test_trigger_reaches_a_running_scheduler(
    state: Path, running: SqliteStore, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("trigger", "beat", "--state-dir", str(state)) == 0
    assert "host-a:4242" in capsys.readouterr().out
    assert pending(state) == ["beat"]


@pytest.mark.parametrize("job", ["nope", "asleep"])
def test_trigger_of_an_unknown_or_disabled_job_is_refused(
    state: Path, running: SqliteStore, job: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("trigger", job, "--state-dir", str(state)) == 1
    assert job in capsys.readouterr().err
    assert pending(state) == []


def test_trigger_of_a_job_whose_stored_spec_is_broken_is_refused(
    state: Path, running: SqliteStore, capsys: pytest.CaptureFixture[str]
) -> None:
    document = {"schedule": "not a schedule", "backend": "process", "task": {"command": ["/bin/true"]}}
    running.write_specs([SpecChange("broken", document, None)])
    assert cli("trigger", "broken", "--state-dir", str(state)) == 1
    assert "broken" in capsys.readouterr().err
    assert pending(state) == []


def test_trigger_with_no_scheduler_running_is_refused_unless_queued(
    state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("trigger", "beat", "--state-dir", str(state)) == 1
    assert "--queue" in capsys.readouterr().err
    assert pending(state) == []
    assert cli("trigger", "beat", "--state-dir", str(state), "--queue") == 0
    assert "next" in capsys.readouterr().out
    assert pending(state) == ["beat"]


# -- history and logs ------------------------------------------------------------------------------------------------
def test_history_of_an_unknown_job_is_an_error(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("history", "beet", "--state-dir", str(state)) == 1
    assert "beat" in capsys.readouterr().err  # the suggestion


def test_history_of_a_deleted_job_still_shows_its_records(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = stored(state)
    fence = store.acquire_leadership("test")
    record = LaunchRecord(
        name="gone-20261125t030000z",
        job="gone",
        scheduled=datetime(2026, 11, 25, 3, tzinfo=UTC),
        epoch=fence.epoch,
        state=RecordState.FINISHED,
        outcome=Outcome.SKIPPED,
        reason="paused",
    )
    store.begin(fence, [begin_item(record)])
    store.close()
    assert cli("history", "gone", "--state-dir", str(state), "--no-lookup") == 0
    assert "gone-20261125t030000z" in capsys.readouterr().out


def test_history_and_status_show_each_task_s_result_with_stable_keys(
    state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = stored(state)
    fence = store.acquire_leadership("test")
    at = datetime(2026, 11, 24, 3, tzinfo=UTC)
    launched = LaunchRecord("beat-20261124t030000z", "beat", at, RecordState.FINISHED, outcome=Outcome.SUBMITTED)
    store.begin(fence, [begin_item(launched)])
    ended = launched.with_result(
        TaskResult.FAILED, reason="exit code 3", exit_code=3, started_at=at, ended_at=at + timedelta(seconds=12)
    )
    store.record_results(fence, ResultBatch([ended], [JobResults("beat").add(ended, final=True, now=at)]))
    store.close()
    assert cli("history", "beat", "--state-dir", str(state), "--json", "--no-lookup") == 0
    [row] = json.loads(capsys.readouterr().out)
    assert {k: row[k] for k in ("outcome", "result", "exit_code", "result_reason", "duration", "task_attempt")} == {
        "outcome": "submitted",
        "result": "failed",
        "exit_code": 3,
        "result_reason": "exit code 3",
        "duration": 12.0,
        "task_attempt": 1,
    }
    assert row["ended_at"] == "2026-11-24T03:00:12+00:00" and "lookup" not in row
    assert cli("history", "beat", "--state-dir", str(state), "--no-lookup") == 0
    assert "failed (exit 3)" in capsys.readouterr().out
    assert cli("status", "--state-dir", str(state), "--json", "--no-lookup") == 0
    beat = next(j for j in json.loads(capsys.readouterr().out)["jobs"] if j["job"] == "beat")
    assert beat["last_launch"]["result"] == "failed" and beat["last_launch"]["duration"] == 12.0
    assert (beat["failures"], beat["last_success"], beat["last_failure"]) == (1, None, "2026-11-24T03:00:12+00:00")
    assert beat["recent"] == [
        {"launch": launched.name, "result": "failed", "ended_at": "2026-11-24T03:00:12+00:00", "duration": 12.0}
    ]
    assert cli("status", "--state-dir", str(state), "--no-lookup") == 0
    assert "failed (exit 3) 12.0s" in capsys.readouterr().out


def begin_item(record: LaunchRecord) -> Begin:
    return Begin(record, JobState(record.job, record.scheduled, record.name))


@pytest.mark.parametrize("limit", ["-3", "0", "many"])
def test_history_limit_must_be_a_positive_integer(state: Path, limit: str) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli("history", "beat", "--state-dir", str(state), "--limit", limit)
    assert exit_.value.code == 2


def test_logs_of_an_unknown_launch_is_an_error(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("logs", "beat", "--launch", "bogus", "--state-dir", str(state)) == 1
    assert "bogus" in capsys.readouterr().err


def test_logs_of_an_unknown_job_is_an_error(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("logs", "nope", "--state-dir", str(state)) == 1
    assert "nope" in capsys.readouterr().err


# -- status (embedded) -----------------------------------------------------------------------------------------------
def test_status_says_no_scheduler_holds_the_state_and_marks_next_launches_stale(
    state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("status", "--state-dir", str(state), "--no-lookup") == 0
    out = capsys.readouterr().out
    assert "no scheduler" in out and "(stale)" in out
    assert cli("status", "--state-dir", str(state), "--no-lookup", "--json") == 0
    document = json.loads(capsys.readouterr().out)
    assert document["stale"] is True and document["leader"] is None


def test_status_names_the_embedded_scheduler_that_holds_the_state(
    state: Path, running: SqliteStore, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("status", "--state-dir", str(state), "--no-lookup") == 0
    out = capsys.readouterr().out
    assert "host-a:4242" in out and "(stale)" not in out
    assert cli("status", "--state-dir", str(state), "--no-lookup", "--json") == 0
    document = json.loads(capsys.readouterr().out)
    assert document["stale"] is False and document["leader"]["replica"] == "host-a:4242"


# -- scheduler -------------------------------------------------------------------------------------------------------
def test_scheduler_needs_an_ensemble(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli("scheduler", "--no-api")
    assert exit_.value.code == 2
    assert "--zk" in capsys.readouterr().err


def test_scheduler_help_names_the_default_ensemble_address(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli("scheduler", "--help")
    assert "127.0.0.1:2181" in capsys.readouterr().out


def test_every_connection_error_names_the_ensemble(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        hosts = f"127.0.0.1:{probe.getsockname()[1]}"
    caplog.set_level(logging.WARNING, logger="kazoo")
    with pytest.raises(StateStoreUnavailable, match=hosts):
        connect_zk(hosts, timeout=1.0, retries=1)
    warnings = [r for r in caplog.records if r.name.startswith("kazoo") and r.levelno >= logging.WARNING]
    assert warnings
    assert all(getattr(r, "zk_hosts", None) == hosts for r in warnings)


# -- the lock probe --------------------------------------------------------------------------------------------------
def test_the_lock_holder_is_gone_once_its_process_lets_go(state: Path) -> None:
    holder = stored(state)
    leadership = holder.acquire_leadership("host-b:7")
    probe = stored(state)
    try:
        assert probe.lock_holder() == leadership
        holder.close()  # as a dying process's lock goes with it; the holder's name stays in the file
        assert probe.lock_holder() is None
    finally:
        probe.close()


def test_a_scheduler_starting_during_a_probe_waits_it_out(state: Path) -> None:
    """A probe's instant of shared lock must not make a `run` starting at that moment fail as if one were running."""
    fd = os.open(state / "state.sqlite.lock", os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_SH)
    threading.Timer(0.2, os.close, (fd,)).start()
    store = stored(state)
    try:
        assert store.acquire_leadership("host-c:9").replica == "host-c:9"
    finally:
        store.close()

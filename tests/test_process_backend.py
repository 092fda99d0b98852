"""The process backend: the conformance suite, plus the crash windows only a local backend can stage."""

from __future__ import annotations

import errno
import json
import os
import pwd
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from backends import process_runner as rt
from backends.process import ProcessBackend, create, default_state_dir
from cronframework.adapters import load_backend
from cronframework.errors import PermanentBackendError, TransientBackendError
from cronframework.launch import LaunchState, SubmitOutcome
from tests.backend_conformance import (
    BackendConformance,
    MakeLaunch,
    conformance_launch,
    finished,
    unique_job,
    wait_for,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
FAST = 10.0  # every wait below is a deadline, not a sleep; tasks themselves sleep at most a second or two


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[ProcessBackend]:
    adapter = ProcessBackend(tmp_path / "state", kill_grace=1.0, start_grace=10.0)
    yield adapter
    _stop_all(adapter)


@pytest.fixture
def make_launch() -> MakeLaunch:
    return conformance_launch


def _stop_all(adapter: ProcessBackend) -> None:
    """Leave no task behind: stop every launch and wait until each one has an outcome."""
    names = [entry.name for entry in adapter.state_dir.iterdir() if (entry / rt.CLAIM).exists()]
    for name in names:
        adapter.stop(name)
    for name in names:
        wait_for(lambda n=name: adapter.lookup(n), lambda s: s is None or not s.state.active, FAST)  # type: ignore[misc]
    adapter.close()


def _no_spawn(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stage a scheduler that dies right after claiming: the supervisor is never started."""
    monkeypatch.setattr(ProcessBackend, "_spawn", lambda self, launch_dir: None)


def _run_late_supervisor(launch_dir: Path) -> int:
    """A supervisor that starts only after someone gave up on it (e.g. a very slow fork)."""
    cmd = [sys.executable, "-m", "backends.process_runner", str(launch_dir)]
    return subprocess.run(cmd, cwd=REPO_ROOT, timeout=FAST, check=False).returncode


class TestProcessConformance(BackendConformance):
    timeout = 20.0


def test_task_outlives_a_scheduler_killed_mid_run(backend: ProcessBackend) -> None:
    job = unique_job("crash")
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from backends.process import ProcessBackend\n"
        "from tests.backend_conformance import conformance_launch\n"
        "launch = conformance_launch(sys.argv[2], ['/bin/sh', '-c', 'sleep 1.5; exit 7'])\n"
        "ProcessBackend(Path(sys.argv[1])).submit(launch.name, launch)\n"
        "print(launch.name, flush=True)\n"
        "time.sleep(60)\n"
    )
    scheduler = subprocess.Popen(
        [sys.executable, "-c", script, str(backend.state_dir), job],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert scheduler.stdout is not None
    name = scheduler.stdout.readline().strip()
    scheduler.send_signal(signal.SIGKILL)
    scheduler.wait(FAST)
    status = backend.lookup(name)
    assert status is not None and status.state.active, status  # the scheduler died while the task ran
    status = wait_for(lambda: backend.lookup(name), finished, FAST)
    assert status is not None
    assert (status.state, status.exit_code, status.reason) == (LaunchState.FAILED, 7, "exit code 7")
    assert status.started_at is not None and status.finished_at is not None


def test_claim_without_supervisor_is_pending_then_lost_and_never_runs(
    tmp_path: Path, backend: ProcessBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran = tmp_path / "ran"
    launch = conformance_launch(unique_job("claim"), ["/bin/sh", "-c", f"touch {ran}"])
    _no_spawn(monkeypatch)
    assert backend.submit(launch.name, launch) is SubmitOutcome.SUBMITTED
    status = backend.lookup(launch.name)
    assert status is not None and status.state is LaunchState.PENDING
    monkeypatch.undo()
    later = ProcessBackend(backend.state_dir, start_grace=0.0)  # a new leader, past the start grace
    status = later.lookup(launch.name)
    assert status is not None and status.state is LaunchState.LOST
    assert status.reason and "no supervisor started" in status.reason
    assert later.submit(launch.name, launch) is SubmitOutcome.ALREADY_EXISTED
    assert _run_late_supervisor(backend.state_dir / launch.name) == 0
    assert later.lookup(launch.name) == status
    assert not ran.exists()


def test_supervisor_that_wins_the_start_token_runs_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    adapter = ProcessBackend(tmp_path / "state", start_grace=0.0)
    launch = conformance_launch(unique_job("late"), ["/bin/sh", "-c", "echo once >> count"], workdir=str(tmp_path))
    _no_spawn(monkeypatch)
    adapter.submit(launch.name, launch)
    assert _run_late_supervisor(adapter.state_dir / launch.name) == 0
    assert _run_late_supervisor(adapter.state_dir / launch.name) == 0
    status = adapter.lookup(launch.name)
    assert status is not None and status.state is LaunchState.SUCCEEDED
    assert (tmp_path / "count").read_text() == "once\n"


def test_recycled_supervisor_pid_is_not_taken_for_alive(
    backend: ProcessBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    launch = conformance_launch(unique_job("pid"), ["/bin/sh", "-c", "true"])
    _no_spawn(monkeypatch)
    backend.submit(launch.name, launch)
    launch_dir = backend.state_dir / launch.name
    assert rt.create_exclusive(launch_dir / rt.TOKEN, rt.RUN)
    me = rt.proc_identity(os.getpid())
    assert me is not None
    rt.write_json_atomic(launch_dir / rt.SUPERVISOR, me)
    status = backend.lookup(launch.name)
    assert status is not None and status.state is LaunchState.PENDING  # the recorded process is alive
    rt.write_json_atomic(launch_dir / rt.SUPERVISOR, {**me, "starttime": me["starttime"] - 1})
    status = backend.lookup(launch.name)  # same pid, different process: it must read as dead
    assert status is not None and status.state is LaunchState.LOST
    assert status.reason == "supervisor died before recording the task's exit"


def test_timeout_terminates_the_task(backend: ProcessBackend) -> None:
    launch = conformance_launch(unique_job("timeout"), ["/bin/sh", "-c", "sleep 5"], timeout="300ms")
    started = time.monotonic()
    backend.submit(launch.name, launch)
    status = wait_for(lambda: backend.lookup(launch.name), finished, FAST)
    assert status is not None
    assert (status.state, status.reason, status.exit_code) == (LaunchState.FAILED, "timed out", 128 + 15)
    assert status.timed_out
    assert time.monotonic() - started < 4


def test_timeout_escalates_to_sigkill_when_sigterm_is_ignored(backend: ProcessBackend) -> None:
    launch = conformance_launch(unique_job("stubborn"), ["/bin/sh", "-c", "trap '' TERM; sleep 5"], timeout="200ms")
    backend.submit(launch.name, launch)
    status = wait_for(lambda: backend.lookup(launch.name), finished, FAST)
    assert status is not None
    assert (status.state, status.reason, status.exit_code) == (LaunchState.FAILED, "timed out", 128 + 9)


def test_command_not_found_is_a_failed_launch(backend: ProcessBackend) -> None:
    launch = conformance_launch(unique_job("nocmd"), ["cronframework-no-such-command", "x"])
    assert backend.submit(launch.name, launch) is SubmitOutcome.SUBMITTED
    status = wait_for(lambda: backend.lookup(launch.name), finished, FAST)
    assert status is not None
    assert (status.state, status.exit_code) == (LaunchState.FAILED, 127)
    assert status.reason == "command not found: cronframework-no-such-command"


def test_missing_workdir_is_a_failed_launch(backend: ProcessBackend, tmp_path: Path) -> None:
    launch = conformance_launch(unique_job("nowd"), ["/bin/true"], workdir=str(tmp_path / "absent"))
    backend.submit(launch.name, launch)
    status = wait_for(lambda: backend.lookup(launch.name), finished, FAST)
    assert status is not None and status.state is LaunchState.FAILED
    assert status.reason == f"workdir not found: {tmp_path / 'absent'}"


def test_signal_death_is_reported(backend: ProcessBackend) -> None:
    launch = conformance_launch(unique_job("sig"), ["/bin/sh", "-c", "kill -9 $$"])
    backend.submit(launch.name, launch)
    status = wait_for(lambda: backend.lookup(launch.name), finished, FAST)
    assert status is not None
    assert (status.state, status.exit_code, status.reason) == (
        LaunchState.FAILED,
        137,
        "killed by signal 9 (SIGKILL)",
    )


def test_image_is_refused_before_claiming(backend: ProcessBackend) -> None:
    job = unique_job("img")
    launch = conformance_launch(job, ["/bin/true"], image="alpine:3")
    with pytest.raises(PermanentBackendError, match=r"task\.image is not supported"):
        backend.submit(launch.name, launch)
    assert backend.list(job) == []
    assert backend.lookup(launch.name) is None


def test_task_env_is_a_small_base_plus_the_task_env(backend: ProcessBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRONFRAMEWORK_TEST_SECRET", "hunter2")
    command = 'echo "secret=${CRONFRAMEWORK_TEST_SECRET-unset} foo=$FOO path=${PATH:+set}"; echo oops >&2'
    launch = conformance_launch(unique_job("env"), ["/bin/sh", "-c", command], env={"FOO": "bar"})
    backend.submit(launch.name, launch)
    wait_for(lambda: backend.lookup(launch.name), finished, FAST)
    assert backend.logs(launch.name) == "secret=unset foo=bar path=set\noops\n"


def test_stop_before_the_supervisor_starts_prevents_the_run(
    tmp_path: Path, backend: ProcessBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran = tmp_path / "ran"
    launch = conformance_launch(unique_job("early"), ["/bin/sh", "-c", f"touch {ran}"])
    _no_spawn(monkeypatch)
    backend.submit(launch.name, launch)
    backend.stop(launch.name)
    assert _run_late_supervisor(backend.state_dir / launch.name) == 0
    status = backend.lookup(launch.name)
    assert status is not None and (status.state, status.reason) == (LaunchState.FAILED, "stopped")
    assert not ran.exists()


def test_stop_reaches_a_task_whose_supervisor_died(backend: ProcessBackend) -> None:
    launch = conformance_launch(unique_job("orphan"), ["/bin/sh", "-c", "sleep 30"])
    backend.submit(launch.name, launch)
    wait_for(lambda: backend.lookup(launch.name), lambda s: s is not None and s.state is LaunchState.RUNNING, FAST)
    launch_dir = backend.state_dir / launch.name
    supervisor = rt.read_json(launch_dir / rt.SUPERVISOR)
    task = rt.read_json(launch_dir / rt.TASK)
    assert supervisor is not None and task is not None
    os.kill(supervisor["pid"], signal.SIGKILL)
    wait_for(lambda: backend.lookup(launch.name), lambda s: s is not None and s.reason is not None, FAST)
    status = backend.lookup(launch.name)
    assert status is not None and status.state is LaunchState.RUNNING  # the task itself still runs
    backend.stop(launch.name)
    status = backend.lookup(launch.name)
    assert status is not None and (status.state, status.reason) == (LaunchState.FAILED, "stopped")
    assert not rt.is_alive(task)


def test_remove_refuses_a_running_launch(backend: ProcessBackend) -> None:
    launch = conformance_launch(unique_job("rm"), ["/bin/sh", "-c", "sleep 30"])
    backend.submit(launch.name, launch)
    with pytest.raises(PermanentBackendError, match="stop it before removing"):
        backend.remove(launch.name)
    assert backend.lookup(launch.name) is not None


def test_list_matches_the_job_exactly(backend: ProcessBackend) -> None:
    job = unique_job("ls")
    mine = conformance_launch(job, ["/bin/true"])
    longer = conformance_launch(f"{job}-x", ["/bin/true"])
    for launch in (mine, longer):
        backend.submit(launch.name, launch)
    (backend.state_dir / "not-a-launch").mkdir()
    assert backend.list(job) == [mine.name]
    assert backend.list(f"{job}-x") == [longer.name]


def test_unsafe_names_are_refused(backend: ProcessBackend) -> None:
    with pytest.raises(PermanentBackendError):
        backend.lookup("../escape-20260101t000000z")


def test_create_reads_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    adapter = create({"state_dir": str(tmp_path / "s"), "kill_grace": "2s", "start_grace": 3})
    assert (adapter.state_dir, adapter.kill_grace, adapter.start_grace) == (tmp_path / "s", 2.0, 3.0)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert default_state_dir() == tmp_path / "xdg" / "cronframework" / "process"
    loaded = load_backend("process", {"state_dir": str(tmp_path / "ep")})
    assert isinstance(loaded, ProcessBackend)


def test_exit_record_is_plain_json(backend: ProcessBackend) -> None:
    """The launch directory is an interface too (operators read it): the outcome is readable JSON."""
    launch = conformance_launch(unique_job("json"), ["/bin/sh", "-c", "exit 4"])
    backend.submit(launch.name, launch)
    wait_for(lambda: backend.lookup(launch.name), finished, FAST)
    record = json.loads((backend.state_dir / launch.name / rt.EXIT).read_text())
    assert (record["state"], record["exit_code"], record["reason"]) == ("failed", 4, "exit code 4")


def test_supervisor_spawn_failure_withdraws_the_claim(backend: ProcessBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    launch = conformance_launch(unique_job("fork"), ["/bin/true"])

    def no_fork(*args: object, **kwargs: object) -> None:
        raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")

    monkeypatch.setattr(subprocess, "Popen", no_fork)
    with pytest.raises(TransientBackendError, match="Resource temporarily unavailable"):
        backend.submit(launch.name, launch)
    monkeypatch.undo()
    assert backend.lookup(launch.name) is None
    assert backend.submit(launch.name, launch) is SubmitOutcome.SUBMITTED
    status = wait_for(lambda: backend.lookup(launch.name), finished, FAST)
    assert status is not None and status.state is LaunchState.SUCCEEDED


def test_task_user_is_switched_only_by_root(backend: ProcessBackend) -> None:
    launch = conformance_launch(
        unique_job("user"), ["/bin/sh", "-c", 'echo "$(id -u) $USER"'], user="nobody", workdir="/"
    )
    if os.geteuid() != 0:
        with pytest.raises(PermanentBackendError, match="needs the scheduler to run as root"):
            backend.submit(launch.name, launch)
        return
    backend.submit(launch.name, launch)
    status = wait_for(lambda: backend.lookup(launch.name), finished, FAST)
    assert status is not None and status.state is LaunchState.SUCCEEDED, status
    assert backend.logs(launch.name) == f"{pwd.getpwnam('nobody').pw_uid} nobody\n"


def test_unknown_task_user_is_refused(backend: ProcessBackend) -> None:
    launch = conformance_launch(unique_job("nouser"), ["/bin/true"], user="cronframework-no-such-user")
    with pytest.raises(PermanentBackendError, match="does not exist"):
        backend.submit(launch.name, launch)

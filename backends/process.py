"""The process backend: each launch is a local subprocess watched by its own detached supervisor.

For single-machine (embedded) mode. Idempotency and crash safety rest on two exclusive files per launch
directory (layout in `backends.process_runner`): `claim` decides which submit owns a name, `start` decides
whether the supervisor runs the task or somebody already gave up on it. Giving up also takes `start`, so a
launch reported LOST never turns RUNNING later and a name never runs twice. See docs/backends.md "## Process".
"""

from __future__ import annotations

import contextlib
import errno
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Collection, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from backends import process_runner as rt
from cronframework.errors import PermanentBackendError, TransientBackendError
from cronframework.launch import BackendStatus, Launch, LaunchState, SubmitOutcome
from cronframework.naming import parse_launch_name
from cronframework.schedule.duration import parse_duration
from cronframework.send_guard import before_send

INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")
_LOG_TAIL_BYTES = 1 << 20
_STOP_POLL = 0.05
_EXIT_POLL = 0.2  # how often `ended` looks for new exit files while none of the launches it watches has one
_PERMANENT_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.ENAMETOOLONG})


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return Path(base) / "cronframework" / "process"


def _seconds(value: Any, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, str):
        return parse_duration(value).total_seconds()
    return float(value)


class ProcessBackend:
    """Launches live in `state_dir/<name>/`; the directory is the whole record, any process can read it."""

    blocking = True
    enforces_timeout = True  # the supervisor kills a task past task.timeout; the leader need not stop it
    watches = True  # each supervisor writes its launch's exit file: `ended` looks for those
    confirms = False

    def __init__(self, state_dir: Path, *, kill_grace: float = 10.0, start_grace: float = 10.0) -> None:
        self.state_dir = state_dir
        self.kill_grace = kill_grace
        self.start_grace = start_grace
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()
        with _fs_errors(f"create {state_dir}"):
            state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)

    def submit(self, name: str, launch: Launch) -> SubmitOutcome:
        spec = self._run_spec(name, launch)  # validate before claiming: a rejected task leaves no trace
        launch_dir = self._dir(name)
        self._reap()
        claim = f'{{"claimed_at": "{rt.now_iso()}", "scheduler_pid": {os.getpid()}}}'
        with _fs_errors(f"submit {name}"):
            launch_dir.mkdir(exist_ok=True, mode=0o700)
            # The claim is the idempotency key. If we die right after it, no supervisor ever takes `start`:
            # lookup reports PENDING for start_grace seconds, then takes `start` itself and reports LOST.
            before_send()  # a leader frozen since its check must not claim after it was deposed (send_guard.py)
            if not rt.create_exclusive(launch_dir / rt.CLAIM, claim):
                return SubmitOutcome.ALREADY_EXISTED
            self._start(launch_dir, spec)
        return SubmitOutcome.SUBMITTED

    def _start(self, launch_dir: Path, spec: Mapping[str, Any]) -> None:
        """After the claim. If this fails nothing runs under the claim: withdraw it, a retry starts afresh."""
        try:
            rt.write_json_atomic(launch_dir / rt.SPEC, spec)
            self._spawn(launch_dir)
        except OSError:
            self._discard(launch_dir)
            raise

    def _run_spec(self, name: str, launch: Launch) -> dict[str, Any]:
        task = launch.spec.task
        if task.image:
            raise PermanentBackendError("process backend runs commands; task.image is not supported")
        if task.mounts or task.network:
            raise PermanentBackendError("process backend runs host commands; mounts and network need docker")
        identity = _user_identity(task.user)
        env = self._task_env(launch, identity)
        return {
            "name": name,
            "argv": [*(task.command or []), *task.args],
            "env": env,
            "workdir": task.workdir or env.get("HOME") or "/",
            "identity": identity,
            "timeout": task.timeout.total_seconds() if task.timeout else None,
            "kill_grace": self.kill_grace,
        }

    @staticmethod
    def _task_env(launch: Launch, identity: Mapping[str, Any] | None) -> dict[str, str]:
        """A small, predictable base (never the scheduler's secrets), then task env and launch identity."""
        base = {key: os.environ[key] for key in INHERITED_ENV if key in os.environ}
        if identity:
            base.update(HOME=identity["home"], USER=identity["name"], LOGNAME=identity["name"])
        return {**base, **launch.env()}

    def _spawn(self, launch_dir: Path) -> None:
        """A new session: the supervisor must outlive us, and never get a terminal's Ctrl-C meant for us."""
        with open(launch_dir / "supervisor.log", "ab") as log:
            child = subprocess.Popen(
                [sys.executable, "-m", "backends.process_runner", str(launch_dir)],
                cwd=launch_dir,
                env=_supervisor_env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                close_fds=True,
            )
        with self._lock:
            self._children[child.pid] = child

    def lookup(self, name: str) -> BackendStatus | None:
        self._reap()
        launch_dir = self._dir(name)
        with _fs_errors(f"lookup {name}"):
            return self._lookup(launch_dir)

    def _lookup(self, launch_dir: Path) -> BackendStatus | None:
        if not (launch_dir / rt.CLAIM).exists():
            return None  # a directory without a claim is a submit that died before claiming: nothing exists
        done = rt.read_json(launch_dir / rt.EXIT)
        if done is not None:
            return _status_from_exit(done)
        token = rt.read_text(launch_dir / rt.TOKEN)
        if token is None:
            return self._unstarted(launch_dir)
        if token != rt.RUN:
            return BackendStatus(LaunchState.LOST, reason=token)  # who gave up crashed before writing exit
        return self._supervised(launch_dir)

    def _unstarted(self, launch_dir: Path) -> BackendStatus | None:
        """Claimed, no supervisor yet: pending while one may still come, then lost, decided once for all."""
        age = time.time() - (launch_dir / rt.CLAIM).stat().st_mtime
        if age < self.start_grace:
            return BackendStatus(LaunchState.PENDING, reason="waiting for the supervisor to start")
        reason = f"no supervisor started within {self.start_grace:g}s of the claim (submit crashed?)"
        if rt.create_exclusive(launch_dir / rt.TOKEN, reason):
            rt.write_json_atomic(launch_dir / rt.EXIT, rt.exit_record("lost", reason))
        return self._lookup(launch_dir)  # we, or a supervisor that beat us to `start`, decided

    def _supervised(self, launch_dir: Path) -> BackendStatus:
        task = rt.read_json(launch_dir / rt.TASK)
        started = _parse_time(task.get("started_at")) if task else None
        if rt.is_alive(rt.read_json(launch_dir / rt.SUPERVISOR)):
            state = LaunchState.RUNNING if task else LaunchState.PENDING
            return BackendStatus(state, started_at=started)
        done = rt.read_json(launch_dir / rt.EXIT)  # it may have written the outcome just before exiting
        if done is not None:
            return _status_from_exit(done)
        if rt.is_alive(task):
            reason = "supervisor gone; the exit will not be recorded"
            return BackendStatus(LaunchState.RUNNING, reason=reason, started_at=started)
        return BackendStatus(
            LaunchState.LOST, reason="supervisor died before recording the task's exit", started_at=started
        )

    def ended(self, names: Collection[str], timeout: float) -> set[str]:
        """The launches among `names` whose exit file is written (or whose directory is gone), looking again every
        fifth of a second for up to `timeout` while none is. A supervisor that died without writing one is left to
        the follower's sweep (`lookup` reports it lost)."""
        deadline = time.monotonic() + timeout
        while True:
            with _fs_errors("watch exit files"):
                done = {n for n in names if _has_exited(self.state_dir / n)}
            if done or time.monotonic() >= deadline:
                return done
            time.sleep(min(_EXIT_POLL, max(0.0, deadline - time.monotonic())))

    def stop(self, name: str) -> None:
        launch_dir = self._dir(name)
        with _fs_errors(f"stop {name}"):
            self._stop(launch_dir)

    def _stop(self, launch_dir: Path) -> None:
        if not (launch_dir / rt.CLAIM).exists() or (launch_dir / rt.EXIT).exists():
            return
        # Durable first: a supervisor that has not spawned the task yet reads this file and never spawns it.
        rt.write_json_atomic(launch_dir / rt.STOP, {"requested_at": rt.now_iso(), "reason": "stopped"})
        if rt.create_exclusive(launch_dir / rt.TOKEN, "stopped before start"):
            rt.write_json_atomic(launch_dir / rt.EXIT, rt.exit_record("failed", "stopped"))
            return
        if rt.read_text(launch_dir / rt.TOKEN) != rt.RUN:
            return
        supervisor = rt.read_json(launch_dir / rt.SUPERVISOR)
        if rt.is_alive(supervisor) and supervisor is not None:
            _signal(supervisor["pid"], signal.SIGTERM)  # it escalates to SIGKILL after kill_grace, even if we die now
            return
        self._stop_orphan(launch_dir)

    def _stop_orphan(self, launch_dir: Path) -> None:
        """The supervisor is gone but the task may live on: terminate its group ourselves, then record it."""
        task = rt.read_json(launch_dir / rt.TASK)
        if task is None or not rt.is_alive(task):
            return
        rt.kill_group(task["pgid"], signal.SIGTERM)
        deadline = time.monotonic() + self.kill_grace
        while rt.is_alive(task) and time.monotonic() < deadline:
            time.sleep(_STOP_POLL)
        rt.kill_group(task["pgid"], signal.SIGKILL)
        record = rt.exit_record("failed", "stopped", started_at=task.get("started_at"))
        rt.write_json_atomic(launch_dir / rt.EXIT, record)

    def list(self, job: str) -> list[str]:
        with _fs_errors(f"list {job}"):
            names = _claimed_names(self.state_dir)
        return sorted(name for name in names if _job_of(name) == job)

    def logs(self, name: str) -> str:
        launch_dir = self._dir(name)
        return "".join(_tail(launch_dir / stream) for stream in (rt.STDOUT, rt.STDERR))

    def remove(self, name: str) -> None:
        status = self.lookup(name)
        if status is None:
            return
        if status.state.active:
            raise PermanentBackendError(f"launch {name} is {status.state}; stop it before removing it")
        with _fs_errors(f"remove {name}"):
            self._discard(self._dir(name))

    def retention_horizon(self) -> None:
        """Launch directories are kept until removed: the backend itself never forgets a launch."""
        return None

    def close(self) -> None:
        """Launches outlive the scheduler by design: nothing is stopped, finished supervisors are reaped."""
        self._reap()

    def _dir(self, name: str) -> Path:
        if not _SAFE_NAME.match(name):
            raise PermanentBackendError(f"not a valid launch name for the process backend: {name!r}")
        return self.state_dir / name

    def _discard(self, launch_dir: Path) -> None:
        """Rename first, so nobody ever sees a half-deleted launch; the name is free again at once."""
        trash = self.state_dir / f".trash-{launch_dir.name}-{uuid.uuid4().hex}"
        try:
            os.rename(launch_dir, trash)
        except FileNotFoundError:
            return
        shutil.rmtree(trash, ignore_errors=True)

    def _reap(self) -> None:
        """Collect exited supervisors we spawned, so they do not linger as zombies while we run."""
        with self._lock:
            for pid in [pid for pid, child in self._children.items() if child.poll() is not None]:
                del self._children[pid]


@contextlib.contextmanager
def _fs_errors(what: str) -> Iterator[None]:
    """At the boundary: missing permissions are permanent, other filesystem trouble (disk full) is not."""
    try:
        yield
    except OSError as exc:
        kind = PermanentBackendError if exc.errno in _PERMANENT_ERRNOS else TransientBackendError
        raise kind(f"process backend: {what}: {exc}") from exc


def _claimed_names(state_dir: Path) -> list[str]:
    try:
        entries = list(os.scandir(state_dir))
    except FileNotFoundError:
        return []
    return [e.name for e in entries if e.is_dir() and os.path.exists(os.path.join(e.path, rt.CLAIM))]


def _has_exited(launch_dir: Path) -> bool:
    return (launch_dir / rt.EXIT).exists() or not launch_dir.exists()


def _status_from_exit(record: Mapping[str, Any]) -> BackendStatus:
    return BackendStatus(
        LaunchState(record["state"]),
        exit_code=record.get("exit_code"),
        reason=record.get("reason"),
        started_at=_parse_time(record.get("started_at")),
        finished_at=_parse_time(record.get("finished_at")),
        timed_out=record.get("reason") == rt.TIMED_OUT,
    )


def _parse_time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def _job_of(name: str) -> str | None:
    try:
        return parse_launch_name(name).job
    except ValueError:
        return None


def _tail(path: Path) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, os.fstat(handle.fileno()).st_size - _LOG_TAIL_BYTES))
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _user_identity(user: str | None) -> dict[str, Any] | None:
    """Switching users needs root; asking for the user we already are is a no-op rather than an error."""
    if not user:
        return None
    try:
        entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except KeyError:
        raise PermanentBackendError(f"task.user {user!r} does not exist on this host") from None
    if entry.pw_uid == os.geteuid():
        return None
    if os.geteuid() != 0:
        raise PermanentBackendError(f"task.user {user!r} needs the scheduler to run as root")
    groups = os.getgrouplist(entry.pw_name, entry.pw_gid)
    uid, gid, home = entry.pw_uid, entry.pw_gid, entry.pw_dir
    return {"name": entry.pw_name, "uid": uid, "gid": gid, "groups": groups, "home": home}


def _supervisor_env() -> dict[str, str]:
    """The scheduler's environment plus the path `backends` came from, so `-m` finds the same code."""
    root = str(Path(__file__).resolve().parent.parent)
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{path}" if path else root}


def create(config: Mapping[str, Any]) -> ProcessBackend:
    """Entry point `process`: config state_dir, kill_grace, start_grace (seconds, or durations like "10s")."""
    state_dir = config.get("state_dir")
    return ProcessBackend(
        Path(os.path.expanduser(str(state_dir))) if state_dir else default_state_dir(),
        kill_grace=_seconds(config.get("kill_grace"), 10.0),
        start_grace=_seconds(config.get("start_grace"), 10.0),
    )


__all__ = ["ProcessBackend", "create", "default_state_dir"]

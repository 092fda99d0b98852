"""The per-launch supervisor of the process backend: `python -m backends.process_runner <launch dir>`.

It runs in its own session, so a scheduler killed with SIGKILL does not take it down, and it is the only
writer of the launch's outcome. It imports only the standard library: it starts once per launch and must
start fast. The launch directory protocol it shares with `backends.process` is defined here:

    claim            created O_EXCL by submit: the idempotency key (mtime = when it was claimed)
    spec.json        what to run, written by submit after the claim
    supervisor.json  this process's identity (boot id, pid, start time), written before the start token
    start            created O_EXCL: "run" by the supervisor, or a reason by whoever gave up on it first
    task.json        the task's identity and start instant, once it was spawned
    stop.json        a stop request (reason "stopped"), also signalled with SIGTERM
    exit.json        the outcome, written once with tmp + rename
    stdout, stderr   the task's output
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

CLAIM = "claim"
SPEC = "spec.json"
SUPERVISOR = "supervisor.json"
TOKEN = "start"
TASK = "task.json"
STOP = "stop.json"
EXIT = "exit.json"
STDOUT = "stdout"
STDERR = "stderr"
RUN = "run"
TIMED_OUT = "timed out"  # the exit record's reason for a task stopped past its time limit
POLL_SECONDS = 0.05


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def boot_id() -> str:
    """Distinguishes boots: after a reboot, a (pid, start time) pair may repeat."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat from field 3 on; the command name (field 2) may contain spaces and parentheses."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()


def proc_identity(pid: int) -> dict[str, Any] | None:
    """Who `pid` is right now; compared later so that a recycled pid is never taken for our process."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    return {"boot_id": boot_id(), "pid": pid, "starttime": int(fields[19])}


def is_alive(identity: Mapping[str, Any] | None) -> bool:
    """The very process recorded in `identity` exists and is not a zombie."""
    if not identity:
        return False
    fields = _stat_fields(int(identity["pid"]))
    if fields is None or fields[0] in ("Z", "X", "x"):
        return False
    return int(fields[19]) == int(identity["starttime"]) and boot_id() == str(identity["boot_id"])


def write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    """Readers see the old file or the whole new one, never a torn write; fsynced to survive a host crash."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(dict(data), handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def create_exclusive(path: Path, content: str) -> bool:
    """Create `path` only if absent (O_CREAT|O_EXCL is atomic); False when someone else created it first. A file
    whose content could not be written (a full disk) is removed before the error propagates: left empty, it would
    hold the name for nobody, and a retried submit would answer "already existed" for a task that never runs."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return False
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError:
        path.unlink(missing_ok=True)
        raise
    return True


def read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None


def exit_record(
    state: str, reason: str | None, *, exit_code: int | None = None, started_at: str | None = None
) -> dict[str, Any]:
    return {
        "state": state,
        "exit_code": exit_code,
        "reason": reason,
        "started_at": started_at,
        "finished_at": now_iso(),
    }


def outcome_of(returncode: int, override: str | None) -> tuple[str, int, str | None]:
    """(state, exit code, reason); a signal death reads 128+S as in a shell; stop/time-out beat the code."""
    reason: str | None
    if returncode < 0:
        sig = -returncode
        code, reason = 128 + sig, f"killed by signal {sig} ({signal.Signals(sig).name})"
    else:
        code, reason = returncode, (f"exit code {returncode}" if returncode else None)
    if override:
        return "failed", code, override
    return ("succeeded" if code == 0 else "failed"), code, reason


def kill_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class Supervisor:
    """Start one task, wait for it under its time limit and stop requests, record how it ended."""

    def __init__(self, launch_dir: Path) -> None:
        self.dir = launch_dir
        self.signalled = False

    def main(self) -> int:
        # The handler goes in before supervisor.json exists: stop() signals only a recorded supervisor, so a
        # SIGTERM can never hit the default action and leave the launch without an outcome.
        signal.signal(signal.SIGTERM, self._on_term)
        write_json_atomic(self.dir / SUPERVISOR, proc_identity(os.getpid()) or {})
        if not create_exclusive(self.dir / TOKEN, RUN):
            return 0  # lookup declared the launch lost (or stop cancelled it) before we got here: never run
        spec = read_json(self.dir / SPEC)
        if spec is None:
            self._finish(exit_record("lost", "launch spec missing or unreadable"))
            return 1
        if self._stop_wanted():
            self._finish(exit_record("failed", "stopped"))
            return 0
        self._run(spec)
        return 0

    def _on_term(self, signum: int, frame: object) -> None:
        self.signalled = True

    def _stop_wanted(self) -> bool:
        return self.signalled or (self.dir / STOP).exists()

    def _finish(self, record: Mapping[str, Any]) -> None:
        write_json_atomic(self.dir / EXIT, record)

    def _run(self, spec: Mapping[str, Any]) -> None:
        started_at = now_iso()
        proc = self._spawn(spec, started_at)
        if proc is None:
            return
        task = {**(proc_identity(proc.pid) or {"pid": proc.pid}), "pgid": proc.pid, "started_at": started_at}
        write_json_atomic(self.dir / TASK, task)
        returncode, override = self._wait(proc, spec)
        state, code, reason = outcome_of(returncode, override)
        self._finish(exit_record(state, reason, exit_code=code, started_at=started_at))

    def _spawn(self, spec: Mapping[str, Any], started_at: str) -> subprocess.Popen[bytes] | None:
        """The task in its own process group (so stop/timeout reach its children, but not us)."""
        argv: list[str] = spec["argv"]
        try:
            with open(self.dir / STDOUT, "ab") as out, open(self.dir / STDERR, "ab") as err:
                return subprocess.Popen(
                    argv,
                    env=spec["env"],
                    cwd=spec["workdir"],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    process_group=0,
                    close_fds=True,
                    **_identity_kwargs(spec),
                )
        except OSError as exc:
            code, reason = _spawn_failure(exc, argv, spec["workdir"])
            self._finish(exit_record("failed", reason, exit_code=code, started_at=started_at))
            return None

    def _wait(self, proc: subprocess.Popen[bytes], spec: Mapping[str, Any]) -> tuple[int, str | None]:
        """Wait for the task; on stop or time-out SIGTERM its group, SIGKILL it after the grace period."""
        timeout = spec.get("timeout")
        deadline = time.monotonic() + timeout if timeout else None
        override: str | None = None
        kill_at = float("inf")
        while True:
            try:
                return proc.wait(timeout=POLL_SECONDS), override
            except subprocess.TimeoutExpired:
                pass
            now = time.monotonic()
            if override is None:
                override = "stopped" if self._stop_wanted() else None
                if override is None and deadline is not None and now >= deadline:
                    override = TIMED_OUT
                if override:
                    kill_group(proc.pid, signal.SIGTERM)
                    kill_at = now + float(spec.get("kill_grace", 10.0))
            elif now >= kill_at:
                kill_group(proc.pid, signal.SIGKILL)
                kill_at = float("inf")


def _identity_kwargs(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Run as the requested user (the backend only lets this through when the scheduler is root)."""
    ident = spec.get("identity")
    if not ident:
        return {}
    return {"user": ident["uid"], "group": ident["gid"], "extra_groups": ident["groups"]}


def _spawn_failure(exc: OSError, argv: list[str], workdir: str | None) -> tuple[int | None, str]:
    """Shell-style codes: a missing command is 127, an unexecutable one 126; a bad workdir has no code."""
    if exc.filename == workdir and workdir is not None and not os.path.isdir(workdir):
        return None, f"workdir not found: {workdir}"
    if isinstance(exc, FileNotFoundError):
        return 127, f"command not found: {argv[0]}"
    if isinstance(exc, PermissionError):
        return 126, f"command not executable: {argv[0]}"
    return None, f"could not start {argv[0]}: {exc.strerror or exc}"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m backends.process_runner <launch dir>", file=sys.stderr)
        return 2
    return Supervisor(Path(argv[0])).main()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

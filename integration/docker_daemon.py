"""A real Docker daemon for the integration tests and the benchmark, started by the project's own scripts.

`scripts/dockerd.sh` installs and starts dockerd; `scripts/test-image.sh` builds `cronframework-test:latest`
without a registry. `TlsDockerDaemon` is a second daemon of the tests' own whose API is TLS only. Anything that goes
wrong raises DockerDaemonError with the script output and the log tail, so a fixture can fail loudly instead of
skipping.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType

import docker
import docker.errors
import requests

from integration.certs import CertAuthority

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"
TEST_IMAGE = "cronframework-test:latest"
LOG = Path(os.environ.get("CRONFRAMEWORK_DOCKERD_LOG", "/tmp/cronframework-dockerd.log"))
SHARED_SOCKET = "unix:///var/run/docker.sock"
SHARED_PIDFILE = Path("/var/run/docker.pid")


class DockerDaemonError(Exception):
    """The daemon or the test image could not be made ready."""


def _log_tail(lines: int = 20) -> str:
    try:
        return "\n".join(LOG.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {LOG})"


def run_script(script: str, *args: str, timeout: float = 600, env: dict[str, str] | None = None) -> str:
    command = [str(SCRIPTS / script), *args]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, check=False, env={**os.environ, **(env or {})}
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DockerDaemonError(f"{' '.join(command)}: {exc}\n{_log_tail()}") from exc
    if done.returncode != 0:
        raise DockerDaemonError(
            f"{' '.join(command)} exited {done.returncode}:\n{done.stdout}{done.stderr}\n"
            f"dockerd log ({LOG}):\n{_log_tail()}"
        )
    return done.stdout + done.stderr


def start_daemon() -> None:
    run_script("dockerd.sh", "start")


def stop_daemon() -> None:
    run_script("dockerd.sh", "stop")


def ensure_ready() -> None:
    """Daemon up and test image present (both idempotent)."""
    start_daemon()
    run_script("test-image.sh")


def sdk_client() -> docker.APIClient:
    return docker.APIClient(base_url=os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock", timeout=30)


def remove_labelled(api: docker.APIClient, label: str) -> int:
    """Force-remove every container carrying `label` ("key=value"); returns how many."""
    found = api.containers(all=True, filters={"label": label})
    for entry in found:
        with contextlib.suppress(docker.errors.NotFound):
            api.remove_container(entry["Id"], force=True, v=True)
    return len(found)


class TlsDockerDaemon:
    """A dockerd of the tests' own beside the shared one: its API on a loopback TCP port over TLS, client
    certificates required (`--tlsverify`), certificates made for it (integration.certs). Its own data and exec
    roots, pidfile, containerd and copy of the test image; a unix socket in its directory lets the test look behind
    the TLS port. The shared daemon is never touched."""

    def __init__(self) -> None:
        # short: containerd's sockets live under the exec root, and a unix socket path is at most 107 bytes
        self.home = Path(tempfile.mkdtemp(prefix="cf-dtls-", dir="/tmp"))
        self.ca = CertAuthority(self.home / "tls", "docker test CA")
        self.client = self.ca.issue("cronframework")
        self.port = _free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.socket = f"unix://{self.home}/docker.sock"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120.0) -> TlsDockerDaemon:
        server = self.ca.issue("dockerd")
        argv = [
            "dockerd", "--tlsverify", f"--tlscacert={self.ca.cert}", f"--tlscert={server.cert}",
            f"--tlskey={server.key}", "-H", self.address, "-H", self.socket, f"--data-root={self.home}/data",
            f"--exec-root={self.home}/exec", f"--pidfile={self.home}/docker.pid", "--bridge=none",
            "--iptables=false", "--ip6tables=false",
        ]  # fmt: skip
        with open(self.home / "dockerd.log", "ab") as log:
            self._process = subprocess.Popen(
                argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True
            )
        self._wait(timeout)
        run_script("test-image.sh", env={"DOCKER_HOST": self.socket})
        return self

    def _wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self._process is None or self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise DockerDaemonError(f"the TLS dockerd did not come up:\n{self.log_tail()}")
            time.sleep(0.5)

    def _answers(self) -> bool:
        try:
            self.behind().ping()
        except (docker.errors.DockerException, requests.exceptions.RequestException):
            return False
        return True

    def behind(self) -> docker.APIClient:
        """A client on the daemon's own unix socket, to check what the TLS port let through."""
        return docker.APIClient(base_url=self.socket, timeout=30)

    def log_tail(self, lines: int = 30) -> str:
        path = self.home / "dockerd.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else "(no log)"

    def stop(self) -> None:
        """SIGTERM (dockerd stops its containers and containerd), then the whole directory goes."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(60)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(10)
        shutil.rmtree(self.home, ignore_errors=True)


class SharedDaemonWatch:
    """Watches the machine's shared daemon from a thread while something runs beside it: every poll in which its
    pid changed or was gone, its process was stopped (SIGSTOP, state T in /proc), or `/info` on its socket did not
    answer within 5 s is written down in `problems`. What a run that must leave the shared daemon alone is held to:
    other users of the machine (tests, CI) depend on it."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.pid = _pid_in(SHARED_PIDFILE)
        self.polls = 0
        self.problems: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="shared-dockerd-watch", daemon=True)

    def __enter__(self) -> SharedDaemonWatch:
        if self.pid is None:
            raise DockerDaemonError(f"no shared dockerd to watch ({SHARED_PIDFILE} names no live process)")
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        api = docker.APIClient(base_url=SHARED_SOCKET, timeout=5)
        try:
            while not self._stop.wait(self.interval):
                self.polls += 1
                if problem := self._problem(api):
                    self.problems.append(f"{time.strftime('%H:%M:%S')} {problem}")
        finally:
            api.close()

    def _problem(self, api: docker.APIClient) -> str | None:
        pid = _pid_in(SHARED_PIDFILE)
        if pid is None or pid != self.pid:
            return f"the shared dockerd's pid is {pid}, was {self.pid}"
        state = _process_state(pid)
        if state in (None, "T", "t", "Z"):
            return f"the shared dockerd (pid {pid}) is {state or 'gone'}"
        try:
            api.info()
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            return f"the shared dockerd did not answer /info: {type(exc).__name__}"
        return None


def _pid_in(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def _process_state(pid: int) -> str | None:
    """The state letter of /proc/<pid>/stat (after the parenthesised command name), None when there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])

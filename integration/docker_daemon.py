"""A real Docker daemon for the integration tests and the benchmark, started by the project's own scripts.

`scripts/dockerd.sh` installs and starts dockerd; `scripts/test-image.sh` builds `cronframework-test:latest`
without a registry. The machine's shared daemon serves whatever only uses a daemon; `PrivateDockerDaemon` is one of
a test's or a fault run's own, for anything that stops or freezes its daemon. `TlsDockerDaemon` is a second daemon
of the tests' own whose API is TLS only. Anything that goes wrong raises DockerDaemonError with the script output
and the log tail, so a fixture can fail loudly instead of skipping.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
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


def _log_tail(log: Path = LOG, lines: int = 20) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {log})"


def run_script(
    script: str, *args: str, timeout: float = 600, env: dict[str, str] | None = None, log: Path = LOG
) -> str:
    """`log`: the dockerd log whose tail goes into the error."""
    command = [str(SCRIPTS / script), *args]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, check=False, env={**os.environ, **(env or {})}
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DockerDaemonError(f"{' '.join(command)}: {exc}\n{_log_tail(log)}") from exc
    if done.returncode != 0:
        raise DockerDaemonError(
            f"{' '.join(command)} exited {done.returncode}:\n{done.stdout}{done.stderr}\n"
            f"dockerd log ({log}):\n{_log_tail(log)}"
        )
    return done.stdout + done.stderr


def start_daemon() -> None:
    run_script("dockerd.sh", "start")


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


START_TIMEOUT = 660.0  # seconds: past dockerd.sh's own wait for a slow start (SLOW_WAIT)


class PrivateDockerDaemon:
    """A dockerd of its own beside the shared one, started and stopped by scripts/dockerd.sh: its data root and log
    in `home` (a run's workdir, kept with its evidence), its socket, pidfile and exec root in a short directory under
    /tmp (a unix socket path is at most 107 bytes, and containerd's sockets live under the exec root), its own
    containerd, and its own copy of the test image. Stopping or freezing it touches nobody else."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.run_dir = Path(tempfile.mkdtemp(prefix="cf-dockerd-", dir="/tmp"))
        self.log = home / "dockerd.log"
        self.address = f"unix://{self.run_dir}/docker.sock"
        self.pidfile = self.run_dir / "docker.pid"

    def _script(self, action: str, timeout: float = 120) -> None:
        where = ["--socket", f"{self.run_dir}/docker.sock", "--pidfile", str(self.pidfile)]
        roots = ["--data-root", str(self.home / "data"), "--exec-root", str(self.run_dir / "exec")]
        run_script("dockerd.sh", action, *where, *roots, "--log", str(self.log), timeout=timeout, log=self.log)

    def start(self) -> None:
        """Waits as long as dockerd.sh does for a slow start (its SLOW_WAIT, 600 s): a daemon restarted with
        thousands of containers on it (a long fault run keeps every one as evidence) cleans up each one's sandbox
        first, which took over two minutes under load and once cut a 60-minute run short."""
        self.home.mkdir(parents=True, exist_ok=True)
        self._script("start", timeout=START_TIMEOUT)

    def stop(self) -> None:
        """SIGTERM and wait until it is gone (dockerd.sh stop): its containers and containerd stop with it."""
        self._script("stop")

    def ready(self) -> PrivateDockerDaemon:
        """Started, with the test image built into it."""
        self.start()
        run_script("test-image.sh", env={"DOCKER_HOST": self.address}, log=self.log)
        return self

    def pid(self) -> int:
        pid = _pid_in(self.pidfile)
        if pid is None:
            raise DockerDaemonError(f"the private dockerd is not running (no pid in {self.pidfile})")
        return pid

    def client(self, timeout: float = 60) -> docker.APIClient:
        return docker.APIClient(base_url=self.address, timeout=timeout)

    def close(self) -> None:
        """Stopped, whatever state it was left in (a frozen one is thawed first); its run dir and data root go, the
        log stays. A data root something is still mounted under is left in place rather than half removed."""
        pid = _pid_in(self.pidfile)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        try:
            self.stop()
        finally:
            if not _mounted_under(self.home / "data") and not _mounted_under(self.run_dir):
                shutil.rmtree(self.home / "data", ignore_errors=True)
                shutil.rmtree(self.run_dir, ignore_errors=True)


def _mounted_under(path: Path) -> bool:
    root = str(path.resolve())
    mounts = (line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines())
    return any(m == root or m.startswith(root + "/") for m in mounts)


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
    """Watches the machine's shared daemon while something runs beside it: every moment its pid changed or was
    gone, or its process was stopped (SIGSTOP: state T in /proc), sampled every `interval` / 5, and every `/info` on
    its socket that did not answer within 5 s, polled every `interval`, is written down in `problems`. The process
    is sampled on a thread of its own: a freeze shorter than the /info timeout only delays the answer. What a run
    that must leave the shared daemon alone is held to: other users of the machine (tests, CI) depend on it."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.pid = _pid_in(SHARED_PIDFILE)
        self.polls = 0
        self.problems: list[str] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._sample_process, name="shared-dockerd-process", daemon=True),
            threading.Thread(target=self._poll_api, name="shared-dockerd-api", daemon=True),
        ]

    def __enter__(self) -> SharedDaemonWatch:
        if self.pid is None or _process_state(self.pid) is None:
            raise DockerDaemonError(f"no shared dockerd to watch ({SHARED_PIDFILE} names no live process)")
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _note(self, problem: str) -> None:
        self.problems.append(f"{time.strftime('%H:%M:%S')} {problem}")

    def _sample_process(self) -> None:
        while not self._stop.wait(self.interval / 5):
            pid = _pid_in(SHARED_PIDFILE)
            state = _process_state(pid) if pid is not None else None
            if pid != self.pid:
                self._note(f"the shared dockerd's pid is {pid}, was {self.pid}")
            elif state in (None, "T", "t", "Z"):
                self._note(f"the shared dockerd (pid {pid}) is {state or 'gone'}")

    def _poll_api(self) -> None:
        api = docker.APIClient(base_url=SHARED_SOCKET, timeout=5)
        try:
            while not self._stop.wait(self.interval):
                self.polls += 1
                try:
                    api.info()
                except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
                    self._note(f"the shared dockerd did not answer /info: {type(exc).__name__}")
        finally:
            api.close()


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

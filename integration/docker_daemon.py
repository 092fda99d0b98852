"""A real Docker daemon for the integration tests and the benchmark, started by the project's own scripts.

`scripts/dockerd.sh` installs and starts dockerd; `scripts/test-image.sh` builds `cronframework-test:latest`
without a registry. Anything that goes wrong raises DockerDaemonError with the script output and the log tail, so
a fixture can fail loudly instead of skipping.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

import docker
import docker.errors

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"
TEST_IMAGE = "cronframework-test:latest"
LOG = Path(os.environ.get("CRONFRAMEWORK_DOCKERD_LOG", "/tmp/cronframework-dockerd.log"))


class DockerDaemonError(Exception):
    """The daemon or the test image could not be made ready."""


def _log_tail(lines: int = 20) -> str:
    try:
        return "\n".join(LOG.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {LOG})"


def run_script(script: str, *args: str, timeout: float = 600) -> str:
    command = [str(SCRIPTS / script), *args]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
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

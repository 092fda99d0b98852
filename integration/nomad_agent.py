"""A real Nomad dev agent for integration tests and benchmarks, started through scripts/nomad.sh.

`NomadAgent(workdir).start()` builds or reuses the cached binary, starts `nomad agent -dev` on loopback ports,
and returns once there is a leader and a ready client node with a healthy raw_exec driver, so the first test
does not race the agent's own start-up. Failures raise NomadAgentError with the tail of the agent's log.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "nomad.sh"
INSTALL_TIMEOUT = 1800.0  # a cold build from the Go module proxy takes minutes on 2 cores
READY_TIMEOUT = 90.0


class NomadAgentError(RuntimeError):
    """The agent could not be built, started or reached."""


def install() -> Path:
    """Path of the Nomad binary, building it on first use (cached under $CRONFRAMEWORK_CACHE)."""
    done = _run(["install"], timeout=INSTALL_TIMEOUT)
    return Path(done.stdout.strip().splitlines()[-1])


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(
            ["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as error:
        raise NomadAgentError(f"scripts/nomad.sh {' '.join(args)} timed out after {timeout:.0f}s") from error
    if done.returncode != 0:
        raise NomadAgentError(f"scripts/nomad.sh {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done


class NomadAgent:
    """One dev agent (server + client) with its data, config and log in `workdir`."""

    def __init__(self, workdir: Path, *, acl: bool = False) -> None:
        self.workdir = Path(workdir)
        self.acl = acl
        self.address = ""
        self.management_token: str | None = None
        self._http_port: int | None = None

    def start(self) -> NomadAgent:
        args = ["start", str(self.workdir), *(["--acl"] if self.acl else [])]
        if self._http_port:
            args += ["--http-port", str(self._http_port)]
        self.address = _run(args, timeout=INSTALL_TIMEOUT).stdout.strip().splitlines()[-1]
        self._http_port = int(self.address.rsplit(":", 1)[1])
        if self.acl and self.management_token is None:
            self.management_token = self._bootstrap()
        self._wait_for_node()
        return self

    def stop(self) -> None:
        _run(["stop", str(self.workdir)], timeout=60)

    def restart(self) -> None:
        """Same address again, so adapters built before the restart keep working after it."""
        self.stop()
        self.start()

    def log_tail(self, chars: int = 3000) -> str:
        path = self.workdir / "nomad.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"

    def api(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        """A raw HTTP call, for test set-up and assertions that must not go through the adapter."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.address}{path}", data=data, method=method)
        if token or self.management_token:
            request.add_header("X-Nomad-Token", str(token or self.management_token))
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def _bootstrap(self) -> str:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            try:
                return str(self.api("POST", "/v1/acl/bootstrap", {})["SecretID"])
            except (urllib.error.URLError, OSError) as error:
                if time.monotonic() > deadline:
                    raise NomadAgentError(f"ACL bootstrap failed: {error}\n{self.log_tail()}") from error
                time.sleep(0.5)

    def _wait_for_node(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while not self._node_ready():
            if time.monotonic() > deadline:
                raise NomadAgentError(f"no ready node with raw_exec after {READY_TIMEOUT:.0f}s\n{self.log_tail()}")
            time.sleep(0.3)

    def _node_ready(self) -> bool:
        try:
            for node in self.api("GET", "/v1/nodes") or []:
                if node.get("Status") == "ready" and self.driver_healthy(node["ID"], "raw_exec"):
                    return True
        except (urllib.error.URLError, OSError):
            return False
        return False

    def driver_healthy(self, node_id: str, driver: str) -> bool:
        drivers = (self.api("GET", f"/v1/node/{node_id}") or {}).get("Drivers") or {}
        return bool((drivers.get(driver) or {}).get("Healthy"))

    def any_driver_healthy(self, driver: str) -> bool:
        return any(self.driver_healthy(node["ID"], driver) for node in self.api("GET", "/v1/nodes") or [])

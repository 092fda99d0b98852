"""A real Nomad agent for integration tests and benchmarks: a dev agent started through scripts/nomad.sh, or a
persistent single-node server + client.

`NomadAgent(workdir).start()` builds or reuses the cached binary, starts `nomad agent -dev` on loopback ports,
and returns once there is a leader and a ready client node with a healthy raw_exec driver, so the first test
does not race the agent's own start-up. A dev agent keeps its state in memory: a restart empties it.
`NomadAgent(workdir, persistent=True)` runs the same binary as a server (bootstrap_expect 1) and client whose raft
and client state live in `workdir/data`, so a stop and start keeps every job and the tasks that outlived the stop,
as a real cluster does. `NomadAgent(workdir, tls=True)` is a dev agent whose HTTP API and RPC are TLS only,
client certificates required (`verify_https_client`), with certificates made for it (integration.certs);
`client` is the certificate a caller presents. Failures raise NomadAgentError with the tail of the agent's log.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from integration.certs import CertAuthority, Issued

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "nomad.sh"
INSTALL_TIMEOUT = 1800.0  # a cold build from the Go module proxy takes minutes on 2 cores
READY_TIMEOUT = 90.0
STOP_TIMEOUT = 10.0  # as scripts/nomad.sh stop: SIGINT, then SIGKILL


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
    """One agent (server + client) with its data, config and log in `workdir`; dev or persistent (module doc)."""

    def __init__(
        self,
        workdir: Path,
        *,
        acl: bool = False,
        persistent: bool = False,
        http_addresses: tuple[str, ...] = (),
        tls: bool = False,
    ) -> None:
        """`http_addresses`: more addresses the HTTP API listens on besides loopback (persistent only)."""
        if (persistent and (acl or tls)) or (http_addresses and not persistent):
            raise ValueError("a persistent agent runs without ACLs or TLS; only a persistent one takes http_addresses")
        self.workdir = Path(workdir)
        self.acl = acl
        self.persistent = persistent
        self.http_addresses = http_addresses
        self.address = ""
        self.management_token: str | None = None
        self._http_port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._node_index = -1  # the client node's ModifyIndex when the agent was last stopped
        self.sessions: list[int] = []  # every start's agent runs as a session leader: its pid is the session's id
        self.ca: CertAuthority | None = None
        self.client: Issued | None = None
        if tls:
            self.ca = CertAuthority(self.workdir / "tls", "nomad test CA")
            self.client = self.ca.issue("cronframework")

    def start(self) -> NomadAgent:
        if self.persistent:
            first_boot = self._http_port is None
            self._launch()
            if first_boot:
                self._settle_first_boot()
        elif self.ca is not None:
            self._launch_tls()
        else:
            args = ["start", str(self.workdir), *(["--acl"] if self.acl else [])]
            if self._http_port:
                args += ["--http-port", str(self._http_port)]
            self.address = _run(args, timeout=INSTALL_TIMEOUT).stdout.strip().splitlines()[-1]
            self._http_port = int(self.address.rsplit(":", 1)[1])
            self.sessions.append(int((self.workdir / "nomad.pid").read_text()))
        if self.acl and self.management_token is None:
            self.management_token = self._bootstrap()
        self._wait_for_node()
        return self

    def stop(self, *, kill: bool = False) -> None:
        """SIGINT, or SIGKILL with `kill` (persistent only: a crash, which cuts off calls in flight and keeps what
        Nomad had written). A persistent agent's running tasks outlive it (their executors are taken up again at
        the next start); a dev agent kills them."""
        if not self.persistent and self.ca is None:
            if kill:
                raise ValueError("only a persistent agent is killed")
            _run(["stop", str(self.workdir)], timeout=60)
            return
        if self._process is None:
            return
        self._node_index = self._node_modify_index()
        self._process.send_signal(signal.SIGKILL if kill else signal.SIGINT)
        try:
            self._process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(STOP_TIMEOUT)
        self._process = None
        (self.workdir / "nomad.pid").unlink(missing_ok=True)

    def shutdown(self, timeout: float = 30.0) -> None:
        """The last stop. A persistent agent first lets its tasks finish and has the client collect every
        allocation, so no executor and no tmpfs mount of an allocation directory is left behind (a dev agent
        does that itself when it stops). The client's own state decides what is finished: the server's view of
        an allocation can lag well behind it after a restart."""
        try:
            deadline = time.monotonic() + timeout
            allocations = self.workdir / "data" / "alloc"
            while self._process is not None and any(allocations.glob("*")) and time.monotonic() < deadline:
                self.api("PUT", "/v1/client/gc")  # the finished ones, asynchronously
                time.sleep(0.5)
        finally:
            self.stop()
            self._reap()

    def _reap(self) -> None:
        """Kill what outlived the agent: under its work directory, or in the session of any of its starts. An agent
        killed after spawning a task's executor but before recording its handle cannot reattach to it after a
        restart, and never stops it; a task's log monitor (`nomad logmon`) whose allocation directory is gone names
        and holds nothing under the work directory; a client stopped before collecting an allocation leaves its
        tmpfs mounted."""
        root = str(self.workdir.resolve())

        def left() -> list[int]:
            return sorted({pid for pid, _ in _processes_naming(root)} | set(_in_sessions(self.sessions)))

        for pid in left():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _until(lambda: not left(), time.monotonic() + STOP_TIMEOUT)
        for mount in sorted((m for m in leftovers(self.workdir) if not m.startswith("pid ")), reverse=True):
            subprocess.run(["umount", "-l", mount], capture_output=True, check=False)

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
        with urllib.request.urlopen(request, timeout=10, context=self._tls_context()) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def _tls_context(self) -> ssl.SSLContext | None:
        if self.ca is None or self.client is None:
            return None
        context = ssl.create_default_context(cafile=str(self.ca.cert))
        context.load_cert_chain(str(self.client.cert), str(self.client.key))
        return context

    def _launch_tls(self) -> None:
        """A dev agent (state in memory) with TLS on HTTP and RPC. Its certificate names the roles Nomad checks
        between its own server and client (`verify_server_hostname`) and 127.0.0.1 for HTTP callers."""
        assert self.ca is not None
        binary = install()
        self.workdir.mkdir(parents=True, exist_ok=True)
        agent = self.ca.issue("agent", ips=("127.0.0.1",), dns=("server.global.nomad", "client.global.nomad"))
        ports = _free_ports(3)
        self._http_port = ports[0]
        config = self.workdir.resolve() / "agent.hcl"
        config.write_text(_tls_config(ports, self.acl, self.ca.cert, agent))
        self.address = f"https://127.0.0.1:{self._http_port}"
        with (self.workdir / "nomad.log").open("ab") as log:
            self._process = subprocess.Popen(
                [str(binary), "agent", "-dev", "-config", str(config)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        (self.workdir / "nomad.pid").write_text(f"{self._process.pid}\n")
        self.sessions.append(self._process.pid)
        _until(self._leads, time.monotonic() + READY_TIMEOUT)

    def _leads(self) -> bool:
        try:
            return bool(self.api("GET", "/v1/status/leader"))
        except (urllib.error.URLError, OSError):
            return False

    def _bootstrap(self) -> str:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            try:
                return str(self.api("POST", "/v1/acl/bootstrap", {})["SecretID"])
            except (urllib.error.URLError, OSError) as error:
                if time.monotonic() > deadline:
                    raise NomadAgentError(f"ACL bootstrap failed: {error}\n{self.log_tail()}") from error
                time.sleep(0.5)

    def _launch(self) -> None:
        """Same ports at every start: raft keeps the server's own RPC address as its only peer."""
        binary = install()
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir.resolve() / "agent.hcl"
        if self._http_port is None:
            self._http_port, rpc, serf = _free_ports(3)
            http = " ".join(("127.0.0.1", *self.http_addresses))
            config.write_text(_persistent_config(config.parent, http, (self._http_port, rpc, serf)))
        self.address = f"http://127.0.0.1:{self._http_port}"
        with (self.workdir / "nomad.log").open("ab") as log:
            self._process = subprocess.Popen(
                [str(binary), "agent", "-config", str(config)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        (self.workdir / "nomad.pid").write_text(f"{self._process.pid}\n")
        self.sessions.append(self._process.pid)

    def _settle_first_boot(self) -> None:
        """A client whose registration is refused retries only after 15-30 s (a dev client every second), and a
        new server makes its keyring only once it leads: once the keyring exists, a node that is not in yet is
        restarted at once (about 2 s). Then the first raft snapshot is awaited: a restarted server authenticates
        its client against the state restored from a snapshot (the log is replayed only at the election), and
        until the keyring and the node are in one, it refuses the client's re-registration."""
        deadline = time.monotonic() + READY_TIMEOUT
        _until(self._has_keyring, deadline)
        if not self._node_ready():
            self.stop()
            self._launch()
        self._wait_for_node()
        _until(lambda: any((self.workdir / "data" / "server" / "raft" / "snapshots").glob("*")), deadline)

    def _has_keyring(self) -> bool:
        try:
            return bool(self.api("GET", "/v1/status/leader")) and bool(self.api("GET", "/v1/operator/keyring/keys"))
        except (urllib.error.URLError, OSError):
            return False

    def _wait_for_node(self) -> None:
        """A leader and a ready node with raw_exec. After a restart the node must also have registered again:
        the restored state still says "ready" from before the stop, while the client is not back yet."""
        deadline = time.monotonic() + READY_TIMEOUT
        while not self._node_ready():
            if self._process is not None and self._process.poll() is not None:
                raise NomadAgentError(f"the agent exited ({self._process.returncode})\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise NomadAgentError(f"no ready node with raw_exec after {READY_TIMEOUT:.0f}s\n{self.log_tail()}")
            time.sleep(0.1 if self.persistent else 0.3)

    def _node_ready(self) -> bool:
        try:
            for node in self.api("GET", "/v1/nodes") or []:
                if (
                    node.get("Status") == "ready"
                    and int(node["ModifyIndex"]) > self._node_index
                    and self.driver_healthy(node["ID"], "raw_exec")
                ):
                    return True
        except (urllib.error.URLError, OSError):
            return False
        return False

    def _node_modify_index(self) -> int:
        try:
            return max((int(node["ModifyIndex"]) for node in self.api("GET", "/v1/nodes") or []), default=-1)
        except (urllib.error.URLError, OSError):
            return self._node_index

    def driver_healthy(self, node_id: str, driver: str) -> bool:
        drivers = (self.api("GET", f"/v1/node/{node_id}") or {}).get("Drivers") or {}
        return bool((drivers.get(driver) or {}).get("Healthy"))

    def any_driver_healthy(self, driver: str) -> bool:
        return any(self.driver_healthy(node["ID"], driver) for node in self.api("GET", "/v1/nodes") or [])


def _until(probe: Callable[[], bool], deadline: float) -> None:
    while not probe() and time.monotonic() < deadline:
        time.sleep(0.2)


def _free_ports(count: int) -> list[int]:
    """Held open together, so the ports are distinct."""
    socks = [socket.create_server(("127.0.0.1", 0)) for _ in range(count)]
    try:
        return [int(sock.getsockname()[1]) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


# the client of an agent the tests start: loopback, raw_exec only (the shared Docker daemon is left alone), and no
# cloud fingerprinter probing metadata addresses off this machine
RAW_EXEC_CLIENT = """client {
  enabled           = true
  network_interface = "lo"
  cpu_total_compute = 4000
  options = {
    "fingerprint.denylist" = "env_aws,env_gce,env_azure,env_digitalocean"
    "driver.allowlist"     = "raw_exec"
  }
}
plugin "raw_exec" {
  config {
    enabled = true
  }
}
"""


def _tls_config(ports: list[int], acl: bool, ca: Path, agent: Issued) -> str:
    return f"""bind_addr = "127.0.0.1"
log_level = "INFO"
ports {{
  http = {ports[0]}
  rpc  = {ports[1]}
  serf = {ports[2]}
}}
acl {{
  enabled = {str(acl).lower()}
}}
tls {{
  http = true
  rpc  = true
  ca_file   = "{ca}"
  cert_file = "{agent.cert}"
  key_file  = "{agent.key}"
  verify_server_hostname = true
  verify_https_client    = true
}}
{RAW_EXEC_CLIENT}"""


def _persistent_config(workdir: Path, http_addresses: str, ports: tuple[int, int, int]) -> str:
    """Loopback only, raw_exec only (the shared Docker daemon is left alone), a raft snapshot every 3-6 s while
    anything changes (see _settle_first_boot; a restart also has less log to replay)."""
    return f"""data_dir  = "{workdir}/data"
bind_addr = "127.0.0.1"
log_level = "INFO"
addresses {{
  http = "{http_addresses}"
}}
ports {{
  http = {ports[0]}
  rpc  = {ports[1]}
  serf = {ports[2]}
}}
advertise {{
  http = "127.0.0.1"
  rpc  = "127.0.0.1"
  serf = "127.0.0.1"
}}
server {{
  enabled                 = true
  bootstrap_expect        = 1
  raft_snapshot_threshold = 1
  raft_snapshot_interval  = "3s"
}}
{RAW_EXEC_CLIENT}"""


def leftovers(workdir: Path) -> list[str]:
    """Mounts under `workdir` (an allocation's tmpfs) and processes that name it on their command line (the agent,
    a task's executor) or hold a file under it open (a task's log monitor)."""
    root = str(workdir.resolve())
    found = [m for m in (line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()) if root in m]
    for pid, cmdline in _processes_naming(root):
        found.append(f"pid {pid}: {cmdline[:200]!r}")
    return found


def _processes_naming(root: str) -> list[tuple[int, bytes]]:
    named = []
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if proc.name.isdigit() and int(proc.name) != os.getpid():
                cmdline = (proc / "cmdline").read_bytes()
                if root in cmdline.decode(errors="replace") or _holds_open(proc, root):
                    named.append((int(proc.name), cmdline))
    return named


def _in_sessions(sessions: list[int]) -> list[int]:
    """The processes (not zombies) whose session is one of `sessions`."""
    if not sessions:
        return []
    wanted, found = set(sessions), []
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            if proc.name.isdigit() and int(proc.name) != os.getpid():
                fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
                if fields[0] != "Z" and int(fields[3]) in wanted:  # after the name: state, ppid, pgrp, session
                    found.append(int(proc.name))
    return found


def _holds_open(proc: Path, root: str) -> bool:
    for fd in (proc / "fd").iterdir():
        with contextlib.suppress(OSError):
            if os.readlink(fd).startswith(root):
                return True
    return False

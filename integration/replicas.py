"""Scheduler replicas as real OS processes (`python -m cronframework scheduler`), for multi-process tests.

Each replica logs JSON lines to its own file; helpers read leadership intervals and launches back from those logs
and from the store, the way an operator would.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cronframework.store.zookeeper.store import ZooKeeperStore

# One job launching every second on the process backend, replaying what a takeover missed: the workhorse of the
# multi-process tests (every instant must end up launched or recorded).
EVERY_SECOND = """
job:
  beat:
    schedule: "* * * * * *"
    backend: process
    catchup: {policy: all, window: 5m, max: 100}
    task:
      command: ["/bin/sh", "-c", "echo beat $CRONFRAMEWORK_LAUNCH"]
"""


@dataclass
class ReplicaProcess:
    replica_id: str
    process: subprocess.Popen[bytes]
    log_path: Path
    started_at: float = 0.0  # wall clock (time.time()), to line incarnations up with JSON log timestamps

    def events(self) -> list[dict[str, Any]]:
        lines = self.log_path.read_text(errors="replace").splitlines() if self.log_path.exists() else []
        out = []
        for line in lines:
            if line.startswith("{"):
                with contextlib.suppress(json.JSONDecodeError):
                    out.append(json.loads(line))
        return out

    def alive(self) -> bool:
        return self.process.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        if self.alive():
            self.process.send_signal(sig)


@dataclass
class ReplicaSet:
    """Start, find, kill and inspect replicas of one cluster (one ZooKeeper root)."""

    zk_hosts: str
    root: str
    workdir: Path
    session_timeout: float = 4.0
    backends: dict[str, dict[str, Any]] = field(default_factory=dict)
    replicas: dict[str, ReplicaProcess] = field(default_factory=dict)
    api_token: str | None = None  # written to a file the replicas' `api.token_file` names
    incarnations: list[ReplicaProcess] = field(default_factory=list)  # every process ever started, in order

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.backends.setdefault("process", {"state_dir": str(self.workdir / "process")})
        config: dict[str, Any] = {
            "zookeeper": {"hosts": self.zk_hosts, "root": self.root, "session_timeout": self.session_timeout},
            "scheduler": {"poll_interval": 0.2, "clock_check_every": 5},
            "backends": self.backends,
            "api": {"port": 0},  # each replica picks a free port and logs it ("api listening", api_url)
        }
        if self.api_token:
            (self.workdir / "api-token").write_text(self.api_token)
            config["api"]["token_file"] = str(self.workdir / "api-token")
        self.config_path = self.workdir / "scheduler.yaml"
        self.config_path.write_text(yaml.safe_dump(config))

    def start(
        self,
        replica_id: str,
        env: dict[str, str] | None = None,
        *,
        zk_hosts: str | None = None,
        prefix: list[str] | None = None,
    ) -> ReplicaProcess:
        """Start a replica; a restart of the same id logs to a new file (`<id>.<n>.log`) so each process's
        events stay apart. `zk_hosts` gives this replica its own connect string (e.g. through a fault proxy);
        `prefix` runs it under a command that must exec it (`ip netns exec NS`), so the pid stays the replica's."""
        count = sum(1 for r in self.incarnations if r.replica_id == replica_id)
        log_path = self.workdir / (f"{replica_id}.log" if count == 0 else f"{replica_id}.{count + 1}.log")
        config = self._config_for(replica_id, zk_hosts)
        cmd = [
            *(prefix or []),
            sys.executable,
            "-m",
            "cronframework",
            "scheduler",
            "--config",
            str(config),
            "--replica-id",
            replica_id,
            "--log-json",
        ]
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=log, env={**os.environ, **(env or {})})
        self.replicas[replica_id] = ReplicaProcess(replica_id, proc, log_path, time.time())
        self.incarnations.append(self.replicas[replica_id])
        return self.replicas[replica_id]

    def _config_for(self, replica_id: str, zk_hosts: str | None) -> Path:
        if zk_hosts is None:
            return self.config_path
        config = yaml.safe_load(self.config_path.read_text())
        config["zookeeper"]["hosts"] = zk_hosts
        path = self.workdir / f"scheduler-{replica_id}.yaml"
        path.write_text(yaml.safe_dump(config))
        return path

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "cronframework", *args, "--config", str(self.config_path)]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({result.returncode}): {result.stderr}")
        return result

    def store(self) -> ZooKeeperStore:
        return ZooKeeperStore.connect(self.zk_hosts, self.root, session_timeout=self.session_timeout)

    def leader_id(self) -> str | None:
        """The replica whose latest leadership event is 'leading' and that is still alive."""
        for replica in self.replicas.values():
            if not replica.alive():
                continue
            roles = [
                e["event"] for e in replica.events() if e["event"] in ("leading", "leadership lost; back to following")
            ]
            if roles and roles[-1] == "leading":
                return replica.replica_id
        return None

    def wait_leader(self, timeout: float = 30.0, other_than: str | None = None) -> str:
        found = wait_for(lambda: (lid := self.leader_id()) is not None and lid != other_than and lid, timeout)
        if not found:
            raise AssertionError(f"no leader within {timeout}s; logs:\n{self.log_tails()}")
        return str(found)

    def api_url(self, replica_id: str, timeout: float = 20.0) -> str:
        def url() -> str | None:
            events = self.replicas[replica_id].events()
            return next((e["api_url"] for e in events if e["event"] == "api listening"), None)

        found = wait_for(url, timeout)
        if not found:
            raise AssertionError(f"replica {replica_id} logged no API address; logs:\n{self.log_tails()}")
        return str(found)

    def log_tails(self, lines: int = 15) -> str:
        out = []
        for replica in self.replicas.values():
            text = (
                replica.log_path.read_text(errors="replace").splitlines()[-lines:] if replica.log_path.exists() else []
            )
            out.append(f"--- {replica.replica_id} (alive={replica.alive()})\n" + "\n".join(text))
        return "\n".join(out)

    def stop_all(self) -> None:
        for replica in self.replicas.values():
            replica.signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for replica in self.replicas.values():
            try:
                replica.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                replica.process.kill()
                replica.process.wait()


def wait_for(condition: Callable[[], Any], timeout: float, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            return None
        time.sleep(interval)

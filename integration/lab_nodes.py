"""The lab's VMs as the harness reaches them from inside the lab's network namespace (scripts/lab.sh): ssh with the
configuration Vagrant prints, each scheduler's journal followed live, the guests' clocks, and libvirt for the one
fault, `virsh destroy`.

The journal is followed rather than read afterwards because a destroyed VM takes with it whatever journald had not
yet written through to its disk; what reached the harness before the destruction is what the VM said.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from integration.replicas import ReplicaProcess

ROOT = Path(__file__).resolve().parent.parent
# The Vagrantfile's NODES (integration/test_vagrantfile.py holds the two in step)
ADDRESSES = {"cf1": "192.168.56.11", "cf2": "192.168.56.12", "cf3": "192.168.56.13"}
BACKEND_NODE = "cf1"  # Docker and Nomad run there; every replica launches on them
SCHEDULER_UNIT = "cronframework-scheduler"
# a dead peer is noticed within seconds, and every call reuses one connection per node (a TCG guest spends a
# second or more on each new ssh handshake)
SSH_OPTIONS = ["-o", "ServerAliveInterval=2", "-o", "ServerAliveCountMax=3", "-o", "ConnectTimeout=20",
               "-o", "ControlMaster=auto", "-o", "ControlPersist=600"]  # fmt: skip
SSH_FAILED = 255  # ssh's own exit status: no connection, not the remote command's
SSH_ATTEMPTS = 4
SSH_RETRY_PAUSE = 5.0


class LabError(Exception):
    """The lab is not in the state the run needs (a node unreachable, a command failing)."""


@dataclass
class Incarnation:
    """One scheduler process on one node, as its journal tells it: its pid there and its JSON log events."""

    node: str
    pid: int
    events: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Node:
    name: str
    address: str
    ssh_config: Path
    workdir: Path
    follower: subprocess.Popen[bytes] | None = None
    following: threading.Thread | None = None
    stopped: threading.Event = field(default_factory=threading.Event)
    destroyed_at: float | None = None  # wall time `virsh destroy` was sent

    @property
    def domain(self) -> str:
        return f"cf-lab-{self.name}"  # the Vagrantfile's libvirt default_prefix

    @property
    def journal(self) -> Path:
        return self.workdir / f"{self.name}.journal.jsonl"

    def ssh_command(self, command: str) -> list[str]:
        control = ["-o", f"ControlPath={self.workdir / ('ssh-' + self.name)}"]
        return ["ssh", "-F", str(self.ssh_config), *SSH_OPTIONS, *control, self.name, command]

    def connect(self) -> None:
        """The one connection every later call goes through, made before any of them (two calls opening it at
        once may both fail)."""
        master = self.ssh_command("")[:-1]  # no remote command: -N
        master[1:1] = ["-o", "ControlMaster=yes", "-N", "-f"]
        errors = self.workdir / f"ssh-{self.name}.err"
        with open(errors, "wb") as err:  # not a pipe: the connection, gone to the background, keeps it open
            code = subprocess.run(master, stdin=subprocess.DEVNULL, stdout=err, stderr=err, timeout=120).returncode
        if code != 0:
            raise LabError(f"{self.name}: no ssh connection: {errors.read_text().strip()[-600:]}")

    def disconnect(self) -> None:
        subprocess.run([*self.ssh_command("")[:-2], "-O", "exit", self.name], capture_output=True, timeout=30)

    def run(self, command: str, *, stdin: str | None = None, timeout: float = 180) -> str:
        """`command` on the node. ssh's own failure (exit 255: on a loaded host a TCG guest can stall past the
        keepalives and take the shared connection down with it) is met by connecting again and running the
        command again, a few times; every command the lab runs may be run twice."""
        for attempt in range(1, SSH_ATTEMPTS + 1):
            try:
                result = subprocess.run(
                    self.ssh_command(command), input=stdin, capture_output=True, text=True, timeout=timeout
                )
            except subprocess.TimeoutExpired as exc:
                raise LabError(f"{self.name}: `{command}` did not finish within {timeout:.0f}s") from exc
            if result.returncode != SSH_FAILED or attempt == SSH_ATTEMPTS:
                break
            time.sleep(SSH_RETRY_PAUSE)
            self.disconnect()
            with contextlib.suppress(LabError):  # the next attempt says what failed
                self.connect()
        if result.returncode != 0:
            raise LabError(f"{self.name}: `{command}` failed ({result.returncode}): {result.stderr.strip()[-600:]}")
        return result.stdout

    def follow_journal(self) -> None:
        """The scheduler's journal from its first line on, as JSON entries, into a file of the run's; followed
        again from the start whenever the connection drops (a busy guest may refuse or time out an ssh), until the
        VM is destroyed or the run stops following. Entries seen twice are told apart by their journal cursor."""
        self.following = threading.Thread(target=self._follow, name=f"journal-{self.name}", daemon=True)
        self.following.start()

    def _follow(self) -> None:
        command = f"sudo journalctl -u {SCHEDULER_UNIT} -o json --no-tail -f"
        while not self.stopped.is_set() and self.destroyed_at is None:
            with open(self.journal, "ab") as out:
                self.follower = subprocess.Popen(
                    self.ssh_command(command), stdout=out, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL
                )
                self.follower.wait()
            self.stopped.wait(2.0)

    def stop_following(self) -> None:
        self.stopped.set()
        if self.follower is not None and self.follower.poll() is None:
            self.follower.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.follower.wait(10)
        if self.following is not None:
            self.following.join(15)

    def incarnations(self) -> list[Incarnation]:
        text = self.journal.read_text(errors="replace") if self.journal.exists() else ""
        return parse_journal(self.name, text.splitlines())

    def destroy(self) -> float:
        """Pull the plug: the VM stops at once, nothing in it gets to run another instruction."""
        at = time.time()
        subprocess.run(["virsh", "-q", "destroy", self.domain], check=True, capture_output=True, timeout=60)
        self.destroyed_at = at
        return at

    def set_clock(self, ahead: float = 0.0) -> None:
        """Step the guest's clock to this machine's (plus `ahead`, for the trip there). A guest reads the emulated
        RTC, whole seconds, at boot and is up to a second or two off from then on (it does not drift); the lab has
        no time server. The guest is ready (root shell started) before the time is sent."""
        script = "sudo sh -c 'echo ready; read -r now; date -u -s \"@$now\" >/dev/null && echo set'"
        proc = subprocess.Popen(self.ssh_command(script), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert proc.stdin is not None and proc.stdout is not None
        try:
            if proc.stdout.readline().strip() != "ready":
                raise LabError(f"{self.name}: could not set the clock")
            proc.stdin.write(f"{time.time() + ahead:.6f}\n")
            proc.stdin.flush()
            if proc.stdout.readline().strip() != "set":
                raise LabError(f"{self.name}: could not set the clock")
        finally:
            proc.stdin.close()
            proc.wait(30)

    def clock_skew(self, samples: int = 30) -> tuple[float, float]:
        """(the guest's clock minus this machine's, the uncertainty), both in seconds, NTP-style: this side sends
        its time, the guest answers with that and its own, and the answer's arrival bounds the other side."""
        script = 'while read -r sent; do echo "$sent $(date +%s.%N)"; done'
        proc = subprocess.Popen(
            self.ssh_command(script), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        assert proc.stdin is not None and proc.stdout is not None
        replies = []
        try:
            for _ in range(samples):
                proc.stdin.write(f"{time.time():.6f}\n")
                proc.stdin.flush()
                line = proc.stdout.readline()
                replies.append((line, time.time()))
                time.sleep(0.05)
        finally:
            proc.stdin.close()
            proc.wait(30)
        return skew_from(replies)


def skew_from(replies: Iterable[tuple[str, float]]) -> tuple[float, float]:
    """Each reply `sent guest` arrived at `arrival`: guest - arrival <= skew <= guest - sent. The tightest bounds
    over all replies, as (midpoint, half width)."""
    low, high = float("-inf"), float("inf")
    for line, arrival in replies:
        sent, guest = (float(part) for part in line.split())
        low, high = max(low, guest - arrival), min(high, guest - sent)
    if low > high or low == float("-inf"):
        raise LabError(f"no consistent clock reading: bounds {low:.3f}..{high:.3f}")
    return (low + high) / 2, (high - low) / 2


def parse_journal(node: str, lines: Iterable[str]) -> list[Incarnation]:
    """The scheduler's processes in the order they first logged, each with the JSON lines it wrote (journald's own
    entries for the unit, from pid 1, and anything not JSON are left out; an entry read twice counts once)."""
    found: dict[int, Incarnation] = {}
    seen: set[str] = set()
    for line in lines:
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            message, pid, cursor = entry.get("MESSAGE"), int(entry.get("_PID", 0)), str(entry.get("__CURSOR", ""))
            if cursor and cursor in seen:
                continue
            seen.add(cursor)
            if isinstance(message, str) and message.startswith("{") and pid > 1:
                event = json.loads(message)
                found.setdefault(pid, Incarnation(node, pid)).events.append(event)
    return list(found.values())


def as_replicas(incarnations: list[Incarnation], workdir: Path) -> list[ReplicaProcess]:
    """The fault suite's view of a replica process, for its evidence readers: one log file per incarnation and a
    pid unique across the nodes (each VM numbers its own processes, so the same pid may turn up on two)."""
    out = []
    for number, incarnation in enumerate(incarnations, start=1):
        path = workdir / f"{incarnation.node}.{number}.{incarnation.pid}.log"  # a VM reuses pids too
        path.write_text("".join(json.dumps(event) + "\n" for event in incarnation.events))
        proc: Any = _Pid(number)
        out.append(ReplicaProcess(incarnation.node, proc, path))
    return out


@dataclass(frozen=True)
class _Pid:
    """Stands in for the Popen of a process the harness did not start: the evidence readers only read its pid."""

    pid: int


def discover(workdir: Path) -> list[Node]:
    """The nodes as Vagrant knows them (`vagrant ssh-config`: each machine's management address and key)."""
    result = subprocess.run(["vagrant", "ssh-config"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise LabError(f"vagrant ssh-config failed: {result.stderr.strip()[-600:]}")
    config = workdir / "ssh-config"
    config.write_text(result.stdout)
    hosts = [line.split()[1] for line in result.stdout.splitlines() if line.startswith("Host ")]
    missing = sorted(set(ADDRESSES) - set(hosts))
    if missing:
        raise LabError(f"not running: {', '.join(missing)} (scripts/lab.sh up)")
    return [Node(name, ADDRESSES[name], config, workdir) for name in sorted(ADDRESSES)]

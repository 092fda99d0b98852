"""Real network partitions for the fault suite: each replica in a network namespace of its own.

A `NetnsHost` is a namespace joined to the root namespace by a veth pair on a /24 of its own (host side .1,
namespace side .2). A process started under `command_prefix` lives inside and reaches servers of the root
namespace (bound on 0.0.0.0) at `host_addr`. `cut()` loads nftables rules inside the namespace that drop every
packet in and out except on loopback: no reset, no ICMP, only silence, and TCP keeps retransmitting until
`heal()` deletes them, as on a real partition. Needs root, `ip` and `nft`; `unsupported()` says why not.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import shutil
import subprocess
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

PREFIX = "cfchaos"  # every namespace of the suite: cfchaos-<pid of the harness>-<run>-<label>
TABLE = "cfchaos"
POOL = ipaddress.IPv4Network("10.128.0.0/9")  # one random /24 of it per host, checked against the routes in use
ROUTE_TYPES = ("local", "broadcast", "unicast", "anycast", "multicast", "blackhole", "unreachable", "prohibit", "throw")


class NetnsError(RuntimeError):
    """A namespace, link or rule could not be set up; the message carries the command and its stderr."""


def _ip(*args: str, stdin: str | None = None) -> str:
    try:
        done = subprocess.run(["ip", *args], input=stdin, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NetnsError(f"ip {' '.join(args)}: {exc}") from exc
    if done.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {done.stderr.strip() or f'exit {done.returncode}'}")
    return done.stdout


def namespaces() -> list[str]:
    return [line.split()[0] for line in _ip("netns", "list").splitlines() if line.strip()]


def _routes() -> list[ipaddress.IPv4Network]:
    """Every destination in every routing table of the root namespace (`local 10.1.2.3 ...` included)."""
    found = []
    for line in _ip("-4", "route", "show", "table", "all").splitlines():
        words = line.split()
        dest = words[1] if len(words) > 1 and words[0] in ROUTE_TYPES else (words[0] if words else "default")
        with contextlib.suppress(ValueError):
            found.append(ipaddress.IPv4Network(dest, strict=False))
    return found


def _free_subnet() -> ipaddress.IPv4Network:
    """A random /24 of the pool that no route overlaps (another run's hosts included: each adds a route)."""
    used = _routes()
    for _ in range(50):
        start = int(POOL.network_address) + secrets.randbelow(POOL.num_addresses // 256) * 256
        candidate = ipaddress.IPv4Network((start, 24))
        if not any(candidate.overlaps(net) for net in used):
            return candidate
    raise NetnsError(f"no free /24 in {POOL}")


@dataclass
class NetnsHost:
    name: str
    host_if: str
    subnet: ipaddress.IPv4Network
    is_cut: bool = False

    @classmethod
    def create(cls, run: str, label: str) -> NetnsHost:
        """A namespace named for this harness process, the run and the label; leftovers are removed on failure."""
        token = uuid.uuid4().hex[:8]
        host = cls(f"{PREFIX}-{os.getpid()}-{run}-{label}", f"cf{token}h", _free_subnet())
        try:
            host._build(f"cf{token}n")
        except BaseException:
            host.close()
            raise
        return host

    def _build(self, ns_if: str) -> None:
        _ip("netns", "add", self.name)
        _ip("link", "add", self.host_if, "type", "veth", "peer", "name", ns_if)
        _ip("link", "set", ns_if, "netns", self.name)
        _ip("addr", "add", f"{self.host_addr}/24", "dev", self.host_if)
        _ip("link", "set", self.host_if, "up")
        inside = ("-n", self.name)
        _ip(*inside, "addr", "add", f"{self.ns_addr}/24", "dev", ns_if)
        _ip(*inside, "link", "set", ns_if, "up")
        _ip(*inside, "link", "set", "lo", "up")

    @property
    def host_addr(self) -> str:
        return str(self.subnet.network_address + 1)

    @property
    def ns_addr(self) -> str:
        return str(self.subnet.network_address + 2)

    @property
    def command_prefix(self) -> list[str]:
        """`ip netns exec` execs the command: the process started is the command's own (signals reach it)."""
        return ["ip", "netns", "exec", self.name]

    def cut(self, spare_ports: Iterable[int] = ()) -> None:
        """Drop every packet in and out of the namespace except on loopback and, if given, TCP to those ports of
        the host side (a backend the fault means to leave reachable)."""
        ports = ", ".join(str(p) for p in sorted(set(spare_ports)))
        spare_in = f"ip saddr {self.host_addr} tcp sport {{ {ports} }} accept;" if ports else ""
        spare_out = f"ip daddr {self.host_addr} tcp dport {{ {ports} }} accept;" if ports else ""
        rules = (
            f"table inet {TABLE} {{\n"
            f'  chain in {{ type filter hook input priority 0; iifname "lo" accept; {spare_in} drop; }}\n'
            f'  chain out {{ type filter hook output priority 0; oifname "lo" accept; {spare_out} drop; }}\n'
            "}\n"
        )
        _ip("netns", "exec", self.name, "nft", "-f", "-", stdin=rules)
        self.is_cut = True

    def heal(self) -> None:
        if self.is_cut:
            _ip("netns", "exec", self.name, "nft", "delete", "table", "inet", TABLE)
            self.is_cut = False

    def close(self) -> None:
        """Idempotent. The link goes first: a process still inside would keep the namespace, and its veth, alive."""
        with contextlib.suppress(NetnsError):
            _ip("link", "del", self.host_if)
        if self.name in namespaces():
            _ip("netns", "del", self.name)
        self.is_cut = False


def sweep() -> list[str]:
    """Delete the suite's namespaces left by harness processes that died before closing them (SIGKILL), and only
    those: named for a pid that is gone, with no process inside."""
    gone = []
    for name in namespaces():
        parts = name.split("-")
        if parts[0] != PREFIX or len(parts) < 3 or not parts[1].isdigit() or _alive(int(parts[1])):
            continue
        with contextlib.suppress(NetnsError):
            if not _ip("netns", "pids", name).strip():
                _ip("netns", "del", name)
                gone.append(name)
    return gone


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def unsupported() -> str | None:
    """None when this machine can host the suite's namespaces (a throwaway one is built, cut, healed, deleted);
    otherwise why not."""
    missing = [tool for tool in ("ip", "nft") if shutil.which(tool) is None]
    if missing:
        return f"{' and '.join(missing)} not installed"
    try:
        host = NetnsHost.create(uuid.uuid4().hex[:6], "probe")
        try:
            host.cut([1])
            host.heal()
        finally:
            host.close()
    except NetnsError as exc:
        return str(exc)
    return None

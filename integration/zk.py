"""Real ZooKeeper servers for tests and benchmarks: one server or an ensemble on loopback ports in a temp dir.

Uses Debian's `zookeeper` package (scripts/zookeeper.sh installs it): QuorumPeerMain from /usr/share/java
with a generated zoo.cfg and log4j config per node. Every node can be killed, stopped, restarted or paused
(SIGSTOP) so fault tests can take a server away the way production loses one.

`ZkCluster(tls=True)` serves clients over TLS only (ZooKeeper 3.5+'s `secureClientPort` through Netty; no plain
port at all) and requires a client certificate; an ensemble's quorum traffic is TLS too (`sslQuorum`). The
certificates and Java keystores are made for the run (integration.certs); `client_tls` is what a client needs.

    python -m integration.zk start --nodes 3        # prints the connect string, servers keep running
    python -m integration.zk start --nodes 1 --wait # runs until Ctrl-C / SIGTERM, then stops them
    python -m integration.zk stop DIR               # stops servers started without --wait
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from integration.certs import CertAuthority, password

JAVA_DIRS = (Path("/usr/share/java"), Path("/usr/share/zookeeper"), Path("/usr/share/zookeeper/lib"))
JARS = ("zookeeper.jar", "slf4j-log4j12.jar", "log4j-1.2.jar")  # the last two only route logs to our file
# Netty's parts the TLS server needs that Debian's zookeeper.jar manifest does not name
NETTY_JARS = ("netty-codec.jar", "netty-resolver.jar", "netty-transport-native-unix-common.jar")
MAIN = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
# small tick: the minimum session timeout is 2 ticks, so tests can expire sessions in well under 1 s
TICK_MS = 200


class ZkHarnessError(RuntimeError):
    """ZooKeeper could not be started or did not become healthy; the message carries the log tail."""


def find_jar(name: str) -> Path | None:
    for folder in JAVA_DIRS:
        if (folder / name).is_file():
            return folder / name
    return None


def classpath(tls: bool = False) -> str:
    main = find_jar(JARS[0])
    if main is None or shutil.which("java") is None:
        raise ZkHarnessError("ZooKeeper is not installed (no zookeeper.jar or java): run scripts/zookeeper.sh")
    extra = [p for p in (find_jar(j) for j in JARS[1:]) if p is not None]
    netty = [find_jar(j) for j in NETTY_JARS] if tls else []
    if None in netty:
        raise ZkHarnessError(f"ZooKeeper over TLS needs Netty ({', '.join(NETTY_JARS)}): apt-get install libnetty-java")
    return os.pathsep.join(str(p) for p in [main, *extra, *netty])


GC_FLAGS = {
    "serial": "-XX:+UseSerialGC",
    "parallel": "-XX:+UseParallelGC",
    "g1": "-XX:+UseG1GC",
    "zgc": "-XX:+UseZGC",
    "shenandoah": "-XX:+UseShenandoahGC",
}


def jvm_flags() -> list[str]:
    """Quick-starting, small servers for tests; benchmarks ask for more through the env: CRONFRAMEWORK_ZK_HEAP
    (default 256m), CRONFRAMEWORK_ZK_FULL_JIT=1 (C2 instead of C1 only), CRONFRAMEWORK_ZK_GC (a key of GC_FLAGS
    instead of the serial collector; full benchmark runs ask for zgc) and CRONFRAMEWORK_ZK_GC_LOG=<dir>
    (each server's GC log, to line pauses up with lag), CRONFRAMEWORK_ZK_JVM_OPTS (more flags, space-separated,
    e.g. a flight recording or huge pages). The committed-proposal log kept for follower sync is
    capped: with 1,000-op multi transactions the default 500 can fill a small heap."""
    gc = GC_FLAGS[os.environ.get("CRONFRAMEWORK_ZK_GC", "serial")]
    flags = [f"-Xmx{os.environ.get('CRONFRAMEWORK_ZK_HEAP', '256m')}", gc, "-Dzookeeper.commitLogCount=100"]
    if os.environ.get("CRONFRAMEWORK_ZK_FULL_JIT") != "1":
        flags.append("-XX:TieredStopAtLevel=1")
    if log_dir := os.environ.get("CRONFRAMEWORK_ZK_GC_LOG"):
        flags.append(f"-Xlog:gc:file={log_dir}/zk-gc-%p.log:uptime,time")
    return flags + os.environ.get("CRONFRAMEWORK_ZK_JVM_OPTS", "").split()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def four_letter(port: int, command: str, timeout: float = 1.0, tls: ssl.SSLContext | None = None) -> str:
    """Send a four-letter word ('ruok', 'srvr', 'mntr'), over TLS with `tls`; '' when the server does not answer."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
            s = tls.wrap_socket(raw, server_hostname="127.0.0.1") if tls else raw
            s.sendall(command.encode())
            chunks = []
            while chunk := s.recv(4096):
                chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace")
    except OSError:
        return ""


@dataclass(frozen=True)
class ZkTls:
    """What a client of a TLS ensemble needs: the CA that signed the servers, and a certificate of its own."""

    ca: Path
    cert: Path
    key: Path

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca))
        context.load_cert_chain(str(self.cert), str(self.key))
        return context


def server_mode(port: int, tls: ssl.SSLContext | None = None) -> str | None:
    """'standalone', 'leader' or 'follower' when the node serves requests, else None."""
    for line in four_letter(port, "srvr", tls=tls).splitlines():
        if line.startswith("Mode:"):
            return line.split(":", 1)[1].strip()
    return None


@dataclass
class ZkNode:
    sid: int
    client_port: int
    peer_port: int
    election_port: int
    home: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        parts = []
        for name in ("zookeeper.log", "console.log"):
            path = self.home / name
            if path.exists():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {path} ---\n" + "\n".join(text))
        return "\n".join(parts) or f"(no log in {self.home})"


@dataclass
class ZkCluster:
    """One ZooKeeper server (nodes=1, standalone) or an ensemble, all on 127.0.0.1. `client_host="0.0.0.0"` opens
    the client port to other network namespaces (the fault suite's replicas); the ensemble's own traffic stays on
    loopback either way."""

    nodes: int = 1
    base: Path | None = None
    force_sync: bool = False  # tests do not need fsync; benchmarks may turn it on to measure real cost
    client_host: str = "127.0.0.1"
    tls: bool = False
    members: list[ZkNode] = field(default_factory=list)
    client_tls: ZkTls | None = None  # with tls: a client certificate the servers accept
    _stores: tuple[Path, Path, str] | None = None  # with tls: the servers' keystore, truststore and their password
    _own_base: bool = False

    def __post_init__(self) -> None:
        if self.base is None:
            self.base = Path(tempfile.mkdtemp(prefix="cf-zk-"))
            self._own_base = True
        if not self.members:
            self.members = [self._new_node(i + 1) for i in range(self.nodes)]
        if self.tls:
            self._make_certificates(self.base / "tls")

    def _make_certificates(self, folder: Path) -> None:
        ca = CertAuthority(folder, "zookeeper test CA")
        secret = password()
        server = ca.issue("zookeeper", ips=("127.0.0.1",))  # the address clients and peers use, nothing else
        self._stores = (ca.keystore(server, secret), ca.truststore(secret), secret)
        client = ca.issue("cronframework")
        self.client_tls = ZkTls(ca.cert, client.cert, client.key)

    @property
    def _tls_context(self) -> ssl.SSLContext | None:
        return self.client_tls.context() if self.client_tls else None

    def _new_node(self, sid: int) -> ZkNode:
        assert self.base is not None
        home = self.base / f"node{sid}"
        (home / "data").mkdir(parents=True, exist_ok=True)
        return ZkNode(sid, free_port(), free_port(), free_port(), home)

    @property
    def connect_string(self) -> str:
        return ",".join(n.address for n in self.members)

    def node(self, sid: int) -> ZkNode:
        return self.members[sid - 1]

    # -- configuration
    def _config(self, node: ZkNode) -> str:
        lines = [
            f"tickTime={TICK_MS}",
            "initLimit=20",
            "syncLimit=10",
            f"dataDir={node.home / 'data'}",
            *self._client_port_lines(node),
            "maxSessionTimeout=120000",
            "maxClientCnxns=0",
            "admin.enableServer=false",
            "4lw.commands.whitelist=*",
            f"forceSync={'yes' if self.force_sync else 'no'}",
            "autopurge.purgeInterval=0",
        ]
        if len(self.members) > 1:
            lines += ["standaloneEnabled=false", "reconfigEnabled=false", "cnxTimeout=1000"]
            lines += [f"server.{m.sid}=127.0.0.1:{m.peer_port}:{m.election_port}" for m in self.members]
            lines += self._quorum_tls_lines()
        return "\n".join(lines) + "\n"

    def _client_port_lines(self, node: ZkNode) -> list[str]:
        if self._stores is None:
            return [f"clientPort={node.client_port}", f"clientPortAddress={self.client_host}"]
        keystore, truststore, secret = self._stores
        return [
            f"secureClientPort={node.client_port}",
            f"secureClientPortAddress={self.client_host}",
            "serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory",
            f"ssl.keyStore.location={keystore}",
            f"ssl.keyStore.password={secret}",
            f"ssl.trustStore.location={truststore}",
            f"ssl.trustStore.password={secret}",
            "ssl.clientAuth=need",
        ]

    def _quorum_tls_lines(self) -> list[str]:
        if self._stores is None:
            return []
        keystore, truststore, secret = self._stores
        return [
            "sslQuorum=true",
            f"ssl.quorum.keyStore.location={keystore}",
            f"ssl.quorum.keyStore.password={secret}",
            f"ssl.quorum.trustStore.location={truststore}",
            f"ssl.quorum.trustStore.password={secret}",
        ]

    def _write_files(self, node: ZkNode) -> None:
        config = node.home / "zoo.cfg"
        config.touch(mode=0o600)  # with TLS it holds the keystores' password
        config.write_text(self._config(node))
        (node.home / "data" / "myid").write_text(f"{node.sid}\n")
        (node.home / "log4j.properties").write_text(
            "log4j.rootLogger=INFO, F\n"
            "log4j.appender.F=org.apache.log4j.FileAppender\n"
            f"log4j.appender.F.File={node.home / 'zookeeper.log'}\n"
            "log4j.appender.F.layout=org.apache.log4j.PatternLayout\n"
            "log4j.appender.F.layout.ConversionPattern=%d{ISO8601} %-5p [%t] %c{1} - %m%n\n"
        )

    # -- lifecycle of one node
    def start_node(self, sid: int) -> None:
        node = self.node(sid)
        if node.running:
            return
        self._write_files(node)
        argv = [
            "java",
            *jvm_flags(),
            f"-Dlog4j.configuration=file:{node.home / 'log4j.properties'}",
            "-Dzookeeper.jmx.log4j.disable=true",
            "-cp",
            classpath(self.tls),
            MAIN,
            str(node.home / "zoo.cfg"),
        ]
        with open(node.home / "console.log", "ab") as console:
            node.process = subprocess.Popen(
                argv,
                stdout=console,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def kill(self, sid: int) -> None:
        """SIGKILL: the server vanishes without closing sessions or connections."""
        self._signal_and_wait(sid, signal.SIGKILL)

    def stop(self, sid: int) -> None:
        """SIGTERM, then SIGKILL if it lingers."""
        self._signal_and_wait(sid, signal.SIGTERM)

    def _signal_and_wait(self, sid: int, sig: signal.Signals) -> None:
        node = self.node(sid)
        if node.process is None or node.process.poll() is not None:
            return
        self._signal(node, signal.SIGCONT)  # a paused JVM cannot act on SIGTERM
        self._signal(node, sig)
        try:
            node.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._signal(node, signal.SIGKILL)
            node.process.wait(timeout=10)

    @staticmethod
    def _signal(node: ZkNode, sig: signal.Signals) -> None:
        if node.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(node.process.pid, sig)

    def pause(self, sid: int) -> None:
        """SIGSTOP: the server keeps its sockets open but answers nothing (a hung or partitioned node)."""
        self._signal(self.node(sid), signal.SIGSTOP)

    def resume(self, sid: int) -> None:
        self._signal(self.node(sid), signal.SIGCONT)

    # -- health
    def wait_serving(self, sids: list[int] | None = None, timeout: float = 60.0) -> None:
        """Wait until every given node serves requests and (ensembles) exactly one of them leads."""
        wanted = [self.node(s) for s in (sids or [m.sid for m in self.members])]
        deadline = time.monotonic() + timeout
        while not self._healthy(wanted):
            dead = [n for n in wanted if not n.running]
            if dead or time.monotonic() > deadline:
                why = "exited" if dead else f"did not serve within {timeout:.0f}s"
                silent = [n for n in wanted if self.mode(n.sid) is None]
                culprit = dead[0] if dead else (silent or wanted)[0]
                raise ZkHarnessError(f"ZooKeeper node {culprit.sid} {why}\n{culprit.log_tail()}")
            time.sleep(0.1)

    def mode(self, sid: int) -> str | None:
        """The node's `srvr` mode, over TLS when the cluster serves TLS."""
        return server_mode(self.node(sid).client_port, self._tls_context)

    def _healthy(self, wanted: list[ZkNode]) -> bool:
        modes = [self.mode(n.sid) for n in wanted]
        if any(m is None for m in modes):
            return False
        if len(self.members) == 1:
            return True
        leaders = [n for n in self.members if n.running and self.mode(n.sid) == "leader"]
        return len(leaders) == 1

    def leader_sid(self) -> int | None:
        for node in self.members:
            if node.running and self.mode(node.sid) == "leader":
                return node.sid
        return None

    # -- whole cluster
    def start(self, timeout: float = 60.0) -> ZkCluster:
        try:
            for node in self.members:
                self.start_node(node.sid)
            self.wait_serving(timeout=timeout)
        except BaseException:
            self.stop_all()
            raise
        return self

    def stop_all(self) -> None:
        for node in self.members:
            self.kill(node.sid)

    def destroy(self) -> None:
        self.stop_all()
        if self._own_base and self.base is not None:
            shutil.rmtree(self.base, ignore_errors=True)

    def log_tail(self) -> str:
        return "\n".join(n.log_tail() for n in self.members)

    def __enter__(self) -> ZkCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    # -- state file for the CLI's detached mode
    def save(self) -> Path:
        assert self.base is not None
        state = {"connect": self.connect_string, "pids": [n.process.pid for n in self.members if n.process]}
        path = self.base / "cluster.json"
        path.write_text(json.dumps(state))
        return path


def _stop_dir(base: Path) -> None:
    state = json.loads((base / "cluster.json").read_text())
    for pid in state["pids"]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
            os.kill(pid, signal.SIGKILL)
    shutil.rmtree(base, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m integration.zk", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="start a server or ensemble and print its connect string")
    start.add_argument("--nodes", type=int, default=1)
    start.add_argument("--fsync", action="store_true", help="fsync the transaction log (real-world cost)")
    start.add_argument("--wait", action="store_true", help="stay in the foreground; stop the servers on exit")
    stop = sub.add_parser("stop", help="stop servers started without --wait")
    stop.add_argument("dir", type=Path)
    args = parser.parse_args(argv)
    if args.command == "stop":
        _stop_dir(args.dir)
        return 0
    return _start(args.nodes, args.fsync, args.wait)


def _start(nodes: int, fsync: bool, wait: bool) -> int:
    cluster = ZkCluster(nodes=nodes, force_sync=fsync)
    try:
        cluster.start()
    except ZkHarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(cluster.connect_string, flush=True)
    print(f"# dir: {cluster.base}  (stop with: python -m integration.zk stop {cluster.base})", file=sys.stderr)
    cluster.save()
    if not wait:
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while True:
            time.sleep(3600)
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        cluster.destroy()
    return 0


if __name__ == "__main__":
    sys.exit(main())

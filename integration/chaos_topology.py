"""The system under fault: a ZooKeeper ensemble, scheduler replicas as OS processes, a backend, second-level jobs.

One replica can be partitioned from ZooKeeper. `network="netns"`: every replica runs in a network namespace of its
own (integration.chaos_netns) and reaches ZooKeeper, listening on 0.0.0.0, at its host-side address; a cut drops
its packets in the kernel. `network="gate"`: all on loopback, every replica through a userland gate of its own
(integration.chaos_gate). A replica's HTTP API stays on its own loopback: nothing in the suite calls it.
Every task appends `<launch> <epoch> <attempt>` to one shared file: the task's own testimony of having run, read
by the invariant checker next to the backend's record and the store's history.

On the Nomad backend the replicas reach a persistent single-node agent (server + client, raw_exec tasks on this host,
its state in the workdir). The backend fault stops the agent whatever calls are in flight and starts it again with
every job kept, as a real cluster's would be, so the backend's record is simply the agent's jobs at the end. With
namespaces the agent's HTTP API also listens on each host-side address (never on 0.0.0.0: it runs anything), the
replica learns its own from NOMAD_ADDR, and a partition spares that port: like the Docker socket and the process
backend, the backend stays reachable from a leader cut off from ZooKeeper.

On the Docker backend the replicas reach a dockerd of the run's own (integration.docker_daemon.PrivateDockerDaemon,
its data root and log in the workdir), never the machine's shared one: the backend and slow faults stop and freeze
it. It is stopped when the topology closes, whatever happened.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from integration import chaos_clock, chaos_disk
from integration.chaos_clock import ClockShift, FaketimeMissing
from integration.chaos_gate import ZkGate
from integration.chaos_netns import NetnsError, NetnsHost, sweep
from integration.docker_daemon import DockerDaemonError, PrivateDockerDaemon, remove_labelled
from integration.nomad_agent import NomadAgent, NomadAgentError
from integration.replicas import ReplicaProcess, ReplicaSet, wait_for
from integration.zk import ZkCluster, ZkHarnessError

LEADERSHIP_ENDS = (
    "leadership lost; back to following",
    "leader session failed; will retry",
    "shutting down; handing leadership over",
)
ROOT = Path(__file__).resolve().parent.parent
TEST_IMAGE = "cronframework-test:latest"
RECORD_LINE = 'echo "$CRONFRAMEWORK_LAUNCH $CRONFRAMEWORK_LEADER_EPOCH $CRONFRAMEWORK_ATTEMPT" >> {out}'
# a `forbid` job's run also testifies when it started and ended, on a clock every task reads alike, in a container
# too (/proc/uptime: the host's, to 10 ms; busybox's date has no sub-second field), so overlaps can be judged
SPAN_LINE = """echo "$CRONFRAMEWORK_LAUNCH {edge} $(cut -d' ' -f1 /proc/uptime)" >> {out}"""

# name -> (schedule, extra shell after the record line, extra spec fields)
JOBS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "beat": ("* * * * * *", "", {}),
    "even": ("*/2 * * * * *", "", {}),
    "third": ("@every 3s", "", {}),
    # runs longer than its period: `forbid` turns every other instant into a skipped-with-reason record
    "slow": ("*/5 * * * * *", "; sleep 7", {"concurrency": "forbid"}),
    # fails every run: each instant is retried twice (`retry:`), every attempt its own backend object
    "flaky": ("*/5 * * * * *", "; exit 1", {"retry": {"attempts": 3, "backoff": "500ms", "max_backoff": "1s"}}),
}
SPREAD = ("? * * * * *", "", {})
PROCESS_DISK_MB = 256  # the process backend's state dir: a 1,000-job run writes some 20 MB a minute there
ZK_DISK_MB = 64  # a ZooKeeper node's data dir
SNAPSHOT_EVERY = "10s"  # the scale runs' minutely jobs, each at a second of its own (`?`)


def jobs_for(total: int) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """The four second-level jobs, and minutely ones spread over the minute up to `total` jobs in all."""
    return {**JOBS, **{f"minutely-{i:04d}": SPREAD for i in range(max(0, total - len(JOBS)))}}


@dataclass
class Topology:
    workdir: Path
    backend: str = "process"
    replicas: int = 3
    zk_nodes: int = 3
    session_timeout: float = 4.0
    network: str = "gate"  # or "netns"
    zk: ZkCluster | None = None
    cluster: ReplicaSet | None = None
    gates: dict[str, ZkGate] = field(default_factory=dict)
    hosts: dict[str, NetnsHost] = field(default_factory=dict)
    deaths: dict[Path, float] = field(default_factory=dict)  # incarnation's log -> when the harness saw it die
    root: str = field(default_factory=lambda: f"/chaos-{uuid.uuid4().hex[:10]}")
    nomad: NomadAgent | None = None
    docker: PrivateDockerDaemon | None = None
    jobs: dict[str, tuple[str, str, dict[str, Any]]] = field(default_factory=lambda: dict(JOBS))
    faketime: bool = False  # every replica runs under libfaketime, its offset in clock/<id> (integration.chaos_clock)
    small_disks: bool = False  # the process state dir and each ZooKeeper data dir on a tmpfs of their own (chaos_disk)
    snapshots: bool = False  # the leader writes a snapshot every SNAPSHOT_EVERY into snapshot_dir (docs/backups.md)
    mounts: list[Path] = field(default_factory=list)
    shifts: dict[Path, list[ClockShift]] = field(default_factory=dict)  # incarnation's log -> its clock's moves
    ended_when_judged: set[str] | None = None  # launches the backend had ended when the results were judged

    @property
    def out_file(self) -> Path:
        return self.workdir / "task-output.txt"

    @property
    def state_dir(self) -> Path:
        return self.workdir / "process"

    @property
    def snapshot_dir(self) -> Path:
        return self.workdir / "snapshots"

    @property
    def cluster_label(self) -> str:
        return self.root  # what the leader passes as Launch.cluster (the ZooKeeper root)

    @property
    def ids(self) -> list[str]:
        return [f"r{i + 1}" for i in range(self.replicas)]

    def rs(self) -> ReplicaSet:
        assert self.cluster is not None, "topology not started"
        return self.cluster

    def ensemble(self) -> ZkCluster:
        assert self.zk is not None, "topology not started"
        return self.zk

    # -- lifecycle ------------------------------------------------------------------------------------------
    def start(self) -> Topology:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.out_file.touch()
        if self.faketime:
            self._prepare_clocks()
        client_host = "0.0.0.0" if self.netns else "127.0.0.1"
        self.zk = ZkCluster(nodes=self.zk_nodes, base=self.workdir / "zk", client_host=client_host)
        if self.small_disks:
            self._mount_small_disks()
        self.zk.start()
        self._open_links()
        backends = self._backends()
        self.cluster = ReplicaSet(
            self.zk.connect_string, self.root, self.workdir / "cluster", self.session_timeout, backends
        )
        if self.snapshots:
            self._configure_snapshots()
        self._apply_jobs()
        for rid in self.ids:
            self.start_replica(rid)
        self.leader(timeout=60)
        return self

    @property
    def netns(self) -> bool:
        return self.network == "netns"

    def _mount_small_disks(self) -> None:
        """Before anything writes there: tmpfs mounts with a size limit, so that a disk fault can fill one."""
        wanted = [(self.state_dir, PROCESS_DISK_MB), *((n.home / "data", ZK_DISK_MB) for n in self.ensemble().members)]
        try:
            for path, size in wanted:
                chaos_disk.mount_tmpfs(path, size)
                self.mounts.append(path)
        except chaos_disk.DiskError as exc:
            raise ZkHarnessError(f"cannot mount the small disks the disk fault fills: {exc}") from exc

    def newest_snapshot(self) -> Path | None:
        found = sorted(self.snapshot_dir.glob("cronframework-snapshot-*.json.gz"))
        return found[-1] if found else None

    def _configure_snapshots(self) -> None:
        """The replicas' config gains a `snapshot` section: what a lost ensemble is restored from."""
        config = yaml.safe_load(self.rs().config_path.read_text())
        config["snapshot"] = {"dir": str(self.snapshot_dir), "every": SNAPSHOT_EVERY, "keep": 5}
        self.rs().config_path.write_text(yaml.safe_dump(config))

    def _open_links(self) -> None:
        """Each replica's way to ZooKeeper, the one a partition cuts: its network namespace, or its gate."""
        if not self.netns:
            upstreams = [("127.0.0.1", n.client_port) for n in self.ensemble().members]
            self.gates = {rid: ZkGate(upstreams).start() for rid in self.ids}
            return
        try:
            sweep()
            for rid in self.ids:
                self.hosts[rid] = NetnsHost.create(self.root.rsplit("-", 1)[-1], rid)
        except NetnsError as exc:
            raise ZkHarnessError(f"the replicas' network namespaces could not be built: {exc}") from exc

    def _backends(self) -> dict[str, dict[str, Any]]:
        """Replica backend config; brings up the daemon or agent the run needs (ZkHarnessError if it can't)."""
        backends: dict[str, dict[str, Any]] = {"process": {"state_dir": str(self.state_dir)}}
        try:
            if self.backend == "docker":
                self.docker = PrivateDockerDaemon(self.workdir / "dockerd")
                self.docker.ready()
                backends["docker"] = {
                    "base_url": self.docker.address, "allowed_mounts": [str(self.workdir.resolve())], "timeout": 10.0,
                }  # fmt: skip
            elif self.backend == "nomad":
                addresses = tuple(h.host_addr for h in self.hosts.values())
                self.nomad = NomadAgent(self.workdir / "nomad", persistent=True, http_addresses=addresses)
                self.nomad.start()
                backends["nomad"] = {"timeout": 5.0}  # in namespaces: NOMAD_ADDR, one per replica (_nomad_env)
                if not self.netns:
                    backends["nomad"]["address"] = self.nomad.address
        except (DockerDaemonError, NomadAgentError) as exc:
            raise ZkHarnessError(f"the {self.backend} backend could not be started: {exc}") from exc
        return backends

    def _apply_jobs(self) -> None:
        path = self.workdir / "jobs.yaml"
        path.write_text(yaml.safe_dump({"job": {name: self._job(name) for name in self.jobs}}))
        self.rs().cli("apply", str(path))

    def _job(self, name: str) -> dict[str, Any]:
        schedule, tail, extra = self.jobs[name]
        spec: dict[str, Any] = {
            "schedule": schedule,
            "backend": self.backend,
            "catchup": {"policy": "all", "window": "10m", "max": 1000},
            "retention": {"count": 100000, "age": "30d"},
            "retries": {"attempts": 5, "backoff": "200ms", "max_backoff": "1s"},
            **extra,
        }
        if self.backend == "docker":
            line = task_line("/out/task-output.txt", tail, spanned=extra.get("concurrency") == "forbid")
            spec["task"] = {
                "image": TEST_IMAGE,
                "command": ["/bin/sh", "-c", line],
                "mounts": [{"source": str(self.workdir.resolve()), "target": "/out", "read_only": False}],
            }
        else:
            line = task_line(str(self.out_file), tail, spanned=extra.get("concurrency") == "forbid")
            spec["task"] = {"command": ["/bin/sh", "-c", line]}
        return spec

    def stop_replicas(self) -> None:
        if self.cluster is not None:
            for replica in self.cluster.replicas.values():
                replica.signal(signal.SIGCONT)
            self.cluster.stop_all()
            self._note_deaths()

    def close(self) -> None:
        try:
            self.stop_replicas()
            for gate in self.gates.values():
                gate.close()
            if self.zk is not None:
                self.zk.stop_all()
            if self.nomad is not None:
                self.nomad.shutdown()
        finally:
            try:
                if self.docker is not None:
                    self.docker.close()
            finally:
                for host in self.hosts.values():
                    host.close()
                for path in self.mounts:
                    chaos_disk.unmount(path, keep=path.with_name(path.name + ".kept"))

    # -- replicas -------------------------------------------------------------------------------------------
    def start_replica(self, rid: str, env: dict[str, str] | None = None) -> ReplicaProcess:
        env = {**self._clock_env(rid), **(env or {})}
        if not self.netns:
            started = self.rs().start(rid, env=env, zk_hosts=self.gates[rid].connect_string)
        else:
            host = self.hosts[rid]
            zk_hosts = ",".join(f"{host.host_addr}:{n.client_port}" for n in self.ensemble().members)
            env = {**self._nomad_env(host), **env}
            started = self.rs().start(rid, env=env, zk_hosts=zk_hosts, prefix=host.command_prefix)
        self._note_start_offset(rid, started)
        return started

    # -- clocks ---------------------------------------------------------------------------------------------
    def clock_file(self, rid: str) -> Path:
        return self.workdir / "clock" / rid

    def _prepare_clocks(self) -> None:
        try:
            chaos_clock.library()
        except FaketimeMissing as exc:
            raise ZkHarnessError(str(exc)) from exc
        (self.workdir / "clock").mkdir(exist_ok=True)
        chaos_clock.shim(self.workdir / "clock" / "shim")
        for rid in self.ids:
            chaos_clock.write_offset(self.clock_file(rid), 0.0)

    def _clock_env(self, rid: str) -> dict[str, str]:
        return chaos_clock.environment(self.clock_file(rid), self.workdir / "clock" / "shim") if self.faketime else {}

    def _note_start_offset(self, rid: str, replica: ReplicaProcess) -> None:
        offset = chaos_clock.read_offset(self.clock_file(rid)) if self.faketime else 0.0
        if offset:
            self.shifts[replica.log_path] = [ClockShift(0, 0, offset, replica.started_at)]

    def set_clock(self, rid: str, offset: float) -> float:
        """Move replica `rid`'s wall clock to `offset` seconds off the host's, at once (a running replica jumps; one
        started later starts there). Returns the real time it took effect."""
        replica = self.rs().replicas.get(rid)
        before = len(replica.events()) if replica is not None else 0
        at = chaos_clock.write_offset(self.clock_file(rid), offset)
        if replica is not None and replica.alive():
            shift = ClockShift(before, len(replica.events()), offset, at)
            self.shifts.setdefault(replica.log_path, []).append(shift)
        return at

    def clock_offset(self, rid: str) -> float:
        return chaos_clock.read_offset(self.clock_file(rid)) if self.faketime else 0.0

    def _nomad_env(self, host: NetnsHost) -> dict[str, str]:
        return {"NOMAD_ADDR": f"http://{host.host_addr}:{self._nomad_port()}"} if self.nomad is not None else {}

    def _nomad_port(self) -> int | None:
        return int(self.nomad.address.rsplit(":", 1)[1]) if self.nomad is not None else None

    def cut(self, rid: str) -> None:
        """Partition one replica from ZooKeeper: its namespace drops every packet but the backend's, or its gate
        goes silent."""
        if not self.netns:
            self.gates[rid].cut()
            return
        port = self._nomad_port()
        self.hosts[rid].cut([port] if port else [])

    def heal(self, rid: str) -> None:
        (self.hosts[rid] if self.netns else self.gates[rid]).heal()

    def replica(self, rid: str) -> ReplicaProcess:
        return self.rs().replicas[rid]

    def current_leader(self, other_than: str | None = None) -> str | None:
        """The live replica leading the newest epoch by its log; a paused or cut-off one that never noticed its
        loss still claims an older epoch, so the newest epoch wins."""
        best: tuple[int, str] | None = None
        for rid, replica in self.rs().replicas.items():
            if rid == other_than or not replica.alive():
                continue
            roles = [e for e in replica.events() if e.get("event") in ("leading", *LEADERSHIP_ENDS)]
            if roles and roles[-1]["event"] == "leading" and (best is None or int(roles[-1]["epoch"]) > best[0]):
                best = (int(roles[-1]["epoch"]), rid)
        return best[1] if best else None

    def leader(self, timeout: float = 60.0, other_than: str | None = None) -> str:
        found = wait_for(lambda: self.current_leader(other_than), timeout)
        if not found:
            raise AssertionError(f"no leader (other than {other_than}) within {timeout}s:\n{self.rs().log_tails()}")
        return str(found)

    def epoch_of(self, rid: str) -> int:
        leading = [e for e in self.replica(rid).events() if e.get("event") == "leading"]
        return int(leading[-1]["epoch"]) if leading else -1

    def kill(self, rid: str) -> float:
        """SIGKILL; returns the wall time it was sent."""
        replica, at = self.replica(rid), time.time()
        replica.signal(signal.SIGCONT)
        replica.signal(signal.SIGKILL)
        replica.process.wait(10)
        self.deaths[replica.log_path] = at
        return at

    def terminate(self, rid: str) -> float:
        """SIGTERM and wait for the graceful exit; returns the wall time it was sent."""
        replica, at = self.replica(rid), time.time()
        replica.signal(signal.SIGTERM)
        try:
            replica.process.wait(20)
        except subprocess.TimeoutExpired:
            replica.process.kill()
            replica.process.wait(10)
        self.deaths[replica.log_path] = time.time()
        return at

    def wait_dead(self, rid: str, timeout: float) -> float | None:
        replica = self.replica(rid)
        if not wait_for(lambda: not replica.alive(), timeout, interval=0.02):
            return None
        self.deaths.setdefault(replica.log_path, time.time())
        return self.deaths[replica.log_path]

    def ensure_all_running(self) -> None:
        """Every replica alive and not stopped, every partition healed, every ZooKeeper node serving."""
        for rid in self.ids:
            self.heal(rid)
        self.ensure_zk()
        self._note_deaths()
        for rid in self.ids:
            replica = self.rs().replicas.get(rid)
            if replica is None or not replica.alive():
                self.start_replica(rid)
            else:
                replica.signal(signal.SIGCONT)

    def ensure_zk(self) -> None:
        zk = self.ensemble()
        for node in zk.members:
            zk.resume(node.sid)
            zk.start_node(node.sid)
        zk.wait_serving(timeout=90)

    def _note_deaths(self) -> None:
        for replica in self.rs().incarnations:
            if not replica.alive():
                self.deaths.setdefault(replica.log_path, time.time())

    # -- backend --------------------------------------------------------------------------------------------
    def dockerd(self) -> PrivateDockerDaemon:
        assert self.docker is not None, "not a docker topology"
        return self.docker

    def nomad_agent(self) -> NomadAgent:
        assert self.nomad is not None, "not a nomad topology"
        return self.nomad

    def restart_nomad(self, down: float, offset: float, crash: bool) -> float:
        """Stop the agent (SIGINT, or SIGKILL if `crash`) `offset` s past a whole second, while the leader submits
        that second's launches: a call in flight may be cut off after Nomad took it, and the scheduler must ask by
        name once the agent is back. Start it again after `down`; returns how long the start took, until a
        leader and the client node were back."""
        agent = self.nomad_agent()
        time.sleep(1 - time.time() % 1 + offset)
        agent.stop(kill=crash)
        time.sleep(down)
        started = time.monotonic()
        agent.start()
        return time.monotonic() - started

    def remove_containers(self) -> None:
        """After the evidence is read: the run's containers (docker backend) would pile up in the daemon."""
        api = self.dockerd().client()
        try:
            remove_labelled(api, f"cronframework.cluster={self.root}")
        finally:
            api.close()

    def manifest(self) -> dict[str, Any]:
        return {
            "root": self.root, "backend": self.backend, "network": self.network, "workdir": str(self.workdir),
            "namespaces": {rid: h.name for rid, h in self.hosts.items()}, "jobs": len(self.jobs),
        }  # fmt: skip

    def save_manifest(self) -> None:
        (self.workdir / "manifest.json").write_text(json.dumps(self.manifest(), indent=2))


def task_line(out: str, tail: str, *, spanned: bool) -> str:
    """The task's shell: its record line, then `tail`; a spanned one also writes its start before `tail` and its
    end after (a run killed on the way writes no end)."""
    record = RECORD_LINE.format(out=out)
    if not spanned:
        return record + tail
    return f"{record}; {SPAN_LINE.format(edge='start', out=out)}{tail}; {SPAN_LINE.format(edge='end', out=out)}"

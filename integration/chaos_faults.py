"""The faults, each a function of the topology and the run's random source, each returning what it did.

Every fault ends with the system whole again (replicas restarted, nodes back, partitions healed), so faults compose
in any order. A fault that takes a leader away records the loss (when, which epoch) for the takeover figures; the
zombie fault also records the window in which the resumed process must not touch the backend.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cronframework.crashhook import POINTS
from integration import chaos_disk
from integration.chaos_restore import Restore, empty_root, read_snapshot
from integration.chaos_topology import LEADERSHIP_ENDS, Topology
from integration.replicas import wait_for
from integration.zk import ZkCluster, ZkHarnessError

FAULTS = ("kill", "stop", "partition", "zk-node", "zk-quorum", "backend", "slow", "rolling", "clock", "disk", "zk-lost")
CLOCK_SKEWS = (3.0, -3.0, 90.0, -90.0)  # seconds: inside the clock guard's bound (5 s) and far outside it
CLOCK_HOLD = (6.0, 10.0)  # seconds a skew lasts: longer than the replicas' clock_check_every (5 s)
GUARD_SAYS = "clock skew with the state store too large; not launching"


@dataclass(frozen=True)
class LeaderLoss:
    at: float  # wall time the leader was taken away
    epoch: int
    replica: str


@dataclass(frozen=True)
class ClockFault:
    """A replica that led with its wall clock `skew` seconds off, from `applied` to `restored` (real time)."""

    replica: str
    epoch: int  # the epoch it led while skewed; -1: it never led
    skew: float
    applied: float
    restored: float
    kept_leading: bool  # led that epoch all through, so its clock guard had to act
    guard_said: bool  # its log says "clock skew with the state store too large; not launching" meanwhile


@dataclass
class FaultEvent:
    kind: str
    detail: str
    started: float
    ended: float = 0.0
    losses: list[LeaderLoss] = field(default_factory=list)
    zombie: tuple[str, int, float] | None = None  # (replica, its stale epoch, wall time it was resumed)
    clock: ClockFault | None = None
    restore: Restore | None = None


def inject(kind: str, topo: Topology, rng: random.Random) -> FaultEvent:
    event = INJECTORS[kind](topo, rng)
    topo.ensure_all_running()
    topo.leader(timeout=90)
    event.ended = time.time()
    return event


def _loss(topo: Topology, rid: str, at: float) -> LeaderLoss:
    return LeaderLoss(at, topo.epoch_of(rid), rid)


# -- replicas ---------------------------------------------------------------------------------------------------
def kill(topo: Topology, rng: random.Random) -> FaultEvent:
    """kill -9 of the leader; every other time, of a leader that dies by itself at a crash point."""
    point = rng.choice((None, *POINTS))
    if point is not None:
        return _crash_at(topo, point)
    leader = topo.leader()
    event = FaultEvent("kill", "kill -9 of the leader", time.time())
    event.losses.append(_loss(topo, leader, topo.kill(leader)))
    topo.leader(timeout=topo.session_timeout + 30, other_than=leader)
    return event


def _crash_at(topo: Topology, point: str) -> FaultEvent:
    """Queue a replica armed with the crash point first in line, then kill -9 the leader so it takes over."""
    leader = topo.leader()
    event = FaultEvent("kill", f"kill -9 of the leader, heir crashes at {point}", time.time())
    followers = [rid for rid in topo.ids if rid != leader]
    for rid in followers:
        topo.terminate(rid)
    heir = followers[0]
    _first_in_line(topo, heir, env={"CRONFRAMEWORK_CRASH_AT": point, "CRONFRAMEWORK_CRASH_JOB": "beat"})
    for rid in followers[1:]:
        topo.start_replica(rid)
    event.losses.append(_loss(topo, leader, topo.kill(leader)))
    topo.start_replica(leader)
    if topo.wait_dead(heir, topo.session_timeout + 30) is not None and topo.epoch_of(heir) > 0:
        dead_at = topo.deaths[topo.replica(heir).log_path]
        event.losses.append(LeaderLoss(dead_at, topo.epoch_of(heir), heir))
    else:
        event.detail += " (the heir did not lead and crash)"
    if topo.replica(heir).alive():
        topo.terminate(heir)  # still armed: disarm it
    topo.start_replica(heir)
    return event


def _first_in_line(topo: Topology, heir: str, env: dict[str, str] | None = None) -> None:
    """Start `heir` and wait until it has joined the election ("replica started" comes right after), so that its
    election node is older than those of the replicas started next. A fixed head start of 1.5 s was not enough on a
    loaded machine, where a replica with 1,000 jobs took 8 s to start."""
    replica = topo.start_replica(heir, env=env)
    wait_for(lambda: any(e.get("event") == "replica started" for e in replica.events()), 60, interval=0.1)


def stop(topo: Topology, rng: random.Random) -> FaultEvent:
    """SIGSTOP the leader past its session timeout, wait for a successor, then SIGCONT the zombie."""
    leader = topo.leader()
    replica = topo.replica(leader)
    pause = topo.session_timeout + rng.uniform(2.0, 5.0)
    event = FaultEvent("stop", f"SIGSTOP of the leader for {pause:.1f}s", time.time())
    replica.signal(signal.SIGSTOP)
    event.losses.append(_loss(topo, leader, time.time()))
    time.sleep(pause)
    topo.leader(timeout=30, other_than=leader)
    resumed = time.time()
    replica.signal(signal.SIGCONT)
    event.zombie = (leader, event.losses[0].epoch, resumed)
    lost = wait_for(lambda: _said_lost(topo, leader, event.losses[0].epoch), 30)
    if not lost:
        event.detail += " (the zombie never logged the loss)"
    return event


def _said_lost(topo: Topology, rid: str, epoch: int) -> bool:
    return any(
        e.get("event") in LEADERSHIP_ENDS and int(e.get("epoch", -1)) == epoch for e in topo.replica(rid).events()
    )


def partition(topo: Topology, rng: random.Random) -> FaultEvent:
    """Cut the leader off from every ZooKeeper node, silently; heal after a successor leads."""
    leader = topo.leader()
    hold = topo.session_timeout + rng.uniform(2.0, 5.0)
    spared = ", its Nomad port spared" if topo.backend == "nomad" else ""
    how = (
        f"leader's network namespace cut off (the kernel drops its packets both ways{spared})"
        if topo.netns
        else "leader's gate to ZooKeeper silent both ways (userland)"
    )
    event = FaultEvent("partition", f"{how} for {hold:.1f}s", time.time())
    topo.cut(leader)
    event.losses.append(_loss(topo, leader, time.time()))
    time.sleep(hold)
    topo.leader(timeout=30, other_than=leader)
    topo.heal(leader)
    event.zombie = (leader, event.losses[0].epoch, time.time())
    return event


def rolling(topo: Topology, rng: random.Random) -> FaultEvent:
    """Graceful restart of every replica in turn (SIGTERM, wait for the exit, start again)."""
    order = list(topo.ids)
    rng.shuffle(order)
    event = FaultEvent("rolling", "SIGTERM + start of " + ",".join(order), time.time())
    for rid in order:
        was_leader = topo.current_leader() == rid
        epoch = topo.epoch_of(rid)
        at = topo.terminate(rid)
        if was_leader:
            event.losses.append(LeaderLoss(at, epoch, rid))
        topo.start_replica(rid)
        topo.leader(timeout=topo.session_timeout + 30)
        time.sleep(rng.uniform(0.5, 2.0))
    return event


# -- clocks -----------------------------------------------------------------------------------------------------
def clock(topo: Topology, rng: random.Random) -> FaultEvent:
    """The leader's wall clock jumps by a skew and back; or a replica whose clock runs off by it takes over."""
    skew, hold = rng.choice(CLOCK_SKEWS), rng.uniform(*CLOCK_HOLD)
    if rng.random() < 0.5:
        return _clock_jump(topo, skew, hold)
    return _clock_heir(topo, skew, hold)


def _clock_jump(topo: Topology, skew: float, hold: float) -> FaultEvent:
    leader = topo.leader()
    epoch, since = topo.epoch_of(leader), len(topo.replica(leader).events())
    event = FaultEvent("clock", f"the leader's clock jumps {skew:+.0f}s for {hold:.1f}s, then back", time.time())
    applied = topo.set_clock(leader, skew)
    time.sleep(hold)
    restored = topo.set_clock(leader, 0.0)
    event.clock = _clock_fault(topo, leader, epoch, skew, (applied, restored), since)
    return event


def _clock_heir(topo: Topology, skew: float, hold: float) -> FaultEvent:
    """Restart the followers so that one whose clock is `skew` off is first in line, then hand leadership over to it
    (SIGTERM of the leader); its clock is put right after `hold`."""
    leader = topo.leader()
    detail = f"a replica {skew:+.0f}s off takes over (SIGTERM of the leader), its clock put right after {hold:.1f}s"
    event = FaultEvent("clock", detail, time.time())
    followers = [rid for rid in topo.ids if rid != leader]
    for rid in followers:
        topo.terminate(rid)
    heir = followers[0]
    applied = topo.set_clock(heir, skew)
    _first_in_line(topo, heir)
    for rid in followers[1:]:
        topo.start_replica(rid)
    epoch = topo.epoch_of(leader)
    event.losses.append(LeaderLoss(topo.terminate(leader), epoch, leader))
    topo.start_replica(leader)
    if topo.leader(timeout=topo.session_timeout + 30, other_than=leader) != heir:
        event.detail += " (another replica took over)"
    time.sleep(hold)
    restored = topo.set_clock(heir, 0.0)
    event.clock = _clock_fault(topo, heir, topo.epoch_of(heir), skew, (applied, restored), 0)
    return event


def _clock_fault(
    topo: Topology, rid: str, epoch: int, skew: float, span: tuple[float, float], since: int
) -> ClockFault:
    """What the replica did while skewed, from its log since event `since`."""
    leads_now = topo.current_leader() == rid and topo.epoch_of(rid) == epoch
    kept, said = judge_clock_fault(topo.replica(rid).events(), since, epoch, leads_now)
    return ClockFault(rid, epoch, skew, span[0], span[1], kept, said)


def judge_clock_fault(events: list[dict[str, Any]], since: int, epoch: int, leads_now: bool) -> tuple[bool, bool]:
    """(kept_leading, guard_said) from the replica's log, `since` the index of the first event under the skew.
    The guard is consulted by each tick, the first of them at the end of the takeover: a leader still concluding
    its open launches (instants decided before the skew) all through the skew planned nothing for it to refuse.
    The takeover that counts is the current session's: a session that failed starts again under the same epoch
    (and a restored root counts epochs from 0 again), so an earlier "took over" of that epoch is not it."""
    during = events[since:]
    ended = any(e.get("event") in LEADERSHIP_ENDS and _of(e, epoch) for e in during)
    session = max((i for i, e in enumerate(events) if e.get("event") == "leading" and _of(e, epoch)), default=-1)
    ticked = any(e.get("event") == "took over" and _of(e, epoch) for e in events[session + 1 :])
    kept = epoch >= 0 and not ended and leads_now and ticked
    said = any(e.get("event") == GUARD_SAYS for e in during)
    return kept, said


def _of(event: dict[str, Any], epoch: int) -> bool:
    return int(event.get("epoch", -1)) == epoch


# -- ZooKeeper --------------------------------------------------------------------------------------------------
def zk_node(topo: Topology, rng: random.Random) -> FaultEvent:
    zk = topo.ensemble()
    sid = zk.leader_sid() if rng.random() < 0.5 else None
    sid = sid or rng.choice([m.sid for m in zk.members])
    down = rng.uniform(3.0, 8.0)
    event = FaultEvent("zk-node", f"kill -9 of ZooKeeper node {sid} for {down:.1f}s", time.time())
    zk.kill(sid)
    time.sleep(down)
    zk.start_node(sid)
    zk.wait_serving(timeout=90)
    return event


def zk_quorum(topo: Topology, rng: random.Random) -> FaultEvent:
    zk = topo.ensemble()
    if len(zk.members) < 3:
        return _zk_all_down(topo, rng)
    sids = rng.sample([m.sid for m in zk.members], 2)
    down = rng.uniform(5.0, 12.0)
    event = FaultEvent("zk-quorum", f"ZooKeeper nodes {sids} stopped for {down:.1f}s", time.time())
    for sid in sids:
        zk.stop(sid)
    time.sleep(down)
    for sid in sids:
        zk.start_node(sid)
    zk.wait_serving(timeout=90)
    return event


def _zk_all_down(topo: Topology, rng: random.Random) -> FaultEvent:
    zk, down = topo.ensemble(), rng.uniform(5.0, 12.0)
    event = FaultEvent("zk-quorum", f"the only ZooKeeper node stopped for {down:.1f}s", time.time())
    zk.stop(1)
    time.sleep(down)
    zk.start_node(1)
    zk.wait_serving(timeout=90)
    return event


def zk_lost(topo: Topology, rng: random.Random) -> FaultEvent:
    """Every ZooKeeper node loses its data at once (killed, data dir emptied, started again) while the replicas run;
    after a few seconds on the empty ensemble the operator's restore (docs/backups.md): stop the replicas, empty
    the root they recreated, import the leader's newest periodic snapshot, start the replicas."""
    snapshot = wait_for(topo.newest_snapshot, 30)
    if not snapshot:
        return FaultEvent("zk-lost", "no snapshot to restore from yet (nothing injected)", time.time())
    zk, empty = topo.ensemble(), rng.uniform(3.0, 6.0)
    event = FaultEvent("zk-lost", f"every ZooKeeper node's data lost, {empty:.1f}s on the empty ensemble", time.time())
    lost = time.time()
    for node in zk.members:
        zk.kill(node.sid)
        shutil.rmtree(node.home / "data" / "version-2", ignore_errors=True)
    for node in zk.members:
        zk.start_node(node.sid)
    zk.wait_serving(timeout=90)
    time.sleep(empty)
    topo.stop_replicas()
    empty_root(zk.connect_string, topo.root)
    kept = topo.workdir / "restored-from"  # the run's snapshots are pruned: the ones restores used are evidence
    kept.mkdir(exist_ok=True)
    shutil.copy2(snapshot, kept / snapshot.name)
    topo.rs().cli("snapshot", "import", str(snapshot))
    restored = time.time()
    for rid in topo.ids:
        topo.start_replica(rid)
    event.restore = read_snapshot(snapshot, lost, restored)
    event.detail += f", then restored from a snapshot {lost - event.restore.taken:.1f}s old"
    return event


# -- disks ------------------------------------------------------------------------------------------------------
def disk(topo: Topology, rng: random.Random) -> FaultEvent:
    """The process backend's state dir or a ZooKeeper node's data dir (half the time the ZooKeeper leader's) fills up
    or turns read-only for 4-10 s; a ZooKeeper node that stops over it is started again afterwards."""
    how, down = rng.choice(("full", "read-only")), rng.uniform(4.0, 10.0)
    zk = topo.ensemble()
    if topo.backend == "process" and rng.random() < 0.5:
        path, what, sid = topo.state_dir, "the process state dir", None
        users = tuple(r.process.pid for r in topo.rs().replicas.values() if r.alive())  # their own mounts (netns)
    else:
        sid = (zk.leader_sid() if rng.random() < 0.5 else None) or rng.choice([m.sid for m in zk.members])
        path, what, users = zk.node(sid).home / "data", f"ZooKeeper node {sid}'s data dir", ()
    event = FaultEvent("disk", f"{what} {how} for {down:.1f}s", time.time())
    with chaos_disk.full(path) if how == "full" else chaos_disk.read_only(path, users if topo.netns else ()):
        time.sleep(down)
    if sid is not None:
        event.detail += _after_disk_incident(zk, sid)
    return event


def _after_disk_incident(zk: ZkCluster, sid: int) -> str:
    """The operator's round after a disk alert on a ZooKeeper node: restart it; if it cannot load its data (a log
    cut short by ENOSPC stays unreadable, and the node fails the next time it must reload, e.g. when its leader
    goes), empty its data and start it again, so it copies the ensemble's from the leader (ZooKeeper's remedy for a
    corrupt member). The quorum's other members hold every committed write, so nothing acknowledged is lost."""
    was_running = zk.node(sid).running
    zk.kill(sid)
    zk.start_node(sid)
    try:
        zk.wait_serving(timeout=90)
    except ZkHarnessError:
        zk.kill(sid)
        shutil.rmtree(zk.node(sid).home / "data" / "version-2", ignore_errors=True)
        zk.start_node(sid)
        zk.wait_serving(timeout=90)
        return f" (node {sid} could not load its data afterwards: emptied, resynced from the leader)"
    return f" (node {sid} restarted after it{'' if was_running else '; it had stopped over it'})"


# -- backend ----------------------------------------------------------------------------------------------------
def backend(topo: Topology, rng: random.Random) -> FaultEvent:
    down = rng.uniform(3.0, 8.0)
    if topo.backend == "docker":
        event = FaultEvent("backend", f"dockerd stopped for {down:.1f}s", time.time())
        topo.dockerd().stop()  # the run's own daemon (chaos_topology), never the machine's shared one
        time.sleep(down)
        topo.dockerd().start()
        return event
    if topo.backend == "nomad":
        # a second's registers are in flight some 5-15 ms past it (the stop itself adds a few ms). On SIGINT the
        # agent stops its server before its HTTP server, so a call in flight still gets an answer (an error if too
        # late); kill -9 cuts it off
        offset, crash = rng.uniform(0.0, 0.015), rng.random() < 0.5
        how = "kill -9" if crash else "SIGINT"
        event = FaultEvent("backend", f"Nomad agent stopped ({how} {offset * 1e3:.0f} ms past a second)", time.time())
        took = topo.restart_nomad(down, offset, crash)
        event.detail += f" for {down:.1f}s, back with its state {took:.1f}s after its start"
        return event
    # the process backend's whole record is its state dir: immutable (chattr +i), every new launch dir is refused
    # (EPERM, even for root) while lookups and the running launches' own files still work
    event = FaultEvent("backend", f"process state dir immutable for {down:.1f}s", time.time())
    target = str(topo.state_dir)
    subprocess.run(["chattr", "+i", target], check=True, capture_output=True)
    try:
        time.sleep(down)
    finally:
        subprocess.run(["chattr", "-i", target], check=True, capture_output=True)
    return event


def slow(topo: Topology, rng: random.Random) -> FaultEvent:
    """A backend that answers late: its daemon is frozen (SIGSTOP), then thawed. Calls in flight hang; a pause past
    the adapter's timeout turns submits ambiguous (the launcher must look them up, the lookup may hang too)."""
    pause = rng.uniform(2.0, 12.0)
    if topo.backend == "docker":
        pid, what = topo.dockerd().pid(), "dockerd"
    elif topo.backend == "nomad":
        pid, what = int((topo.nomad_agent().workdir / "nomad.pid").read_text()), "the Nomad agent"
    else:
        return FaultEvent("slow", "no daemon to slow on the process backend (nothing injected)", time.time())
    event = FaultEvent("slow", f"{what} frozen (SIGSTOP) for {pause:.1f}s", time.time())
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(pause)
    finally:
        os.kill(pid, signal.SIGCONT)
    return event


INJECTORS: dict[str, Callable[[Topology, random.Random], FaultEvent]] = {
    "kill": kill,
    "stop": stop,
    "partition": partition,
    "zk-node": zk_node,
    "zk-quorum": zk_quorum,
    "backend": backend,
    "slow": slow,
    "rolling": rolling,
    "clock": clock,
    "disk": disk,
    "zk-lost": zk_lost,
}


class FaultPlan:
    """Faults in shuffled rounds: every kind comes up once per round, so short runs still cover them all."""

    def __init__(self, kinds: list[str], rng: random.Random) -> None:
        self._kinds, self._rng, self._queue = kinds, rng, list[str]()

    def next(self) -> str:
        if not self._queue:
            self._queue = list(self._kinds)
            self._rng.shuffle(self._queue)
        return self._queue.pop(0)

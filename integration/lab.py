"""The lab's integration run: the Vagrantfile's three VMs, booted and provisioned by `scripts/lab.sh`, checked the way
the fault suite checks its cluster.

    scripts/lab.sh test [--after 60] [--json FILE] [--workdir DIR]

It waits until the replicas elect one leader, applies a job file (from cf2, with the `cronframework apply` the VMs
carry) whose two jobs launch on cf1's Docker and on cf1's Nomad agent, waits for launches on both, then destroys the
leader's VM (`virsh destroy`: no shutdown, no goodbye) and waits for another VM's replica to take over and launch on
both again. The leader is never cf1 when it is destroyed: cf1 carries the backends, and losing them with the leader
would be another experiment (a backend outage); when cf1 leads, its scheduler is restarted first, so that another
replica takes over. The survivors' schedulers are then stopped and the evidence read from outside: the backends' own
records (Docker's containers, Nomad's jobs), the tasks' own output file on cf1, the replicas' journals (followed live
from the start) and the store's history in the VMs' ZooKeeper ensemble. The verdict is the fault suite's
(integration/chaos_invariants.py), every invariant it judges: at most once, every instant accounted for, fenced,
`forbid` held, every launch followed to its result (the run waits for the results first), on time; plus the lab's
own: launches on both backends before and after the takeover, every launch's task run, and a successor on another
VM. Exit status 0 on PASS, 1 on FAIL, 2 when the lab was not there to test.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import docker
import yaml
from docker import errors as docker_errors
from requests import RequestException

from backends.nomad_spec import meta_key
from cronframework.naming import parse_launch_name
from cronframework.spec.model import Retry
from cronframework.store.zookeeper.store import ZooKeeperStore
from integration import chaos_evidence as evidence_mod
from integration import chaos_invariants as inv
from integration.chaos import MAX_CLOCK_SKEW
from integration.chaos_faults import FaultEvent, LeaderLoss
from integration.chaos_report import Report
from integration.chaos_topology import LEADERSHIP_ENDS, TEST_IMAGE, task_line
from integration.lab_nodes import (
    ADDRESSES,
    BACKEND_NODE,
    SCHEDULER_UNIT,
    Incarnation,
    LabError,
    Node,
    as_replicas,
    discover,
)
from integration.replicas import wait_for

ZK_ROOT = "/cronframework"  # scripts/provision.sh's scheduler.yaml; also the launches' cluster label
TASKS = "/var/lib/cronframework/tasks"  # on cf1: the tasks' shared output (docker: the one mount allowed)
OUT_FILE = "task-output.txt"
# backend -> schedule, interleaved; every 20 s: an emulated cf1 keeps up with that, not with every second
SCHEDULES = {"docker": "*/20 * * * * *", "nomad": "10-59/20 * * * * *"}
VENV_PYTHON = "/opt/cronframework/venv/bin/python"
CONFIG = "/etc/cronframework/scheduler.yaml"
END_MARGIN = 20.0  # seconds: an emulated guest may still be launching instants this recent
START_MARGIN = 12.0  # seconds after the apply: the leader sees a new job at its next poll and starts after that
# the fenced check compares times from four clocks (three guests', and this machine's for the destruction): they
# must agree well within its in-flight allowance (0.5 s)
MAX_SKEW = 0.1
CLOCK_CLOSE = 0.02
TASKS_SETTLE = 300.0  # seconds the tasks get to catch up with their launches once the schedulers have stopped
# seconds the replicas get, once the jobs are paused, to record the result of every launch up to the window's end:
# an emulated Nomad client starts a task up to ~20 s late, and may be a minute or more behind after the takeover
RESULTS_SETTLE = 300.0
# what each guest must show of itself: its kernel, systemd done booting, its private network as the Vagrantfile sets it
GUEST = """echo "kernel $(uname -r) system $(systemctl is-system-running || true) eth1 $(ip -4 -o addr show eth1 | \
awk '{print $4}')" """
FORBID = "docker"  # the backend whose job is `concurrency: forbid`, its runs spanned (Nomad's start too late)


def say(message: str) -> None:
    print(f"[lab {datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


@dataclass
class Run:
    nodes: list[Node]
    workdir: Path
    after: float
    timings: dict[str, float] = field(default_factory=dict)  # phase -> seconds
    skew: dict[str, tuple[float, float]] = field(default_factory=dict)
    guests: dict[str, str] = field(default_factory=dict)  # node -> what GUEST printed there
    fault: FaultEvent | None = None
    applied_at: float = 0.0
    successor: str = ""
    checks: list[inv.Violation] = field(default_factory=list)
    # the run's own job names (`apply --prune` removes an earlier run's from a kept lab, and its launches are not
    # this run's evidence)
    tag: str = field(default_factory=lambda: f"{datetime.now(UTC):%H%M%S}")

    @property
    def jobs(self) -> dict[str, str]:
        """job -> backend"""
        return {f"lab-{self.tag}-{backend}": backend for backend in SCHEDULES}

    def schedules(self) -> dict[str, str]:
        return {job: SCHEDULES[backend] for job, backend in self.jobs.items()}

    def ours(self, name: str) -> bool:
        return parse_launch_name(name).job in self.jobs

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def alive(self) -> list[Node]:
        return [n for n in self.nodes if n.destroyed_at is None]

    def timed(self, phase: str, started: float) -> None:
        self.timings[phase] = time.monotonic() - started
        say(f"{phase}: {self.timings[phase]:.0f}s")


# -- leadership, from the journals ------------------------------------------------------------------------------
def leading(incarnation: Incarnation) -> int | None:
    """The epoch it leads, if its latest leadership event says it does."""
    roles = [e for e in incarnation.events if e.get("event") in ("leading", *LEADERSHIP_ENDS)]
    return int(roles[-1]["epoch"]) if roles and roles[-1]["event"] == "leading" else None


def current_leader(nodes: list[Node]) -> tuple[str, int] | None:
    """(node, epoch) of the newest epoch some live node's latest scheduler process says it leads."""
    best: tuple[str, int] | None = None
    for node in nodes:
        found = node.incarnations()
        epoch = leading(found[-1]) if found else None
        if epoch is not None and (best is None or epoch > best[1]):
            best = (node.name, epoch)
    return best


def wait_leader(run: Run, timeout: float, other_than: str | None = None) -> tuple[str, int]:
    found = wait_for(lambda: (lead := current_leader(run.alive())) and lead[0] != other_than and lead, timeout, 1.0)
    if not found:
        raise LabError(f"no leader{' other than ' + other_than if other_than else ''} within {timeout:.0f}s")
    return found  # type: ignore[no-any-return]


def took_over(run: Run, node: str, epoch: int) -> bool:
    return any(
        e.get("event") == "took over" and int(e.get("epoch", -1)) == epoch
        for i in run.node(node).incarnations()
        for e in i.events
    )


# -- ZooKeeper and the backends, from inside the namespace -------------------------------------------------------
def zk_hosts() -> str:
    return ",".join(f"{address}:2181" for address in ADDRESSES.values())


def zk_mode(address: str) -> str:
    """ZooKeeper's `srvr` answer's Mode (leader / follower), or '' when it does not serve."""
    try:
        with socket.create_connection((address, 2181), timeout=5) as sock:
            sock.sendall(b"srvr")
            reply = b"".join(iter(lambda: sock.recv(4096), b""))
    except OSError:
        return ""
    return next((line.split(":", 1)[1].strip() for line in reply.decode().splitlines() if line.startswith("Mode")), "")


def nomad_api(method: str, path: str) -> Any:
    request = urllib.request.Request(f"http://{ADDRESSES[BACKEND_NODE]}:4646{path}", method=method)
    with urllib.request.urlopen(request, timeout=30) as reply:
        return json.loads(reply.read() or b"null")


def launches() -> dict[str, list[evidence_mod.BackendLaunch]]:
    return {
        "docker": evidence_mod.docker_launches(ZK_ROOT),
        "nomad": evidence_mod.nomad_launches(nomad_api, ZK_ROOT),
    }


def created_since(after: float) -> dict[str, int]:
    """How many launches each backend created after `after` (wall time), from one listing call each: the full
    evidence readers ask about every launch by itself, too slow to poll an emulated guest with."""
    client = docker.from_env(timeout=60)
    try:
        containers = client.api.containers(all=True, filters={"label": f"cronframework.cluster={ZK_ROOT}"})
    finally:
        client.close()
    cluster = meta_key("cronframework.cluster")
    jobs = [j for j in nomad_api("GET", "/v1/jobs?meta=true") or [] if (j.get("Meta") or {}).get(cluster) == ZK_ROOT]
    return {
        "docker": sum(int(c["Created"]) > after for c in containers),
        "nomad": sum(int(j["SubmitTime"]) / 1e9 > after for j in jobs),
    }


def wait_launches(after: float, timeout: float) -> dict[str, int]:
    """Wait until both backends hold two launches created after `after` (wall time); how many each holds."""

    def counted() -> dict[str, int] | None:
        try:
            found = created_since(after)
        except (OSError, ValueError, docker_errors.DockerException, RequestException):
            return None  # a daemon too busy to answer in time: ask again
        return found if all(n >= 2 for n in found.values()) else None

    found = wait_for(counted, timeout, 3.0)
    if not found:
        raise LabError(f"fewer than two launches on Docker and on Nomad within {timeout:.0f}s")
    return found  # type: ignore[no-any-return]


# -- the run ----------------------------------------------------------------------------------------------------
def job_file(run: Run) -> str:
    common = {
        "catchup": {"policy": "all", "window": "10m", "max": 1000},
        "retention": {"count": 100000, "age": "30d"},
        "retries": {"attempts": 5, "backoff": "500ms", "max_backoff": "2s"},
    }
    docker_line = task_line(f"/out/{OUT_FILE}", "", spanned=FORBID == "docker")
    nomad_line = task_line(f"{TASKS}/{OUT_FILE}", "", spanned=FORBID == "nomad")
    tasks = {
        "docker": {"image": TEST_IMAGE, "command": ["/bin/sh", "-c", docker_line],
                   "mounts": [{"source": TASKS, "target": "/out", "read_only": False}]},
        "nomad": {"command": ["/bin/sh", "-c", nomad_line]},
    }  # fmt: skip
    jobs = {
        job: {"schedule": SCHEDULES[backend], "backend": backend, **common, "task": tasks[backend]}
        | ({"concurrency": "forbid"} if backend == FORBID else {})
        for job, backend in run.jobs.items()
    }
    return yaml.safe_dump({"job": jobs})


def ready(run: Run) -> None:
    started = time.monotonic()
    for node in run.nodes:  # a lab kept from an earlier run has them stopped (settle stops them)
        node.run(f"sudo systemctl start {SCHEDULER_UNIT}")
    modes = wait_for(lambda: (m := [zk_mode(a) for a in ADDRESSES.values()]) and all(m) and m, 600, 2.0)
    if not modes:
        raise LabError("the ZooKeeper ensemble does not serve on all three nodes")
    leader, epoch = wait_leader(run, 600)
    run.timed("ensemble serving and a leader elected", started)
    say(f"ZooKeeper: {', '.join(modes)}; scheduler leader {leader} (epoch {epoch})")
    for node in run.nodes:
        run.guests[node.name] = node.run(GUEST).strip()
        before, _ = node.clock_skew()
        run.skew[node.name] = skew, error = sync_clock(node)
        say(f"clock of {node.name}: {before * 1000:+.0f} ms, set: {skew * 1000:+.1f} ms (+-{error * 1000:.1f} ms)")
        if abs(skew) > MAX_SKEW:
            raise LabError(f"{node.name}'s clock is {skew:+.3f}s off this machine's even after setting it")


def sync_clock(node: Node) -> tuple[float, float]:
    """Set the guest's clock until it reads within CLOCK_CLOSE of this machine's, making up for the trip there
    (and for a busy guest's slow answers) by what the last setting missed; the final (skew, uncertainty)."""
    ahead = 0.0
    for _ in range(4):
        node.set_clock(ahead)
        skew, error = node.clock_skew()
        if abs(skew) <= CLOCK_CLOSE:
            break
        ahead -= skew
    return skew, error


def apply_jobs(run: Run) -> None:
    started = time.monotonic()
    applier = run.node("cf2")
    applier.run("cat > /tmp/lab-jobs.yaml", stdin=job_file(run))
    applier.run(
        f"cd /cronframework && sudo {VENV_PYTHON} -m cronframework apply /tmp/lab-jobs.yaml --prune --config {CONFIG}"
    )
    run.applied_at = time.time()
    run.timed("apply (cronframework apply on cf2)", started)
    started = time.monotonic()
    counts = wait_launches(run.applied_at, 300)
    run.timed("first launches on Docker and Nomad", started)
    say(f"launches so far: {counts}")


def leader_off_backend_node(run: Run) -> tuple[str, int]:
    """The current leader, made to be another node than cf1 (cf1's scheduler restarted when it leads)."""
    leader, epoch = wait_leader(run, 120)
    if leader == BACKEND_NODE:
        say(f"{BACKEND_NODE} leads (epoch {epoch}); restarting its scheduler so that another node takes over")
        run.node(BACKEND_NODE).run(f"sudo systemctl restart {SCHEDULER_UNIT}")
        leader, epoch = wait_leader(run, 120, other_than=BACKEND_NODE)
    wait_for(lambda: took_over(run, leader, epoch), 120, 1.0)
    return leader, epoch


def destroy_leader(run: Run) -> None:
    leader, epoch = leader_off_backend_node(run)
    say(f"virsh destroy of {leader}'s VM (leader, epoch {epoch})")
    node = run.node(leader)
    at = node.destroy()
    run.fault = FaultEvent("destroy", f"virsh destroy of the leader's VM {leader}", at)
    run.fault.losses.append(LeaderLoss(at, epoch, leader))
    started = time.monotonic()
    run.successor, new_epoch = wait_leader(run, 180, other_than=leader)
    run.timed(f"takeover by {run.successor} (epoch {new_epoch})", started)
    run.fault.ended = time.time()
    started = time.monotonic()
    try:
        counts = wait_launches(at, 300)
        say(f"launches since the destruction: {counts}")
    except LabError as exc:
        run.checks.append(inv.Violation("lab", f"after the takeover: {exc}"))
    run.timed("launches again on Docker and Nomad", started)
    node.stop_following()


def settle(run: Run) -> datetime:
    """Let the successor run, then wait until it is current and has recorded the result of every launch in the
    checked window; returns the window's end."""
    time.sleep(run.after)
    store = ZooKeeperStore.connect(zk_hosts(), ZK_ROOT, session_timeout=10)
    try:
        wait_for(lambda: all(_current(store, job) for job in run.jobs), 120, 2.0)
        checked_until = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=END_MARGIN)
        # paused: no new launches while the results come in, and schedulers started again on a kept lab do not
        # catch up on them (the next run's apply --prune deletes them)
        pause = " && ".join(f"sudo {VENV_PYTHON} -m cronframework pause {job} --config {CONFIG}" for job in run.jobs)
        run.node(run.successor).run(f"cd /cronframework && {pause}")
        wait_results(run, store, checked_window(run, checked_until))
    finally:
        store.close()
    for node in run.alive():
        node.run(f"sudo systemctl stop {SCHEDULER_UNIT}")
    time.sleep(3)  # the last journal lines on their way
    for node in run.alive():
        node.stop_following()
    return checked_until


def wait_results(run: Run, store: ZooKeeperStore, window: inv.Window) -> None:
    """Wait (RESULTS_SETTLE at most) until every launch in `window` has its result recorded; the ones still
    without fail the run, each by name (the `followed` invariant) and together here, with how long they had."""

    def unfollowed() -> list[inv.Violation]:
        ev = evidence_mod.Evidence()
        ev.history = {job: store.history(job, limit=1_000_000) for job in run.jobs}
        return inv.followed(ev, policies(run), window)[1]

    started = time.monotonic()
    wait_for(lambda: not unfollowed(), RESULTS_SETTLE, 5.0)
    run.timed("results of the window's launches recorded", started)
    missing = unfollowed()
    if missing:
        detail = f"{len(missing)} launch(es) up to {window.end:%H:%M:%S} still without a result {RESULTS_SETTLE:.0f}s"
        run.checks.append(inv.Violation("lab", detail + " after the jobs were paused"))


def policies(run: Run) -> dict[str, tuple[str, Retry | None]]:
    """The jobs' schedules and retry policies for `followed`: no `retry:`, one attempt per instant."""
    return {job: (schedule, None) for job, schedule in run.schedules().items()}


def _current(store: ZooKeeperStore, job: str) -> bool:
    newest = store.history(job, limit=1)
    return bool(newest) and not newest[0].open and (datetime.now(UTC) - newest[0].scheduled).total_seconds() < 15


# -- evidence and verdict ---------------------------------------------------------------------------------------
def gather(run: Run, checked_until: datetime) -> evidence_mod.Evidence:
    ev = evidence_mod.Evidence()
    found = launches()
    ev.launches = [launch for launch in found["docker"] + found["nomad"] if run.ours(launch.name)]
    lines = evidence_mod.task_lines(task_output(run, ev.launches, checked_until))
    ev.task_lines = [line for line in lines if run.ours(line[0])]
    ev.spans = [span for span in evidence_mod.task_spans(run.workdir / OUT_FILE) if run.ours(span.launch)]
    incarnations = [i for node in run.nodes for i in node.incarnations()]
    replicas = as_replicas(incarnations, run.workdir)
    ev.intervals = evidence_mod.intervals(replicas, deaths(run, incarnations, [r.log_path for r in replicas]))
    ev.recorded = evidence_mod.recorded_events(replicas)
    store = ZooKeeperStore.connect(zk_hosts(), ZK_ROOT, session_timeout=10)
    try:
        ev.history = {job: store.history(job, limit=1_000_000) for job in run.jobs}
    finally:
        store.close()
    return ev


def task_output(run: Run, launched: list[evidence_mod.BackendLaunch], until: datetime) -> Path:
    """The tasks' output file, once every launch up to `until` has run: an emulated Nomad client starts each
    allocation's executor slowly and may be a minute or more behind the launches."""
    wanted = {launch.name for launch in launched if parse_launch_name(launch.name).scheduled <= until}
    out = run.workdir / OUT_FILE

    def complete() -> bool:
        out.write_text(run.node(BACKEND_NODE).run(f"cat {TASKS}/{OUT_FILE}"))
        return wanted <= {line[0] for line in evidence_mod.task_lines(out)}

    started = time.monotonic()
    wait_for(complete, TASKS_SETTLE, 5.0)
    run.timed("tasks caught up with their launches", started)
    return out


def deaths(run: Run, incarnations: list[Incarnation], logs: list[Path]) -> dict[Path, float]:
    """A destroyed node's last scheduler process died with its VM, at the destruction (keyed by its log)."""
    out = {}
    for node in run.nodes:
        mine = [log for log, i in zip(logs, incarnations, strict=True) if i.node == node.name]
        if node.destroyed_at is not None and mine:
            out[mine[-1]] = node.destroyed_at
    return out


def checked_window(run: Run, checked_until: datetime) -> inv.Window:
    """From the apply (plus the first poll) to the end margin."""
    start = datetime.fromtimestamp(run.applied_at + START_MARGIN, UTC).replace(microsecond=0)
    return inv.Window(start, checked_until)


def check(run: Run, ev: evidence_mod.Evidence, checked_until: datetime) -> Report:
    """The fault suite's invariants (integration/chaos.py's `check`) over the checked window: every launch in it
    followed to its result too, the run having waited for them (settle)."""
    report = Report(seed=0, backend="docker+nomad", duration=run.after, network="lab")
    report.faults = [run.fault] if run.fault else []
    window = checked_window(run, checked_until)
    accounted, outcomes = inv.accounted(ev, run.schedules(), window)
    report.zombie_windows, zombies = inv.zombie_calls(ev, report.faults)
    report.forbid_runs, overlaps = inv.no_overlap(ev, [job for job, b in run.jobs.items() if b == FORBID])
    report.attempts_followed, unfollowed = inv.followed(ev, policies(run), window)
    _, restores = inv.restore_bounded(ev, report.faults)
    report.violations += [
        *inv.at_most_once(ev), *accounted, *inv.agreement(ev, window), *inv.fenced(ev), *zombies, *overlaps,
        *unfollowed,
        *inv.not_early(ev, MAX_CLOCK_SKEW), *inv.clock_guarded(ev, report.faults, MAX_CLOCK_SKEW), *restores,
    ]  # fmt: skip
    report.violations += run.checks + lab_checks(run, ev, window)
    report.count(ev, outcomes, len(accounted))
    report.notes.append(f"checked window {window.start:%H:%M:%S}..{window.end:%H:%M:%S} UTC")
    report.notes += [f"{k}: {v:.0f}s" for k, v in run.timings.items()]
    report.notes += [f"clock of {n}: {s * 1000:+.1f} ms (+-{e * 1000:.1f})" for n, (s, e) in run.skew.items()]
    report.notes += [f"{n}: {guest}" for n, guest in run.guests.items()]
    return report


def lab_checks(run: Run, ev: evidence_mod.Evidence, window: inv.Window) -> list[inv.Violation]:
    """What the lab must show besides the invariants: both backends used on either side of the destruction, a
    successor on another VM, and every launch's task run (its own line in the output), up to the window's end."""
    out = []
    lost = run.fault.losses[0] if run.fault and run.fault.losses else None
    if lost is None or not run.successor or run.successor == lost.replica:
        out.append(inv.Violation("lab", "no other VM took over from the destroyed leader"))
    for job, backend in run.jobs.items():
        mine = [launch for launch in ev.launches if parse_launch_name(launch.name).job == job]
        if lost is not None and not any(launch.submitted_at < lost.at for launch in mine):
            out.append(inv.Violation("lab", f"no {backend} launch before the leader's VM was destroyed"))
        if lost is not None and not any(launch.submitted_at > lost.at for launch in mine):
            out.append(inv.Violation("lab", f"no {backend} launch after the leader's VM was destroyed"))
    ran = {line[0] for line in ev.task_lines}
    for launch in ev.launches:
        scheduled = parse_launch_name(launch.name).scheduled
        if scheduled <= window.end and launch.name not in ran:
            out.append(inv.Violation("lab", f"{launch.name}: launched, but its task never ran (no line of its own)"))
    return out


def render(run: Run, report: Report) -> str:
    lead = [
        f"lab run: {len(run.nodes)} VMs ({', '.join(n.name for n in run.nodes)}), backends Docker and Nomad on "
        f"{BACKEND_NODE}, {run.after:.0f}s after the takeover",
        "network: the lab's namespace (libvirt's isolated networks: management 192.168.121.0/24, lab 192.168.56.0/24)",
    ]
    return "\n".join(lead + report.render().splitlines()[2:])


# -- entry point ------------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m integration.lab", description=__doc__.split("\n\n")[0])
    parser.add_argument("--after", type=float, default=120.0, help="seconds to run on after the takeover")
    parser.add_argument("--json", type=Path, help="also write the report as JSON here")
    parser.add_argument("--workdir", type=Path, help="keep the journals, task output and ssh state here")
    return parser.parse_args(argv)


def execute(run: Run) -> Report:
    for node in run.nodes:
        node.connect()
        node.follow_journal()
    try:
        ready(run)
        apply_jobs(run)
        destroy_leader(run)
        checked_until = settle(run)
        return check(run, gather(run, checked_until), checked_until)
    finally:
        for node in run.nodes:
            node.stop_following()
            node.disconnect()


def main(argv: list[str] | None = None, *, execute_run: Callable[[Run], Report] = execute) -> int:
    opts = parse_args(argv)
    workdir = opts.workdir or Path(tempfile.mkdtemp(prefix="cf-lab-"))
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ["DOCKER_HOST"] = f"tcp://{ADDRESSES[BACKEND_NODE]}:2375"  # the evidence readers' docker.from_env
    try:
        run = Run(discover(workdir), workdir, opts.after)
        report = execute_run(run)
    except LabError as exc:
        say(f"the lab could not be tested: {exc} (journals and output in {workdir})")
        return 2
    print(render(run, report))
    if opts.json:
        opts.json.write_text(report.dumps())
    say(f"journals, task output and replica logs in {workdir}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())

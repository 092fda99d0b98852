"""What the invariant checker reads, all from outside the replicas: the backend's own record of launches, the
tasks' own output, the replicas' JSON logs (leadership intervals, launch outcomes) and the store's history."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from backends.nomad_spec import meta_key
from cronframework.records import LaunchRecord
from integration.chaos_clock import ClockShift, real_times
from integration.chaos_restore import ERA, era
from integration.chaos_topology import LEADERSHIP_ENDS
from integration.replicas import ReplicaProcess, wait_for


@dataclass(frozen=True)
class BackendLaunch:
    """One launch as the backend recorded it: when it was created and by which leader epoch."""

    name: str
    submitted_at: float  # wall time
    epoch: int | None
    submitter_pid: int | None = None
    ended: bool | None = None  # whether its run had ended when the results were judged (None: the backend cannot say)
    # Docker: when its task first started (inf: never), which may come long after its creation when the creator died
    # between the two calls; None: the backend starts a launch as it records it
    started_at: float | None = None

    @property
    def ran_from(self) -> float:
        """When its task started: before then, the launch was not yet made."""
        return self.submitted_at if self.started_at is None else self.started_at


@dataclass
class Interval:
    """One epoch of leadership as the replica's log shows it; `end` is when it certainly no longer led."""

    epoch: int
    replica: str
    pid: int
    start: float
    end: float
    took_over: float | None = None  # the leader's "took over" event: promotion (recovery + catch-up) done


@dataclass(frozen=True)
class Span:
    """One run of a task as its own start and end lines tell it (seconds on the host's uptime clock)."""

    launch: str
    start: float
    end: float | None  # None: no end line (killed on the way, or still running)


@dataclass
class Evidence:
    launches: list[BackendLaunch] = field(default_factory=list)
    task_lines: list[tuple[str, int, int]] = field(default_factory=list)  # (launch, epoch, attempt)
    spans: list[Span] = field(default_factory=list)  # the runs of `forbid` jobs
    intervals: list[Interval] = field(default_factory=list)
    recorded: list[dict[str, Any]] = field(default_factory=list)  # "launch outcome recorded" log events
    history: dict[str, list[LaunchRecord]] = field(default_factory=dict)


def ts(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(str(event["ts"])).timestamp()


# -- backend ----------------------------------------------------------------------------------------------------
def process_launches(state_dir: Path) -> list[BackendLaunch]:
    """Every claimed launch dir; the claim names the submitting process, spec.json the leader's epoch. The time is the
    claim's mtime, set by the kernel: the `claimed_at` inside is the submitting replica's own clock, which a clock
    fault may have set off."""
    out = []
    for claim in sorted(state_dir.glob("*/claim")) if state_dir.exists() else []:
        body = _json(claim) or {}
        env = (_json(claim.parent / "spec.json") or {}).get("env", {})
        epoch = env.get("CRONFRAMEWORK_LEADER_EPOCH")
        at = claim.stat().st_mtime
        out.append(BackendLaunch(claim.parent.name, at, int(epoch) if epoch else None, body.get("scheduler_pid")))
    return out


def docker_launches(cluster: str, base_url: str | None = None) -> list[BackendLaunch]:
    """Every container labelled with this cluster, whatever its state (docker SDK, all=True), on the daemon at
    `base_url` (default: $DOCKER_HOST, else the local socket)."""
    import docker  # only the docker run needs it

    client = docker.DockerClient(base_url=base_url, timeout=60) if base_url else docker.from_env(timeout=60)
    try:
        found = client.containers.list(all=True, filters={"label": f"cronframework.cluster={cluster}"})
        return [_container(c.attrs) for c in found]
    finally:
        client.close()


def _container(attrs: dict[str, Any]) -> BackendLaunch:
    labels = attrs.get("Config", {}).get("Labels") or {}
    env = dict(item.split("=", 1) for item in attrs.get("Config", {}).get("Env") or [] if "=" in item)
    created = _docker_time(str(attrs["Created"]))
    started = str((attrs.get("State") or {}).get("StartedAt") or "")
    epoch = env.get("CRONFRAMEWORK_LEADER_EPOCH")
    name = labels.get("cronframework.launch") or str(attrs.get("Name", "")).lstrip("/")
    never = not started or started.startswith("0001-")  # Docker's zero time: created, never started
    return BackendLaunch(
        name, created, int(epoch) if epoch else None, started_at=math.inf if never else _docker_time(started)
    )


def _docker_time(text: str) -> float:
    """Docker's RFC 3339 times carry nanoseconds; Python reads microseconds."""
    return datetime.fromisoformat(text[:26].rstrip("Z") + "+00:00").timestamp()


def nomad_launches(api: Callable[[str, str], Any], cluster: str) -> list[BackendLaunch]:
    """Every Nomad job whose meta names this cluster. The agent keeps its state across the suite's restarts, so
    its jobs at the end are the whole record; a job's ID is its launch name, registered create-only."""
    cluster_key = meta_key("cronframework.cluster")
    out = []
    for stub in api("GET", "/v1/jobs?meta=true") or []:
        if (stub.get("Meta") or {}).get(cluster_key) == cluster:
            job = api("GET", f"/v1/job/{stub['ID']}") or {}
            at, ended = int(stub["SubmitTime"]) / 1e9, stub.get("Status") == "dead"
            out.append(BackendLaunch(str(stub["ID"]), at, _nomad_epoch(job), ended=ended))
    return out


def nomad_ended(api: Callable[[str, str], Any], cluster: str) -> set[str]:
    """The launches of this cluster whose Nomad job is dead now: one listing, taken when the results are judged."""
    cluster_key = meta_key("cronframework.cluster")
    return {
        str(stub["ID"])
        for stub in api("GET", "/v1/jobs?meta=true") or []
        if (stub.get("Meta") or {}).get(cluster_key) == cluster and stub.get("Status") == "dead"
    }


def ended_as_judged(launches: list[BackendLaunch], ended_then: set[str] | None) -> list[BackendLaunch]:
    """Each launch's `ended` as of the judging (`ended_then`, None: as read). A backend far behind runs and ends
    launches after the replicas are stopped (the 60-minute Nomad run: its client, restarted with thousands of
    allocations to restore, ended ~200 tasks a minute once the replicas were gone, against 6-76 a minute before),
    and nobody is left to record those results."""
    if ended_then is None:
        return launches
    return [replace(x, ended=False) if x.ended and x.name not in ended_then else x for x in launches]


def _nomad_epoch(job: dict[str, Any]) -> int | None:
    env = ((job.get("TaskGroups") or [{}])[0].get("Tasks") or [{}])[0].get("Env") or {}
    epoch = env.get("CRONFRAMEWORK_LEADER_EPOCH")
    return int(epoch) if epoch else None


def task_lines(path: Path) -> list[tuple[str, int, int]]:
    out = []
    for line in path.read_text(errors="replace").splitlines() if path.exists() else []:
        parts = line.split()
        if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
            out.append((parts[0], int(parts[1]), int(parts[2])))
    return out


def task_spans(path: Path) -> list[Span]:
    """Runs from `<launch> start|end <seconds>` lines; a launch's n-th end closes its n-th start."""
    starts: dict[str, list[float]] = {}
    ends: dict[str, list[float]] = {}
    for line in path.read_text(errors="replace").splitlines() if path.exists() else []:
        parts = line.split()
        if len(parts) == 3 and parts[1] in ("start", "end") and _number(parts[2]):
            (starts if parts[1] == "start" else ends).setdefault(parts[0], []).append(float(parts[2]))
    out = []
    for launch, began in starts.items():
        ended = ends.get(launch, [])
        out += [Span(launch, at, ended[i] if i < len(ended) else None) for i, at in enumerate(began)]
    return out


def settled_spans(path: Path, longest_run: float) -> list[Span]:
    """The spans once every run that may still be going (started less than `longest_run` ago) has written its end:
    tasks outlive the replicas, and a run cut short by the end of the suite would look unended. An older run
    without an end was killed on the way."""

    def settled() -> tuple[list[Span]] | None:
        spans, now = task_spans(path), host_uptime()
        return (spans,) if all(s.end is not None or now - s.start > longest_run for s in spans) else None

    done = wait_for(settled, longest_run, interval=0.5)
    return done[0] if done else task_spans(path)


def host_uptime() -> float:
    """The clock the tasks' span lines use."""
    return float(Path("/proc/uptime").read_text().split()[0])


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# -- replicas' logs ---------------------------------------------------------------------------------------------
# a failed session ends launching too; if the fence survived, the next "leading" of the same epoch reopens it
ENDS = LEADERSHIP_ENDS


# A call the leader sent just before it was killed is created by the backend just after: the harness's death time
# is when it sent the signal. Such a call still precedes any successor, which the cap below keeps enforcing.
IN_FLIGHT = 0.5


def intervals(
    incarnations: Iterable[ReplicaProcess],
    deaths: dict[Path, float],
    shifts: dict[Path, list[ClockShift]] | None = None,
    cuts: list[float] | None = None,
) -> list[Interval]:
    """Leadership per epoch, each ended by the earliest of: the log saying so, the process's death (plus the
    in-flight allowance), or a newer epoch's start (a successor was elected, so the old session was gone by then,
    whatever the old process thought). A log written under a clock fault is read in real time (`shifts`); an epoch
    that began after a loss of the ensemble's data (`cuts`) is counted in its era (chaos_restore.ERA). Deaths and
    shifts are keyed by each incarnation's log (`ReplicaProcess.log_path`): over an hour of restarts the kernel
    hands a dead replica's pid to a later one."""
    found: list[Interval] = []
    died: dict[int, float] = {}  # id(interval) -> its incarnation's death
    for replica in incarnations:
        death = deaths.get(replica.log_path, float("inf"))
        mine = _from_log(replica, death, (shifts or {}).get(replica.log_path, []), cuts or [])
        died.update((id(interval), death) for interval in mine)
        found += mine
    found.sort(key=lambda i: i.start)
    for interval in found:
        later = [i.start for i in found if i.epoch > interval.epoch]
        at_death = interval.end == died[id(interval)]
        interval.end = min([interval.end + (IN_FLIGHT if at_death else 0.0), *later])
    return found


def _from_log(replica: ReplicaProcess, death: float, shifts: list[ClockShift], cuts: list[float]) -> list[Interval]:
    out: dict[int, Interval] = {}
    current: Interval | None = None
    events = replica.events()
    for event, at in zip(events, real_times([ts(e) if "ts" in e else 0.0 for e in events], shifts), strict=True):
        name = event.get("event")
        if name == "leading" and (current is None or current.epoch != int(event["epoch"]) + ERA * era(at, cuts)):
            epoch = int(event["epoch"]) + ERA * era(at, cuts)
            current = out.setdefault(epoch, Interval(epoch, replica.replica_id, replica.process.pid, at, death))
            current.end = death  # the same epoch again: the session (so the fence) never lapsed in between
        elif name == "took over" and current is not None and current.took_over is None:
            current.took_over = at
        elif name in ENDS and current is not None:
            current.end = min(current.end, at)
            current = None
    return list(out.values())


def recorded_events(incarnations: Iterable[ReplicaProcess], cuts: list[float] | None = None) -> list[dict[str, Any]]:
    out = []
    for replica in incarnations:
        for event in replica.events():
            if event.get("event") == "launch outcome recorded":
                epoch = int(event["epoch"]) + ERA * era(ts(event), cuts or [])
                out.append({**event, "epoch": epoch, "replica": replica.replica_id, "pid": replica.process.pid})
    return out


def in_eras(launches: list[BackendLaunch], cuts: list[float]) -> list[BackendLaunch]:
    """Each launch's epoch counted in the era it was made in (chaos_restore)."""
    return [
        replace(launch, epoch=launch.epoch + ERA * era(launch.submitted_at, cuts))
        if launch.epoch is not None
        else launch
        for launch in launches
    ]

"""The fault-injection suite: a real ZooKeeper ensemble and scheduler replicas under random faults, then an
invariant check from the outside (backend record, task output, replica logs, the store's history).

    python -m integration.chaos --duration 180 --seed 7 --faults kill,stop,zk-node,zk-quorum,backend,rolling,clock \\
        [--backend process|docker|nomad] [--network auto|netns|gate] [--replicas 3] [--zk-nodes 3] \\
        [--json report.json] [--keep]

Prints the report; exits 1 on any violation, 2 when the harness itself could not run. Same seed, same fault
sequence (the timing of a real system under load still varies). See docs/integration.md.
"""

from __future__ import annotations

import argparse
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cronframework.abc import ReadStore
from cronframework.cluster.config import SchedulerSection
from cronframework.errors import StateStoreError
from cronframework.schedule.expression import parse_schedule
from cronframework.spec.model import Retry
from cronframework.store.zookeeper.store import ZooKeeperStore
from integration import chaos_evidence as evidence_mod
from integration import chaos_invariants as inv
from integration import chaos_netns
from integration.chaos_faults import FAULTS, FaultEvent, FaultPlan, inject
from integration.chaos_report import Report
from integration.chaos_restore import ERA, era
from integration.chaos_topology import JOBS, Topology, jobs_for
from integration.replicas import wait_for
from integration.zk import ZkHarnessError

DEFAULT_FAULTS = "kill,stop,partition,zk-node,zk-quorum,backend,slow,rolling,clock"
END_MARGIN = 3.0  # instants this close to the end may legitimately still be in flight
RESULTS_WAIT = 600.0  # at most this long for the judged launches' results, while their count keeps falling
RESULT_MARGIN = 12.0  # and this close, their results and retries (a takeover's first lookups come a second late)
FORBID_JOBS = [name for name, job in JOBS.items() if job[2].get("concurrency") == "forbid"]
MAX_CLOCK_SKEW = SchedulerSection().max_clock_skew.total_seconds()  # the replicas' clock guard bound (the default)
LONGEST_RUN = 10.0  # seconds: longer than any spanned task runs (`slow`: 7 s)
TRIGGER_EVERY = (6.0, 12.0)  # seconds between two rounds of triggers of a forbid job
# how long before one of its instants a trigger is sent: mostly inside the replicas' last poll interval (0.2 s) before
# it, so that the leader reads the trigger in the tick that launches the instant (0.2-0.8 s with the default 1 s)
TRIGGER_LEAD = (0.02, 0.3)


@dataclass(frozen=True)
class Options:
    duration: float = 180.0
    seed: int = 7
    faults: tuple[str, ...] = tuple(DEFAULT_FAULTS.split(","))
    backend: str = "process"
    network: str = "auto"  # netns | gate | auto (netns where the machine allows it)
    replicas: int = 3
    zk_nodes: int = 3
    session_timeout: float = 4.0
    gap: tuple[float, float] = (2.0, 6.0)  # quiet seconds between faults
    workdir: Path | None = None
    jobs: int = len(JOBS)  # beyond the four second-level jobs: minutely ones spread with `?`


def say(message: str) -> None:
    print(f"[chaos {datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def run(opts: Options) -> tuple[Report, Path]:
    """The whole run; the topology is torn down before returning. ZkHarnessError: ZooKeeper or backend down."""
    network, why_not = choose_network(opts.network)
    workdir = opts.workdir or Path(tempfile.mkdtemp(prefix="cf-chaos-"))
    topo = Topology(workdir, opts.backend, opts.replicas, opts.zk_nodes, opts.session_timeout, network)
    topo.faketime = "clock" in opts.faults
    topo.small_disks = "disk" in opts.faults
    topo.snapshots = "zk-lost" in opts.faults
    topo.jobs = jobs_for(opts.jobs)
    report = Report(opts.seed, opts.backend, opts.duration, network)
    if why_not:
        report.notes.append(f"network namespaces unusable here ({why_not}): partitions through the userland gate")
    try:
        say(f"starting {opts.zk_nodes} ZooKeeper node(s), {opts.replicas} replicas, backend {opts.backend}, "
            f"network {network}")  # fmt: skip
        topo.start()
        topo.save_manifest()
        try:
            with triggering(topo, random.Random(opts.seed + 1), report):
                fault_phase(topo, random.Random(opts.seed), opts, report.faults)
            checked_until = settle(topo)
        except AssertionError as exc:  # the cluster did not recover (no leader): that is a finding, not a crash
            say(f"liveness failure: {exc}")
            report.violations.append(inv.Violation("liveness", str(exc).splitlines()[0]))
            checked_until = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=END_MARGIN)
        topo.stop_replicas()
        started = time.monotonic()
        ev = gather(topo, report.faults)
        gathered = time.monotonic()
        check(report, ev, checked_until, topo.jobs)
        report.notes.append(
            f"{len(topo.jobs)} jobs; evidence read in {gathered - started:.1f}s, "
            f"checked in {time.monotonic() - gathered:.1f}s"
        )
        if topo.backend == "docker":
            topo.remove_containers()
    finally:
        topo.close()
        if topo.zk is not None:
            topo.zk.destroy()
    return report, workdir


def choose_network(wanted: str) -> tuple[str, str | None]:
    """The network mode to run and, when auto fell back to the gate, why. Asked for netns and unusable: the harness
    cannot run (ZkHarnessError), never a quiet fallback."""
    if wanted == "gate":
        return "gate", None
    why = chaos_netns.unsupported()
    if why is None:
        return "netns", None
    if wanted == "netns":
        raise ZkHarnessError(f"network namespaces are unusable on this machine: {why}")
    return "gate", why


def fault_phase(topo: Topology, rng: random.Random, opts: Options, done: list[FaultEvent]) -> None:
    """Inject faults into `done` until the duration is spent (a fault that fails to recover raises)."""
    plan = FaultPlan(list(opts.faults), rng)
    deadline = time.monotonic() + opts.duration
    while True:
        time.sleep(min(rng.uniform(*opts.gap), max(0.0, deadline - time.monotonic())))
        if deadline - time.monotonic() < 5:
            return
        kind = plan.next()
        say(f"fault {len(done) + 1}: {kind}")
        done.append(inject(kind, topo, rng))
        say(f"  {done[-1].detail} ({done[-1].ended - done[-1].started:.1f}s)")


@contextmanager
def triggering(topo: Topology, rng: random.Random, report: Report) -> Iterator[None]:
    """While the faults run, `trigger` a forbid job now and then just before one of its instants: the leader reads
    such a trigger in the tick that launches the instant, where only one of the two may start. Each round
    triggers before two instants in a row: `slow` runs longer than its period, so one of them is one it launches
    (before the other, its previous run still runs and both are refused)."""
    stop = threading.Event()
    sender = threading.Thread(target=send_triggers, args=(topo, rng, stop, report), name="triggers", daemon=True)
    sender.start()
    try:
        yield
    finally:
        stop.set()
        sender.join()


def send_triggers(topo: Topology, rng: random.Random, stop: threading.Event, report: Report) -> None:
    job = FORBID_JOBS[0]
    schedule = parse_schedule(JOBS[job][0], job=job)
    store = topo.rs().store()
    try:
        while not stop.wait(rng.uniform(*TRIGGER_EVERY)):
            first = schedule.next_after(datetime.now(UTC) + timedelta(seconds=1))
            for instant in (first, schedule.next_after(first)):
                send_at = instant - timedelta(seconds=rng.uniform(*TRIGGER_LEAD))
                if stop.wait(max(0.0, (send_at - datetime.now(UTC)).total_seconds())):
                    return
                report.triggers += _trigger(store, job)
    finally:
        store.close()


def _trigger(store: ZooKeeperStore, job: str) -> int:
    """1 if sent; 0 while ZooKeeper is down (a fault)."""
    try:
        store.request_trigger(job, force=False, now=datetime.now(UTC).replace(microsecond=0))
    except StateStoreError:
        return 0
    return 1


def settle(topo: Topology) -> datetime:
    """Everything back up, a leader current with the schedule; returns the end of the checked window."""
    topo.ensure_all_running()
    topo.leader(timeout=90)
    store = topo.rs().store()
    try:
        if not wait_for(lambda: _caught_up(store), 90, interval=0.5):
            say("the leader did not catch up within 90s; checking up to now anyway")
        checked_until = datetime.now(UTC).replace(microsecond=0)
        judged = checked_until - timedelta(seconds=END_MARGIN + RESULT_MARGIN)
        if topo.backend == "nomad":  # what has ended by now owes its result by the end of the wait below
            try:
                topo.ended_when_judged = evidence_mod.nomad_ended(topo.nomad_agent().api, topo.cluster_label)
            except OSError as exc:  # urllib's errors included: judged by what the agent says at the end instead
                say(f"the Nomad agent did not list its dead jobs ({exc}); judging by its state at the end")
        if not settled(lambda: awaited(store, judged), patience=60, limit=RESULTS_WAIT):
            say("launches the results check judges still wait for a result or a retry; checking anyway")
    finally:
        store.close()
    time.sleep(END_MARGIN + 2)
    return checked_until - timedelta(seconds=END_MARGIN)


def _caught_up(store: ZooKeeperStore) -> bool:
    newest = store.history("beat", limit=1)
    return bool(newest) and not newest[0].open and (datetime.now(UTC) - newest[0].scheduled).total_seconds() < 3


def settled(
    pending: Callable[[], int],
    *,
    patience: float,
    limit: float,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> bool:
    """Whether `pending` reached 0: waited for while it keeps falling (by `patience` seconds at a time), up to
    `limit`. After a long backend outage the leader records a backlog of results for minutes (the 60-minute Docker
    run: some 1,500 after dockerd's last restart, still being written 60 s into the wait), and judging it then
    reported results on their way as never recorded; a count that stops falling is judged after `patience`."""
    start = progress = monotonic()
    best = pending()
    while best > 0:
        now = monotonic()
        if now - progress > patience or now - start > limit:
            return False
        sleep(0.5)
        count = pending()
        if count < best:
            best, progress = count, monotonic()
    return True


def awaited(store: ReadStore, until: datetime) -> int:
    """How many launches scheduled before `until` are open or still wait for their result or a due retry."""
    pending = [*store.open_launches(), *store.following_launches()]
    return sum(record.scheduled < until for record in pending)


def followed_up(store: ReadStore, until: datetime) -> bool:
    """No launch scheduled before `until` is open or still waits for its result or a due retry. A leader that has
    caught up with the schedule may still be following a restore's replayed instants attempt by attempt: each
    retry's result comes seconds after the one before it, and judging then reported retries still on their way as
    lost. One that never comes keeps this False until the caller gives up, and is then reported."""
    return awaited(store, until) == 0


def gather(topo: Topology, faults: list[FaultEvent]) -> evidence_mod.Evidence:
    """Read everything after the replicas stopped; ZooKeeper is still up for the history. Epochs restart in a
    restored root: each is counted in its era (chaos_restore), the faults' own included."""
    cuts = sorted(f.restore.lost for f in faults if f.restore is not None)
    in_eras(faults, cuts)
    ev = evidence_mod.Evidence()
    if topo.backend == "docker":
        ev.launches = evidence_mod.docker_launches(topo.cluster_label, topo.dockerd().address)
    elif topo.backend == "nomad":
        ev.launches = evidence_mod.ended_as_judged(
            evidence_mod.nomad_launches(topo.nomad_agent().api, topo.cluster_label), topo.ended_when_judged
        )
    else:
        ev.launches = evidence_mod.process_launches(topo.state_dir)
    ev.spans = evidence_mod.settled_spans(topo.out_file, LONGEST_RUN)  # first: runs still going may end
    ev.task_lines = evidence_mod.task_lines(topo.out_file)
    # a launch counts in the era of the root that began it: until an import finished only the old cluster could
    # launch (the root the replicas remade on the empty ensemble holds no jobs), and a submit whose record was begun
    # just before the loss reaches the backend just after it
    ev.launches = evidence_mod.in_eras(ev.launches, sorted(f.restore.restored for f in faults if f.restore))
    ev.intervals = evidence_mod.intervals(topo.rs().incarnations, topo.deaths, topo.shifts, cuts)
    ev.recorded = evidence_mod.recorded_events(topo.rs().incarnations, cuts)
    topo.ensure_zk()  # a run cut short by a liveness failure may have left nodes down
    store = topo.rs().store()
    try:
        ev.history = {job: store.history(job, limit=1_000_000) for job in topo.jobs}
    finally:
        store.close()
    return ev


def in_eras(faults: list[FaultEvent], cuts: list[float]) -> None:
    """The epochs a fault names, counted in the era of the moment it names them (see gather)."""
    if not cuts:
        return
    for fault in faults:
        fault.losses = [replace(x, epoch=x.epoch + ERA * era(x.at, cuts)) for x in fault.losses]
        if fault.zombie is not None:
            replica, epoch, resumed = fault.zombie
            fault.zombie = (replica, epoch + ERA * era(resumed, cuts), resumed)
        if fault.clock is not None:
            fault.clock = replace(fault.clock, epoch=fault.clock.epoch + ERA * era(fault.clock.applied, cuts))


def check(
    report: Report, ev: evidence_mod.Evidence, checked_until: datetime, jobs: dict[str, tuple[str, str, Any]]
) -> None:
    promoted = [i.took_over for i in ev.intervals if i.took_over is not None]
    if not promoted:
        report.violations.append(inv.Violation("accounted", "no leader ever finished its promotion"))
        return
    window = inv.Window(datetime.fromtimestamp(min(promoted), UTC), checked_until)
    accounted, outcomes = inv.accounted(ev, {name: job[0] for name, job in jobs.items()}, window)
    report.zombie_windows, zombies = inv.zombie_calls(ev, report.faults)
    report.forbid_runs, overlaps = inv.no_overlap(ev, FORBID_JOBS)
    results_window = inv.Window(window.start, window.end - timedelta(seconds=RESULT_MARGIN))
    report.attempts_followed, unfollowed = inv.followed(ev, retry_policies(jobs), results_window)
    repeated, restores = inv.restore_bounded(ev, report.faults)
    report.violations += [
        *inv.at_most_once(ev), *accounted, *inv.agreement(ev, window), *inv.fenced(ev), *zombies, *overlaps,
        *unfollowed,
        *inv.not_early(ev, MAX_CLOCK_SKEW), *inv.clock_guarded(ev, report.faults, MAX_CLOCK_SKEW), *restores,
    ]  # fmt: skip
    if any(f.restore for f in report.faults):
        report.notes.append(f"restores decided {repeated} instant(s) from before the loss again (found by name)")
    waiting = inv.unended(ev, results_window)
    if waiting:
        report.notes.append(f"{waiting} launched attempt(s) the backend had not ended when judged: owed no result yet")
    unjudged = sum(s.end is None for s in ev.spans)
    if unjudged:
        report.notes.append(f"{unjudged} run(s) of forbid jobs wrote no end line (killed on the way): not judged")
    report.count(ev, outcomes, len(accounted))
    report.notes.append(f"checked window {window.start:%H:%M:%S}..{window.end:%H:%M:%S} UTC")


def retry_policies(jobs: dict[str, tuple[str, str, Any]]) -> dict[str, tuple[str, Retry | None]]:
    """Every job's schedule and retry policy, for the followed-to-the-end invariant."""
    out: dict[str, tuple[str, Retry | None]] = {}
    for name, (schedule, _, extra) in jobs.items():
        retry = extra.get("retry")
        out[name] = (schedule, Retry.model_validate(retry) if retry else None)
    return out


def parse_args(argv: list[str] | None) -> tuple[Options, argparse.Namespace]:
    parser = argparse.ArgumentParser(prog="python -m integration.chaos", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=180.0, help="seconds of fault injection")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--faults", default=DEFAULT_FAULTS, help=f"comma-separated, from: {','.join(FAULTS)}")
    parser.add_argument("--backend", choices=("process", "docker", "nomad"), default="process")
    parser.add_argument(
        "--network", choices=("auto", "netns", "gate"), default="auto",
        help="netns: each replica in its own network namespace (root, ip, nft); gate: all on loopback, userland "
        "partitions; auto: netns where the machine allows it",
    )  # fmt: skip
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--zk-nodes", type=int, default=3, choices=(1, 3))
    parser.add_argument("--session-timeout", type=float, default=4.0)
    parser.add_argument(
        "--gap", type=float, nargs=2, default=(2.0, 6.0), metavar=("MIN", "MAX"), help="quiet seconds between faults"
    )
    parser.add_argument(
        "--jobs", type=int, default=len(JOBS),
        help="jobs in all: the four second-level ones, then minutely ones each at a second of its own (`?`)",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write the report as JSON here")
    parser.add_argument("--workdir", type=Path, help="keep logs and launch dirs here (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir even when the run passes")
    args = parser.parse_args(argv)
    kinds = tuple(k.strip() for k in args.faults.split(",") if k.strip())
    unknown = [k for k in kinds if k not in FAULTS]
    if unknown or not kinds:
        parser.error(f"unknown fault(s) {unknown}; choose from {','.join(FAULTS)}")
    if args.replicas < 2:
        parser.error("--replicas must be at least 2 (leader faults need a successor)")
    if args.jobs < len(JOBS):
        parser.error(f"--jobs must be at least {len(JOBS)} (the second-level jobs)")
    opts = Options(args.duration, args.seed, kinds, args.backend, args.network, args.replicas, args.zk_nodes,
                   args.session_timeout, tuple(args.gap), args.workdir, args.jobs)  # fmt: skip
    return opts, args


class Stopped(BaseException):
    """SIGTERM or SIGHUP: the run ends, and its topology is torn down by `run`'s own `finally` (a BaseException,
    like KeyboardInterrupt, so that no `except Exception` on the way swallows it)."""


def _stop_on(signum: int, _frame: object) -> None:
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)  # a second signal must not cut the teardown short
    raise Stopped(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    opts, args = parse_args(argv)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _stop_on)
    try:
        report, workdir = run(opts)
    except ZkHarnessError as exc:
        print(f"error: the harness could not run: {exc}", file=sys.stderr)
        return 2
    except Stopped as exc:
        print(f"stopped by {exc}: the run's ZooKeeper, replicas, backend and namespaces are gone", flush=True)
        return 128 + signal.Signals[str(exc)].value
    print(report.render())
    if args.json:
        args.json.write_text(report.dumps())
    if report.ok and opts.workdir is None and not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"logs, launch dirs and task output kept in {workdir}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())

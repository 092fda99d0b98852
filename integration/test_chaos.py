"""The fault suite in CI: short fixed-seed chaos runs (process, Docker and Nomad backends) must inject several kinds
of fault and break no invariant; the invariant checker itself must catch each kind of violation it claims to catch
(fed hand-made evidence). The runs use network namespaces (CI runs as root): a machine without them fails here."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import random
import select
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import TypeVar, cast

import pytest

from backends.nomad import create
from cronframework.launch import LaunchState, SubmitOutcome
from cronframework.naming import LaunchIdentity, launch_name
from cronframework.records import Begin, JobState, LaunchRecord, Outcome, TaskResult
from cronframework.spec.model import Retry
from cronframework.testing import FakeFence, MemoryStore
from integration import chaos_faults, chaos_netns
from integration import chaos_invariants as inv
from integration.chaos import Options, choose_network, followed_up, run, settled
from integration.chaos_evidence import (
    BackendLaunch,
    Evidence,
    Interval,
    Span,
    ended_as_judged,
    intervals,
    settled_spans,
    task_lines,
    task_spans,
)
from integration.chaos_faults import FaultEvent, LeaderLoss
from integration.chaos_netns import NetnsHost, namespaces, sweep
from integration.chaos_report import Report, percentile
from integration.chaos_topology import Topology, task_line
from integration.docker_daemon import (
    DockerDaemonError,
    PrivateDockerDaemon,
    SharedDaemonWatch,
    run_script,
    start_daemon,
)
from integration.nomad_agent import NomadAgent, NomadAgentError, leftovers
from integration.replicas import ReplicaProcess, wait_for
from integration.zk import ZkHarnessError
from tests.backend_conformance import conformance_launch, finished, unique_job
from tests.backend_conformance import wait_for as wait_for_status

T0 = datetime(2026, 1, 5, 12, 0, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def short_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Report]:
    faults = ("kill", "stop", "partition", "zk-node", "zk-quorum", "backend", "slow", "rolling")  # clock: its own run
    workdir = tmp_path_factory.mktemp("chaos")
    opts = Options(duration=80, seed=11, faults=faults, network="netns", gap=(1.0, 2.5), workdir=workdir)
    yield chaos_run(opts, "(ZooKeeper ensemble, namespaces)")


def chaos_run(opts: Options, what: str) -> Report:
    """The run's report, printed; a topology that cannot start fails the test, naming `what` it needed."""
    try:
        report, _ = run(opts)
    except ZkHarnessError as exc:
        pytest.fail(f"cannot start the chaos topology {what}: {exc}", pytrace=False)
    print(report.render())
    return report


def test_short_chaos_run_breaks_no_invariant(short_run: Report) -> None:
    assert short_run.violations == [], short_run.render()
    assert short_run.ok


def test_short_chaos_run_injected_faults_of_several_kinds(short_run: Report) -> None:
    kinds = short_run.fault_counts()
    assert len(kinds) >= 4, kinds
    assert {"kill", "stop", "partition"} & set(kinds), kinds  # at least one leader fault
    assert {"zk-node", "zk-quorum"} & set(kinds), kinds


def test_short_chaos_run_partitions_in_the_kernel(short_run: Report) -> None:
    """Seed 11 deals a partition first: the leader's network namespace, not a userland gate, was cut."""
    assert short_run.network == "netns"
    partitions = [f for f in short_run.faults if f.kind == "partition"]
    assert partitions and all("network namespace cut off" in f.detail for f in partitions), short_run.render()
    assert "network: netns" in short_run.render()


def test_short_chaos_run_checked_real_launches_and_takeovers(short_run: Report) -> None:
    assert short_run.instants_checked >= 100, short_run.render()
    assert short_run.launches_checked >= 60
    assert short_run.task_runs >= 0.9 * short_run.launches_checked, "the launched tasks really ran"
    assert len(short_run.takeover) >= 2, "leaders were taken away and successors measured"
    figures = short_run.figures()
    assert figures["takeover_max_s"] is not None and figures["takeover_max_s"] < 30
    assert figures["lag_p50_s"] is not None and figures["lag_p50_s"] < 2.0


# -- the same on the Docker and the Nomad backends ---------------------------------------------------------------
# Four kinds, so one shuffled round (about 45 s) fits in the 60 s and every kind, the backend's own included, comes up.
BACKEND_FAULTS = ("kill", "stop", "zk-node", "backend", "slow")


def _backend_run(backend: str, workdir: Path, faults: tuple[str, ...] = BACKEND_FAULTS) -> Report:
    opts = Options(60, 3, faults, backend, network="netns", gap=(1.0, 2.5), workdir=workdir)
    return chaos_run(opts, f"on the {backend} backend")


@pytest.fixture(scope="module")
def docker_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Report, SharedDaemonWatch]:
    """The run's daemon faults (stopped, frozen) go to a dockerd of its own; the machine's shared daemon, started
    here if it is not up, is watched all along and must never be stopped, frozen or silent."""
    faults = ("kill", "stop", "partition", "zk-node", "backend", "slow")
    try:
        start_daemon()
        watch = SharedDaemonWatch()
    except DockerDaemonError as exc:
        pytest.fail(f"no shared Docker daemon to watch: {exc}", pytrace=False)
    with watch:
        report = _backend_run("docker", tmp_path_factory.mktemp("chaos-docker"), faults)
    return report, watch


@pytest.fixture(scope="module")
def nomad_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Report, Path]:
    workdir = tmp_path_factory.mktemp("chaos-nomad")
    return _backend_run("nomad", workdir), workdir


def _assert_clean_backend_run(report: Report, *, backend_fault: bool = True) -> None:
    assert report.violations == [], report.render()
    kinds = report.fault_counts()
    assert ("backend" in kinds) is backend_fault and len(kinds) >= 3, kinds
    assert report.instants_checked >= 80, report.render()
    assert report.launches_checked >= 50, report.render()
    assert report.task_runs >= 0.9 * report.launches_checked, "the launched tasks really ran"
    assert report.takeover, "a leader was taken away and its successor measured"
    figures = report.figures()
    # a liveness bound, not a timing target (those live in benchmarks/): a successor did take over
    assert figures["takeover_max_s"] is not None and figures["takeover_max_s"] < 30
    assert figures["lag_p50_s"] is not None  # lag was measured; its figures go to docs/reliability.md


def test_docker_chaos_run_breaks_no_invariant_and_leaves_the_shared_dockerd_alone(
    docker_run: tuple[Report, SharedDaemonWatch],
) -> None:
    report, shared = docker_run
    _assert_clean_backend_run(report)
    assert shared.polls >= 60, shared.polls
    firsts = {problem.split(" ", 1)[1]: problem for problem in reversed(shared.problems)}  # each kind, when first
    assert shared.problems == [], f"{len(shared.problems)} problems, first of each kind: {sorted(firsts.values())}"
    try:
        run_script("dockerd.sh", "status", timeout=30)
    except DockerDaemonError as exc:
        pytest.fail(f"the shared Docker daemon was left down by the chaos run: {exc}")


def test_docker_daemon_faults_stop_and_freeze_only_the_runs_own_daemon(tmp_path: Path) -> None:
    """The backend and slow faults by themselves, on a docker topology with its own daemon (seed 31: a 2.1 s freeze,
    a 3.1 s outage): the run's daemon is frozen, then stopped and started again (a new pid, answering), while the
    shared daemon, watched all along, is never stopped, frozen or silent."""
    try:
        start_daemon()
        watch = SharedDaemonWatch(interval=0.2)
    except DockerDaemonError as exc:
        pytest.fail(f"no shared Docker daemon to watch: {exc}", pytrace=False)
    topo = Topology(tmp_path, backend="docker")
    topo.docker = PrivateDockerDaemon(tmp_path / "dockerd")
    try:
        topo.docker.ready()
        before = topo.docker.pid()
        with watch:
            frozen = chaos_faults.slow(topo, random.Random(31))
            stopped = chaos_faults.backend(topo, random.Random(31))
        after = topo.docker.pid()
        topo.docker.client(timeout=10).ping()
    finally:
        topo.docker.close()
    firsts = {problem.split(" ", 1)[1]: problem for problem in reversed(watch.problems)}
    assert watch.problems == [], f"{len(watch.problems)} problems, first of each kind: {sorted(firsts.values())}"
    assert watch.polls >= 15, watch.polls
    assert "frozen (SIGSTOP)" in frozen.detail and "stopped" in stopped.detail, (frozen, stopped)
    assert after != before, "the run's own daemon was stopped and started again"


def test_nomad_chaos_run_breaks_no_invariant_and_leaves_no_agent(nomad_run: tuple[Report, Path]) -> None:
    report, workdir = nomad_run
    _assert_clean_backend_run(report)
    outages = [f.detail for f in report.faults if f.kind == "backend"]
    assert outages and all("back with its state" in d for d in outages), outages
    assert not (workdir / "nomad" / "nomad.pid").exists(), "the Nomad agent was left running"
    assert leftovers(workdir / "nomad") == []


# -- the persistent Nomad agent the chaos runs use ---------------------------------------------------------------
def test_persistent_nomad_agent_keeps_jobs_and_tasks_across_a_crash(tmp_path: Path) -> None:
    """What the chaos suite's backend fault relies on: an agent killed (-9) and started again still has every job,
    so a repeated submit is refused (already existed); a task running through the crash still finishes; new
    launches run; and the last shutdown leaves no process and no mount behind."""
    agent = NomadAgent(tmp_path / "nomad", persistent=True)
    try:
        agent.start()
    except NomadAgentError as exc:
        agent.shutdown()
        pytest.fail(f"cannot start a persistent Nomad agent: {exc}")
    backend = create({"address": agent.address, "timeout": 5})
    done, through, after = (
        conformance_launch(unique_job(name), ["/bin/sh", "-c", command], backend="nomad")
        for name, command in (("done", "true"), ("through", "sleep 4"), ("after", "true"))
    )
    try:
        assert backend.submit(done.name, done) is SubmitOutcome.SUBMITTED
        assert backend.submit(through.name, through) is SubmitOutcome.SUBMITTED
        wait_for_status(lambda: backend.lookup(done.name), lambda s: s is not None and s.state is LaunchState.SUCCEEDED)
        wait_for_status(lambda: backend.lookup(through.name), lambda s: s is not None and s.state.active)
        created = agent.api("GET", f"/v1/job/{done.name}")["CreateIndex"]
        agent.stop(kill=True)
        agent.start()
        assert agent.api("GET", f"/v1/job/{done.name}")["CreateIndex"] == created
        assert backend.submit(done.name, done) is SubmitOutcome.ALREADY_EXISTED
        status = wait_for_status(lambda: backend.lookup(through.name), finished)
        assert status is not None and status.state is LaunchState.SUCCEEDED, status
        assert backend.submit(after.name, after) is SubmitOutcome.SUBMITTED
        status = wait_for_status(lambda: backend.lookup(after.name), finished)
        assert status is not None and status.state is LaunchState.SUCCEEDED, status
    finally:
        backend.close()
        agent.shutdown()
    assert leftovers(tmp_path) == []


# -- a real partition: the namespace a replica runs in, cut and healed -------------------------------------------
T = TypeVar("T")
CLONE_NEWNET = 0x40000000


def _inside(host: NetnsHost, make: Callable[[], T]) -> T:
    """Run `make` on a thread switched into the namespace: a socket it creates lives there for good."""

    def work() -> T:
        libc = ctypes.CDLL(None, use_errno=True)
        with open(f"/run/netns/{host.name}") as ns:
            if libc.setns(ns.fileno(), CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns into {host.name}")
        return make()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(work).result()


def _connect_from(host: NetnsHost, port: int, timeout: float) -> socket.socket:
    sock = _inside(host, socket.socket)
    sock.settimeout(timeout)
    try:
        sock.connect((host.host_addr, port))
    except OSError:
        sock.close()
        raise
    return sock


def _silent(sock: socket.socket, seconds: float) -> bool:
    return not select.select([sock], [], [], seconds)[0]


def _echo_server(bind: str) -> tuple[socket.socket, list[socket.socket], list[bytes]]:
    """Echoes `re:<message>`; keeps its side of every connection and every message it received."""
    server, conns, seen = socket.create_server((bind, 0)), list[socket.socket](), list[bytes]()

    def serve(conn: socket.socket) -> None:
        with contextlib.suppress(OSError), conn:
            while data := conn.recv(1024):
                seen.append(data)
                conn.sendall(b"re:" + data)

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                conns.append(server.accept()[0])
                threading.Thread(target=serve, args=(conns[-1],), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return server, conns, seen


def test_a_process_started_in_a_namespace_is_the_one_signalled() -> None:
    """`ip netns exec` execs: the pid the harness holds is the command's own, inside the namespace."""
    host = NetnsHost.create(uuid.uuid4().hex[:6], "exec")
    proc = subprocess.Popen([*host.command_prefix, "sleep", "30"])
    try:
        assert wait_for(lambda: Path(f"/proc/{proc.pid}/cmdline").read_bytes().startswith(b"sleep\0"), 5)
        assert os.stat(f"/proc/{proc.pid}/ns/net").st_ino == os.stat(f"/run/netns/{host.name}").st_ino
        proc.send_signal(signal.SIGSTOP)
        assert wait_for(lambda: Path(f"/proc/{proc.pid}/stat").read_text().split()[2] == "T", 5)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(5) == -signal.SIGKILL
    finally:
        proc.kill()
        proc.wait(5)
        host.close()


def test_a_cut_namespace_is_silent_both_ways_until_healed_and_close_leaves_nothing() -> None:
    host = NetnsHost.create(uuid.uuid4().hex[:6], "cut")
    server, conns, seen = _echo_server(host.host_addr)
    spared, _, _ = _echo_server(host.host_addr)
    port, spared_port = server.getsockname()[1], spared.getsockname()[1]
    try:
        established = _connect_from(host, port, timeout=5)
        established.sendall(b"one")
        assert established.recv(1024) == b"re:one"
        host.cut(spare_ports=[spared_port])
        with pytest.raises(TimeoutError):  # no refusal, no reset: the SYN is dropped
            _connect_from(host, port, timeout=1.5)
        established.sendall(b"two")  # out: never reaches the server
        conns[0].sendall(b"push")  # in: never reaches the client
        assert _silent(established, 1.5) and seen == [b"one"]
        with _connect_from(host, spared_port, timeout=5) as backend:  # the spared port still answers
            backend.sendall(b"spared")
            assert backend.recv(1024) == b"re:spared"
        host.heal()
        with _connect_from(host, port, timeout=5) as fresh:
            fresh.sendall(b"three")
            assert fresh.recv(1024) == b"re:three"
        # delayed, not lost: TCP retransmits what the cut held back once the path is back (a zombie's hazard)
        established.settimeout(20)
        got = b""
        while not (b"push" in got and b"re:two" in got):
            got += established.recv(1024)
        established.close()
    finally:
        host.close()
        server.close()
        spared.close()
    assert host.name not in namespaces()
    assert subprocess.run(["ip", "link", "show", host.host_if], capture_output=True).returncode != 0
    host.close()  # idempotent


def test_sweep_deletes_only_namespaces_of_harnesses_that_are_gone() -> None:
    finished = subprocess.Popen(["true"])
    finished.wait()
    run = uuid.uuid4().hex[:6]
    stale, live = f"cfchaos-{finished.pid}-{run}-r1", f"cfchaos-{os.getpid()}-{run}-r2"
    for name in (stale, live):
        subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        swept = sweep()
        assert stale in swept and live not in swept
        assert live in namespaces() and stale not in namespaces()
    finally:
        for name in (stale, live):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


def test_netns_asked_for_but_unusable_fails_and_auto_falls_back_saying_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chaos_netns, "unsupported", lambda: "nft not installed")
    with pytest.raises(ZkHarnessError, match="nft not installed"):
        choose_network("netns")
    assert choose_network("auto") == ("gate", "nft not installed")
    assert choose_network("gate") == ("gate", None)


# -- the checker catches what it claims to ----------------------------------------------------------------------
def _at(seconds: float) -> float:
    return (T0 + timedelta(seconds=seconds)).timestamp()


def _record(job: str, second: int, outcome: Outcome | None, epoch: int = 1, reason: str | None = None) -> LaunchRecord:
    from cronframework.naming import LaunchIdentity

    identity = LaunchIdentity(job, T0 + timedelta(seconds=second))
    begun = LaunchRecord.begin(identity, leader="r1", epoch=epoch, now=identity.scheduled)
    return begun if outcome is None else begun.finish(outcome, now=identity.scheduled, reason=reason)


def _name(second: int) -> str:
    return launch_name("beat", T0 + timedelta(seconds=second))


def _clean() -> Evidence:
    """Ten seconds of an every-second job, all launched by epoch 1 (leading 0..5.5 s) and epoch 2 (5.6 s on)."""
    ev = Evidence()
    ev.intervals = [Interval(1, "r1", 100, _at(0), _at(5.5), _at(0.2)), Interval(2, "r2", 200, _at(5.6), _at(60))]
    ev.history = {"beat": [_record("beat", s, Outcome.SUBMITTED, 1 if s <= 5 else 2) for s in range(1, 11)]}
    ev.launches = [BackendLaunch(_name(s), _at(s + 0.1), 1 if s <= 5 else 2) for s in range(1, 11)]
    ev.task_lines = [(_name(s), 1 if s <= 5 else 2, 1) for s in range(1, 11)]
    return ev


WINDOW = inv.Window(T0, T0 + timedelta(seconds=10))


def _all(ev: Evidence, faults: list[FaultEvent] | None = None) -> list[inv.Violation]:
    accounted, _ = inv.accounted(ev, {"beat": "* * * * * *"}, WINDOW)
    zombies = inv.zombie_calls(ev, faults or [])[1]
    return [*inv.at_most_once(ev), *accounted, *inv.agreement(ev, WINDOW), *inv.fenced(ev), *zombies]


def test_checker_passes_clean_evidence() -> None:
    assert _all(_clean()) == []


def test_checker_catches_a_launch_that_ran_twice() -> None:
    ev = _clean()
    ev.task_lines.append((_name(3), 2, 2))
    ev.recorded = [
        {"launch": _name(3), "epoch": 1, "outcome": "submitted"},
        {"launch": _name(3), "epoch": 2, "outcome": "submitted"},
    ]
    found = _all(ev)
    assert {v.invariant for v in found} == {"at-most-once"}
    assert any("ran 2 times" in v.detail for v in found) and any("epochs [1, 2]" in v.detail for v in found)


def test_checker_catches_a_vanished_an_open_and_an_unexplained_instant() -> None:
    ev = _clean()
    ev.history["beat"] = [r for r in ev.history["beat"] if r.scheduled != T0 + timedelta(seconds=4)]
    ev.history["beat"][0] = _record("beat", 1, None)
    ev.history["beat"][1] = _record("beat", 2, Outcome.SKIPPED, reason=None)
    details = " | ".join(v.detail for v in _all(ev))
    assert "12:00:04: vanished" in details
    assert "12:00:01: still open" in details
    assert "12:00:02: skipped without a reason" in details


def test_checker_accepts_skips_and_failures_that_carry_a_reason() -> None:
    ev = _clean()
    ev.history["beat"][1] = _record("beat", 2, Outcome.SKIPPED, reason="skipped: previous still running")
    ev.launches = [launch for launch in ev.launches if launch.name != _name(2)]
    ev.task_lines = [line for line in ev.task_lines if line[0] != _name(2)]
    assert _all(ev) == []


def test_checker_catches_store_and_backend_disagreeing() -> None:
    ev = _clean()
    ev.launches = [launch for launch in ev.launches if launch.name != _name(7)]
    ev.launches.append(BackendLaunch(launch_name("beat", T0 + timedelta(seconds=30)), _at(30), 2))
    details = " | ".join(v.detail for v in _all(ev))
    assert "recorded submitted but the backend has none" in details
    assert "a backend launch with no record" in details


def test_checker_catches_a_launch_by_a_deposed_leader() -> None:
    ev = _clean()
    late = BackendLaunch(_name(7), _at(7.2), 1)  # epoch 1 ended at 5.5 s; epoch 2 started at 5.6 s
    ev.launches = [launch for launch in ev.launches if launch.name != _name(7)] + [late]
    zombie = FaultEvent("stop", "test", _at(3), losses=[LeaderLoss(_at(3), 1, "r1")], zombie=("r1", 1, _at(7)))
    found = _all(ev, [zombie])
    assert [v.invariant for v in found] == ["fenced", "fenced"]
    assert "led only 12:00:00.000..12:00:05.500" in found[0].detail
    assert "zombie r1 (epoch 1)" in found[1].detail


def test_a_launch_that_names_no_epoch_is_judged_by_the_process_that_claimed_it() -> None:
    """The process backend: a leader killed between a launch's claim and its spec leaves no epoch behind."""
    ev = _clean()
    ev.launches.append(BackendLaunch(launch_name("beat", T0 + timedelta(seconds=30)), _at(5.2), None, 100))
    assert inv.fenced(ev) == []
    ev.launches.append(BackendLaunch(launch_name("beat", T0 + timedelta(seconds=31)), _at(7.0), None, 100))
    [found] = inv.fenced(ev)
    assert "claimed at 12:00:07.000 by pid 100, not leading then" in found.detail


def _slow(second: int, manual: bool = False) -> str:
    return launch_name("slow", T0 + timedelta(seconds=second), manual=manual)


def test_checker_catches_two_runs_of_a_forbid_job_overlapping() -> None:
    """A trigger read in the tick of 12:00:10 started a manual run beside the scheduled one (issue 21's case);
    runs one after the other, another job's runs, and a run with no end line are not flagged."""
    ev = _clean()
    ev.spans = [
        Span(_slow(0), 100.0, 107.0),
        Span(_slow(10), 110.02, 117.0),  # began after 12:00:00's end
        Span(_slow(9, manual=True), 110.01, 117.01),  # beside 12:00:10
        Span(_slow(20), 120.0, None),  # killed: not judged
        Span(_slow(25), 125.0, 126.0),
        Span(_name(3), 110.5, 111.0),  # `beat` is not a forbid job
    ]
    judged, found = inv.no_overlap(ev, ["slow"])
    assert judged == 4
    assert [v.invariant for v in found] == ["forbid"]
    assert _slow(10) in found[0].detail and _slow(9, manual=True) in found[0].detail
    ev.spans = [s for s in ev.spans if s.launch != _slow(9, manual=True)]
    assert inv.no_overlap(ev, ["slow"])[1] == []


def _attempt(second: int, attempt: int, result: TaskResult | None, ended: float = 0.1) -> LaunchRecord:
    identity = LaunchIdentity("flaky", T0 + timedelta(seconds=second), attempt=attempt)
    launched = LaunchRecord.begin(identity, leader="r1", epoch=1, now=identity.scheduled)
    launched = launched.finish(Outcome.SUBMITTED, now=identity.scheduled)
    at = identity.scheduled + timedelta(seconds=ended)
    return launched if result is None else launched.with_result(result, started_at=at, ended_at=at)


FLAKY = {
    "flaky": ("*/5 * * * * *", Retry(attempts=3, backoff=timedelta(milliseconds=500), max_backoff=timedelta(seconds=1)))
}


def test_checker_follows_every_attempt_to_its_result_and_each_due_retry() -> None:
    ev = Evidence()
    ev.history = {
        "flaky": [
            _attempt(0, 1, TaskResult.FAILED),
            _attempt(0, 2, TaskResult.FAILED, ended=1.0),
            _attempt(0, 3, TaskResult.FAILED, ended=2.5),  # the last attempt: nothing more is due
            _attempt(5, 1, TaskResult.FAILED, ended=4.8),  # its retry would start past 12:00:10: none is due
        ]
    }
    window = inv.Window(T0 - timedelta(seconds=1), T0 + timedelta(seconds=6))
    judged, found = inv.followed(ev, FLAKY, window)
    assert (judged, found) == (4, [])
    ev.history["flaky"] = [
        _attempt(0, 1, TaskResult.FAILED),
        _attempt(0, 2, None),  # launched, no result
        _attempt(5, 1, TaskResult.LOST),  # its retry is due and was never recorded
    ]
    _, found = inv.followed(ev, FLAKY, window)
    details = " | ".join(v.detail for v in found)
    assert {v.invariant for v in found} == {"followed"}
    assert "flaky-20260105t120000z-a2: launched, and no result" in details
    assert "flaky-20260105t120005z-a2: a retry due and never recorded" in details


def test_a_launch_the_backend_had_not_ended_when_judged_owes_no_result() -> None:
    """The 60-minute Nomad run: its agent, restarted twice in four minutes, placed 535 of the run's last launches
    not at all before the end (blocked: its node's CPU all claimed by allocations it was slow to run), and ran
    others nine minutes late. The leader can record no result of a run that has not ended; one the backend says
    ended (or a backend that cannot say) is judged as before."""
    ev = Evidence()
    ev.history = {"flaky": [_attempt(0, 1, None), _attempt(5, 1, None)]}
    first, second = (r.name for r in ev.history["flaky"])
    ev.launches = [BackendLaunch(first, _at(0.1), 1, ended=False), BackendLaunch(second, _at(5.1), 1, ended=True)]
    window = inv.Window(T0 - timedelta(seconds=1), T0 + timedelta(seconds=6))
    judged, found = inv.followed(ev, FLAKY, window)
    assert [v.detail.split(":")[0] for v in found] == [second] and judged == 1
    assert inv.unended(ev, window) == 1


def test_a_launch_the_backend_ended_only_after_the_judging_owes_no_result() -> None:
    """The second 60-minute Nomad run (seed 85): 332 launches 'launched, and no result recorded'. Their tasks ran
    and ended at 23:39-23:42, after the harness judged (23:39:54) and stopped the replicas; the evidence, read at
    23:40-23:42, said 'dead'. What ended by the judging still owes its result; what the backend had not ended then
    does not, whatever it says later."""
    ev = Evidence()
    ev.history = {"flaky": [_attempt(0, 1, None), _attempt(5, 1, None)]}
    first, second = (r.name for r in ev.history["flaky"])
    read = [BackendLaunch(first, _at(0.1), 1, ended=True), BackendLaunch(second, _at(5.1), 1, ended=True)]
    window = inv.Window(T0 - timedelta(seconds=1), T0 + timedelta(seconds=6))
    ev.launches = ended_as_judged(read, None)
    assert len(inv.followed(ev, FLAKY, window)[1]) == 2
    ev.launches = ended_as_judged(read, {second})
    judged, found = inv.followed(ev, FLAKY, window)
    assert [v.detail.split(":")[0] for v in found] == [second] and judged == 1
    assert inv.unended(ev, window) == 1


def test_the_run_is_judged_once_the_launches_it_judges_have_their_results_and_due_retries() -> None:
    """The 60-minute process run judged a restore's replayed instants while their retries were still on their way:
    the two it reported lost had been planned four seconds before the replicas stopped."""
    store = MemoryStore()
    waiting = replace(_attempt(0, 2, TaskResult.FAILED), retry_at=T0 + timedelta(seconds=2))  # a3 to come
    later = _attempt(30, 1, None)  # after the judged window: still running is fine
    store.begin(FakeFence(), [Begin(r, JobState("flaky", T0)) for r in (_attempt(0, 1, TaskResult.FAILED), waiting)])
    store.begin(FakeFence(), [Begin(later, JobState("flaky", T0))])
    judged = T0 + timedelta(seconds=20)
    assert not followed_up(store, judged)
    store.records[waiting.name] = replace(waiting, retry_at=None)  # the retry was begun: the run is concluded
    assert followed_up(store, judged)
    assert not followed_up(store, T0 + timedelta(seconds=40))


def test_checker_catches_a_run_inside_a_longer_one() -> None:
    ev = Evidence(spans=[Span(_slow(0), 100.0, 120.0), Span(_slow(5), 105.0, 106.0), Span(_slow(10), 110.0, 111.0)])
    _, found = inv.no_overlap(ev, ["slow"])
    assert len(found) == 2 and all(_slow(0) in v.detail for v in found)


def test_task_spans_pair_each_start_with_its_end_and_ignore_other_lines(tmp_path: Path) -> None:
    out = tmp_path / "task-output.txt"
    text = f"{_slow(0)} 1 1\n{_slow(0)} start 10.5\n{_slow(5)} start 15.0\n{_slow(0)} end 17.5\nnoise start x\n"
    out.write_text(text)
    assert sorted(task_spans(out), key=lambda s: s.start) == [Span(_slow(0), 10.5, 17.5), Span(_slow(5), 15.0, None)]
    assert task_lines(out) == [(_slow(0), 1, 1)]


def test_a_spanned_task_writes_its_start_and_end_around_its_work(tmp_path: Path) -> None:
    out = tmp_path / "task-output.txt"
    env = {
        **os.environ,
        "CRONFRAMEWORK_LAUNCH": _slow(0),
        "CRONFRAMEWORK_LEADER_EPOCH": "3",
        "CRONFRAMEWORK_ATTEMPT": "1",
    }
    subprocess.run(["/bin/sh", "-c", task_line(str(out), "; sleep 0.2", spanned=True)], env=env, check=True)
    [span] = task_spans(out)
    assert span.end is not None and span.end - span.start >= 0.15
    assert task_lines(out) == [(_slow(0), 3, 1)]
    assert settled_spans(out, longest_run=5.0) == [span]


def _incarnation(tmp_path: Path, rid: str, pid: int, leading: list[tuple[int, float]]) -> ReplicaProcess:
    log = tmp_path / f"{rid}.log"
    lines = [{"ts": datetime.fromtimestamp(at, UTC).isoformat(), "event": "leading", "epoch": e} for e, at in leading]
    log.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return ReplicaProcess(rid, cast("subprocess.Popen[bytes]", SimpleNamespace(pid=pid)), log)


@pytest.mark.parametrize(("successor_at", "end"), [(9.0, 5.5), (5.2, 5.2)])
def test_a_killed_leaders_call_in_flight_counts_until_a_successor_leads(
    tmp_path: Path, successor_at: float, end: float
) -> None:
    """Killed at 5 s: a launch the backend created 4 ms later was sent before; one after the successor is not."""
    killed = _incarnation(tmp_path, "r1", 100, [(1, _at(0))])
    heir = _incarnation(tmp_path, "r2", 200, [(2, _at(successor_at))])
    found = intervals([killed, heir], {killed.log_path: _at(5.0)})
    assert found[0].end == pytest.approx(_at(end), abs=1e-3)
    ev = Evidence(intervals=found, launches=[BackendLaunch(_name(5), _at(5.004), 1)])
    assert inv.fenced(ev) == []
    ev.launches.append(BackendLaunch(_name(6), _at(end + 0.01), 1))
    assert [v.detail.split(":")[0] for v in inv.fenced(ev)] == [_name(6)]


def test_a_pid_the_kernel_reuses_does_not_end_a_later_incarnations_leadership(tmp_path: Path) -> None:
    """Over an hour of restarts the kernel hands a dead replica's pid to a later one (pid_max 32768): the 60-minute
    Nomad run reported launches 'by epoch 4000011, which led only 15:53:49..15:43:50', the end being the death of
    the incarnation that had the pid ten minutes before. A death belongs to its incarnation, not to its pid."""
    killed = _incarnation(tmp_path, "r1", 100, [(1, _at(0))])
    later = _incarnation(tmp_path, "r2", 100, [(2, _at(9))])  # the same pid, started after r1 died
    found = {i.epoch: i for i in intervals([killed, later], {killed.log_path: _at(5.0)})}
    assert found[1].end == pytest.approx(_at(5.5), abs=1e-3)
    assert found[2].start <= found[2].end
    ev = Evidence(intervals=list(found.values()), launches=[BackendLaunch(_name(10), _at(10), 2)])
    assert inv.fenced(ev) == []


def test_takeover_and_lag_figures() -> None:
    ev = _clean()
    fault = FaultEvent("kill", "test", _at(5), losses=[LeaderLoss(_at(5.0), 1, "r1")])
    [(kind, up, ready)] = inv.takeovers(ev, [fault])
    assert (kind, ready) == ("kill", None) and up == pytest.approx(0.6)
    assert max(inv.launch_lags(ev)) == pytest.approx(0.1, abs=1e-3)
    assert percentile([3.0, 1.0, 2.0, 10.0], 50) == 2.0 and percentile([], 99) is None


def test_the_results_wait_goes_on_while_the_backlog_falls_and_ends_when_it_stops() -> None:
    """The 60-minute Docker run: 36 launches of its last minute judged 'launched, and no result recorded' while the
    leader was still writing a backlog of results after dockerd's restart (60 s of waiting, then checked anyway)."""
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    falling = iter(range(300, -1, -1))  # one fewer every half second: 150 s to drain
    assert settled(lambda: next(falling), patience=60, limit=600, sleep=sleep, monotonic=lambda: now[0])
    assert now[0] > 60
    now[0] = 0.0
    assert not settled(lambda: 5, patience=60, limit=600, sleep=sleep, monotonic=lambda: now[0])
    assert 60 < now[0] < 62


# -- the harness itself ------------------------------------------------------------------------------------------
def _processes_under(path: Path) -> list[str]:
    """Command lines of the processes that name `path` (its ZooKeeper nodes, replicas, daemons, agents)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if str(path) in cmdline:
                found.append(f"{proc.name}: {cmdline[:160]}")
    return found


def test_a_chaos_run_stopped_with_sigterm_tears_its_topology_down(tmp_path: Path) -> None:
    """An operator stops a long fault run with SIGTERM (or `timeout`): the ensemble, the replicas, the Docker daemon
    and the network namespaces go with it. Python's default SIGTERM ends the process without its `finally`, and a
    stopped 60-minute run left three ZooKeeper JVMs, a dockerd and nine namespaces behind."""
    workdir = tmp_path / "run"
    cmd = [sys.executable, "-m", "integration.chaos", "--duration", "600", "--seed", "3", "--backend", "docker",
           "--network", "netns", "--faults", "kill", "--workdir", str(workdir)]  # fmt: skip
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: (workdir / "manifest.json").exists() or proc.poll() is not None, timeout=180)
        assert proc.poll() is None, f"the run ended before its topology was up: {proc.communicate()[0][-2000:]}"
        ours = [n for n in namespaces() if n.split("-")[1:2] == [str(proc.pid)]]
        assert ours and _processes_under(workdir), "the run's topology is up"
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, out[-2000:]
    assert "stopped by SIGTERM" in out
    assert _processes_under(workdir) == []
    assert [n for n in namespaces() if n.split("-")[1:2] == [str(proc.pid)]] == []

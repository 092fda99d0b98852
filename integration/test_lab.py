"""The lab (scripts/lab.sh, integration/lab.py): the whole takeover run on three VMs, booted for real, and the run's
evidence readers and verdict fed by hand.

The whole run is in the suite (docs/integration.md, "The Vagrant lab", has its last measured run): the box built
from Debian packages by scripts/lab-box.sh (cached by recipe), three VMs booted and provisioned by Vagrant's libvirt
provider inside the lab's own network namespace, the leader's VM destroyed, the fault suite's verdict read from the
run's JSON report, and everything removed again.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cronframework.naming import LaunchIdentity, launch_name
from cronframework.records import LaunchRecord, Outcome, TaskResult
from integration import chaos_invariants as inv
from integration import lab
from integration.chaos_evidence import BackendLaunch, Evidence, Interval, Span
from integration.chaos_faults import FaultEvent, LeaderLoss
from integration.lab import Run, check, lab_checks, leading
from integration.lab_nodes import ADDRESSES, Incarnation, LabError, Node, as_replicas, parse_journal, skew_from
from integration.replicas import wait_for

ROOT = Path(__file__).resolve().parent.parent
LAB = str(ROOT / "scripts" / "lab.sh")
# seconds: host packages and the box built on a fresh machine (~3 min), three emulated VMs booted and provisioned
# (~8 min), the run (~5 min), all of it slower on a loaded machine
RUN_BUDGET = 2700
DOWN_BUDGET = 300


# -- one VM, for real -------------------------------------------------------------------------------------------
def ip(*args: str) -> str:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=True).stdout


def running(*pattern: str) -> str:
    return subprocess.run(["pgrep", "-a", *pattern], capture_output=True, text=True).stdout


@pytest.mark.timeout(RUN_BUDGET + DOWN_BUDGET + 60)  # its own budget, not the suite's 300 s per test
def test_the_lab_passes_a_takeover_run_on_three_vms(tmp_path: Path) -> None:
    """The whole lab, as `scripts/lab.sh test` runs it: never skipped, a lab that cannot boot fails here."""
    before = ip("-4", "-o", "addr")
    report = tmp_path / "lab.json"
    env = {**os.environ, "CF_LAB_PYTHON": sys.executable}  # this suite's virtualenv, in the lab's namespace too
    command = [LAB, "test", "--json", str(report), "--workdir", str(tmp_path / "run")]
    try:
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=RUN_BUDGET)
    finally:  # cut short by the timeout, it could not clean up after itself
        subprocess.run([LAB, "down"], capture_output=True, timeout=DOWN_BUDGET)
    told = result.stdout[-4000:] + result.stderr[-6000:]
    assert result.returncode == 0 and report.exists(), told
    assert "driver qemu" in result.stderr or "driver kvm" in result.stderr, told
    found = json.loads(report.read_text())
    assert found["ok"] and found["violations"] == [], told
    assert len(found["faults"]) == 1 and found["faults"][0]["kind"] == "destroy"
    assert found["figures"]["leader_losses"] == 1  # a successor led after the destruction; on another VM, or a
    # violation: so are launches on both backends before and after it, and every launch's task run
    assert found["launches_checked"] >= 8 and found["task_runs"] >= 8
    assert found["attempts_followed"] >= 4 and found["forbid_runs"] >= 2
    for name, address in ADDRESSES.items():  # every guest booted, on the private network the Vagrantfile sets
        assert any(re.fullmatch(rf"{name}: kernel \S+-amd64 system (running|degraded) eth1 {address}/24", n)
                   for n in found["notes"]), found["notes"]  # fmt: skip
    # gone again (no namespace, no guest, no libvirtd), and nothing of it was ever on this machine's own network
    assert "cflab" not in ip("netns", "list")
    assert not running("-f", "guest=cf-lab-") and not running("-x", "libvirtd") and not running("-x", "virtlogd")
    added = set(ip("-4", "-o", "addr").splitlines()) - set(before.splitlines())
    assert not added, added  # what others on the machine removed meanwhile (a fault run's veths) is theirs


def test_down_ends_what_still_runs_in_the_namespace(tmp_path: Path) -> None:
    """A guest's QEMU or a network's dnsmasq outlives a libvirtd that died: `down` must not leave them running
    in a namespace without a name."""
    netns = f"cflabt{os.getpid()}"
    env = {**os.environ, "CF_LAB_NETNS": netns, "CF_LAB_DIR": str(tmp_path)}
    subprocess.run(["ip", "netns", "add", netns], check=True)
    left = subprocess.Popen(["ip", "netns", "exec", netns, "sleep", "300"])
    try:
        wait_for(lambda: ip("netns", "pids", netns).strip(), 5)
        down = subprocess.run([LAB, "down"], env=env, capture_output=True, text=True, timeout=60)
        assert down.returncode == 0, down.stderr
        assert left.wait(timeout=10) is not None
        assert netns not in ip("netns", "list")
    finally:
        left.kill()
        subprocess.run(["ip", "netns", "del", netns], capture_output=True)


def stub(path: Path, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def test_a_new_box_destroys_the_machines_made_from_the_old_one_before_removing_it(tmp_path: Path) -> None:
    """A machine left from an older recipe's box cannot start once that box's volume is gone (its disk is an
    overlay on it): the next `up` or `smoke` would fail at once."""
    project, calls = tmp_path / "project", tmp_path / "calls"
    (project / "scripts").mkdir(parents=True)
    shutil.copy(LAB, project / "scripts")
    stub(
        project / "scripts" / "lab-box.sh",
        'case "${1:-}" in --name) echo cronframework-lab-new ;; *) echo /x.box ;; esac',
    )
    listed = 'case "$1 $2" in "box list") echo "cronframework-lab-old (libvirt, 0)" ;; esac'
    stub(tmp_path / "bin" / "vagrant", f'echo "vagrant $*" >>{calls}; {listed}')
    stub(tmp_path / "bin" / "virsh", f'echo "virsh $*" >>{calls}')
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", "CF_LAB_DIR": str(tmp_path / "lab")}
    script = 'source "$1"; in_ns() { "$@"; }; box'  # the lab's function, its namespace left out
    result = subprocess.run(["bash", "-c", script, "lab", str(project / "scripts" / "lab.sh")], env=env, text=True)
    assert result.returncode == 0
    done = [line for line in calls.read_text().splitlines() if not line.startswith(("vagrant box list", "virsh"))]
    assert done == [
        "vagrant destroy -f",
        "vagrant box remove --force --all cronframework-lab-old",
        "vagrant box add --name cronframework-lab-new /x.box",
    ]


# -- the journals -----------------------------------------------------------------------------------------------
def entry(pid: int, message: object, cursor: str = "") -> str:
    return json.dumps({"_PID": str(pid), "MESSAGE": message, "__CURSOR": cursor or f"s={message!r}"})


def event(name: str, epoch: int, at: float, **extra: object) -> str:
    ts = datetime.fromtimestamp(at, UTC).isoformat()
    return json.dumps({"ts": ts, "event": name, "epoch": epoch, **extra})


def test_a_journal_splits_into_scheduler_processes_in_order() -> None:
    lines = [
        entry(1, "Started cronframework-scheduler.service"),  # systemd's own line
        entry(700, event("leading", 1, 10.0)),
        entry(700, "Traceback (most recent call last):"),  # not a JSON event
        "not json at all",
        entry(700, event("shutting down; handing leadership over", 1, 20.0)),
        entry(812, event("leading", 3, 30.0)),
    ]
    lines += lines[1:3]  # the connection dropped and the journal was followed again from its start
    found = parse_journal("cf2", lines)
    assert [(i.node, i.pid, len(i.events)) for i in found] == [("cf2", 700, 2), ("cf2", 812, 1)]
    assert leading(found[0]) is None and leading(found[1]) == 3


def test_a_command_is_run_again_over_a_new_connection_when_ssh_itself_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a loaded host a stalled guest can take the shared ssh connection down: the next call then exits 255
    ("Failed to connect to new control master"), which failed a whole lab run. The node connects again and
    retries; a failure of the remote command itself (any other status) is not retried."""
    calls = tmp_path / "calls"
    fake = tmp_path / "bin" / "ssh"
    fake.parent.mkdir()
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {calls}\n'
        'case "$*" in *ControlMaster=yes*|*"-O exit"*) exit 0;; esac\n'
        f'if [ "$(grep -c flaky {calls})" = 1 ]; then\n'
        '  echo "Failed to connect to new control master" >&2; exit 255\n'
        "fi\n"
        'case "$*" in *broken*) echo nope >&2; exit 3;; esac\n'
        "echo ok\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    monkeypatch.setattr("integration.lab_nodes.SSH_RETRY_PAUSE", 0.0)
    node = Node("cf1", ADDRESSES["cf1"], tmp_path / "ssh-config", tmp_path)
    assert node.run("flaky") == "ok\n"
    lines = calls.read_text().splitlines()
    assert [line.endswith("flaky") for line in lines] == [True, False, False, True]  # failed, exit, connect, again
    assert "ControlMaster=yes" in lines[2]
    with pytest.raises(LabError, match=r"\(3\)"):
        node.run("broken")
    assert sum(line.endswith("broken") for line in calls.read_text().splitlines()) == 1


def test_processes_of_different_vms_never_share_a_pid(tmp_path: Path) -> None:
    """Every VM numbers its own processes: the same pid on two nodes must stay two replicas for the checker."""
    same = [Incarnation("cf1", 700, [{"event": "leading", "epoch": 1}]), Incarnation("cf2", 700, [])]
    replicas = as_replicas(same, tmp_path)
    assert len({r.process.pid for r in replicas}) == 2
    assert [r.replica_id for r in replicas] == ["cf1", "cf2"] and replicas[0].events()[0]["epoch"] == 1


def test_clock_skew_is_bounded_from_both_sides() -> None:
    # the guest runs 0.25 s ahead; each reply took 10-40 ms each way
    replies = [(f"{t:.6f} {t + 0.01 + 0.25:.6f}", t + 0.05) for t in (100.0, 101.0)]
    replies.append((f"{102.0:.6f} {102.04 + 0.25:.6f}", 102.05))
    skew, error = skew_from(replies)
    assert skew == pytest.approx(0.25, abs=error) and error <= 0.01
    with pytest.raises(LabError):
        skew_from([("100.0 99.0", 100.1), ("101.0 103.0", 101.1)])  # no clock fits both


# -- the verdict ------------------------------------------------------------------------------------------------
T0 = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC).timestamp()
DOCKER, NOMAD = "lab-t-docker", "lab-t-nomad"  # the jobs of a run tagged "t"


def record(job: str, second: int, epoch: int) -> LaunchRecord:
    """Launched, and its task's end recorded (a launch by cf2 just before its VM died is followed by cf3)."""
    identity = LaunchIdentity(job, datetime.fromtimestamp(T0 + second, UTC))
    begun = LaunchRecord.begin(identity, leader="cf2" if epoch == 1 else "cf3", epoch=epoch, now=identity.scheduled)
    ended = identity.scheduled + timedelta(seconds=19)  # a Nomad task under TCG starts that late
    launched = begun.finish(Outcome.SUBMITTED, now=identity.scheduled)
    return launched.with_result(TaskResult.SUCCEEDED, exit_code=0, started_at=ended, ended_at=ended)


def lab_run(tmp_path: Path) -> Run:
    nodes = [Node(name, address, tmp_path / "ssh-config", tmp_path) for name, address in ADDRESSES.items()]
    run = Run(nodes, tmp_path, after=60.0, applied_at=T0 - 13, successor="cf3", tag="t")  # checked from T0 - 1
    run.fault = FaultEvent("destroy", "virsh destroy of the leader's VM cf2", T0 + 25)
    run.fault.losses.append(LeaderLoss(T0 + 25, 1, "cf2"))
    return run


def clean_evidence() -> Evidence:
    """cf2 led (epoch 1) until its VM was destroyed at +25 s, cf3 (epoch 2) from +27 s; every instant launched once."""
    ev = Evidence()
    ev.intervals = [Interval(1, "cf2", 1, T0 - 30, T0 + 25.5, T0 - 29), Interval(2, "cf3", 2, T0 + 27, T0 + 99)]
    for job, offset in ((DOCKER, 0), (NOMAD, 10)):
        for second in range(offset, 60, 20):
            epoch = 1 if second < 25 else 2
            ev.history.setdefault(job, []).append(record(job, second, epoch))
            name = launch_name(job, datetime.fromtimestamp(T0 + second, UTC))
            ev.launches.append(BackendLaunch(name, T0 + second + (0.4 if epoch == 1 else 3.0), epoch))
            ev.task_lines.append((name, epoch, 1))
            if job == DOCKER:  # the forbid job's runs, on cf1's uptime clock: 2 s each
                ev.spans.append(Span(name, 1000.0 + second, 1002.0 + second))
    return ev


def verdict(tmp_path: Path, ev: Evidence) -> list[inv.Violation]:
    until = datetime.fromtimestamp(T0 + 55, UTC)
    return check(lab_run(tmp_path), ev, until).violations


def test_the_clean_evidence_passes(tmp_path: Path) -> None:
    assert verdict(tmp_path, clean_evidence()) == []


def test_a_launch_on_both_sides_of_the_takeover_is_a_double_launch(tmp_path: Path) -> None:
    ev = clean_evidence()
    first = ev.launches[0]
    ev.launches.append(BackendLaunch(first.name, T0 + 28, 2))  # the successor launched it again
    assert any(v.invariant == "at-most-once" and first.name in v.detail for v in verdict(tmp_path, ev))


def test_a_launch_by_the_destroyed_leader_after_the_takeover_is_not_fenced(tmp_path: Path) -> None:
    ev = clean_evidence()
    late = ev.launches[-1]
    ev.launches[-1] = BackendLaunch(late.name, late.submitted_at, 1)  # created by epoch 1, long after its VM died
    assert any(v.invariant == "fenced" and late.name in v.detail for v in verdict(tmp_path, ev))


def test_a_backend_unused_after_the_takeover_fails_the_lab(tmp_path: Path) -> None:
    ev = clean_evidence()
    ev.launches = [launch for launch in ev.launches if launch.name.startswith(DOCKER) or launch.epoch == 1]
    window = inv.Window(datetime.fromtimestamp(T0, UTC), datetime.fromtimestamp(T0 + 55, UTC))
    found = lab_checks(lab_run(tmp_path), ev, window)
    assert [v.detail for v in found] == ["no nomad launch after the leader's VM was destroyed"]


def test_a_launch_whose_task_never_ran_fails_the_lab(tmp_path: Path) -> None:
    """A container created but never started (as when dockerd cannot apply its AppArmor profile) is not a run."""
    ev = clean_evidence()
    silent = ev.task_lines.pop(2)[0]
    assert [v.detail for v in verdict(tmp_path, ev)] == [
        f"{silent}: launched, but its task never ran (no line of its own)"
    ]


def test_a_launch_whose_result_was_never_recorded_fails_the_lab(tmp_path: Path) -> None:
    """The fault suite's `followed`: the task ran, but no replica recorded how it ended (the destroyed leader's
    last launch, say, never adopted by its successor)."""
    ev = clean_evidence()
    lost = ev.history[NOMAD][1]
    ev.history[NOMAD][1] = replace(lost, result=None, ended_at=None, started_at=None, duration=None)
    found = verdict(tmp_path, ev)
    assert [(v.invariant, v.detail) for v in found] == [("followed", f"{lost.name}: launched, and no result recorded")]


def test_every_launched_attempt_in_the_window_is_followed(tmp_path: Path) -> None:
    until = datetime.fromtimestamp(T0 + 55, UTC)
    report = check(lab_run(tmp_path), clean_evidence(), until)
    assert report.attempts_followed == 6 and report.ok  # 3 docker + 3 nomad instants in T0-1..T0+55
    assert report.forbid_runs == 3


def test_a_forbid_run_started_while_the_last_one_ran_fails_the_lab(tmp_path: Path) -> None:
    ev = clean_evidence()
    first = ev.spans[0]
    ev.spans[1] = Span(ev.spans[1].launch, first.start + 1, first.start + 3)  # began 1 s into the first
    assert [v.invariant for v in verdict(tmp_path, ev)] == ["forbid"]


def test_a_launch_before_its_instant_fails_the_lab(tmp_path: Path) -> None:
    ev = clean_evidence()
    early = ev.launches[1]
    ev.launches[1] = BackendLaunch(early.name, early.submitted_at - 30, early.epoch)
    assert any(v.invariant == "on-time" and early.name in v.detail for v in verdict(tmp_path, ev))


class History:
    """The store's history, as the lab's wait for results reads it."""

    def __init__(self, ev: Evidence) -> None:
        self.ev = ev

    def history(self, job: str, limit: int) -> list[LaunchRecord]:
        return self.ev.history.get(job, [])[:limit]


def test_results_not_recorded_in_time_fail_the_run_saying_how_long_they_had(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lab, "RESULTS_SETTLE", 0.0)
    run, ev = lab_run(tmp_path), clean_evidence()
    window = inv.Window(datetime.fromtimestamp(T0, UTC), datetime.fromtimestamp(T0 + 55, UTC))
    lab.wait_results(run, History(ev), window)  # type: ignore[arg-type]
    assert run.checks == []
    ev.history[DOCKER][1] = replace(ev.history[DOCKER][1], result=None)  # +20 s: in the window
    lab.wait_results(run, History(ev), window)  # type: ignore[arg-type]
    assert [v.detail for v in run.checks] == [
        "1 launch(es) up to 12:00:55 still without a result 0s after the jobs were paused"
    ]


def test_the_first_box_build_on_a_machine_gets_past_the_cache_of_older_recipes(tmp_path: Path) -> None:
    """On a machine that never built a box (no $CF_LAB_DIR/box yet: a fresh CI machine), clearing older recipes
    must not end the script before the build. debootstrap is stubbed to fail at once: reaching it is the point."""
    stubs = tmp_path / "bin"
    stubs.mkdir()
    (stubs / "debootstrap").write_text("#!/bin/sh\necho stubbed debootstrap >&2\nexit 1\n")
    (stubs / "debootstrap").chmod(0o755)
    env = {**os.environ, "CF_LAB_DIR": str(tmp_path / "never-built"), "PATH": f"{stubs}:{os.environ['PATH']}"}
    result = subprocess.run(
        [str(ROOT / "scripts" / "lab-box.sh")], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert "lab-box: debootstrap bookworm" in result.stderr, result.stderr
    assert "stubbed debootstrap" in result.stderr, result.stderr

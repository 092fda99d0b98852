"""Clock faults in the fault suite: a fixed-seed run where leaders' wall clocks jump and skewed replicas take over
(libfaketime on the replica process), and the checks that judge such a run, fed hand-made evidence."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from integration import chaos_clock, chaos_faults
from integration import chaos_invariants as inv
from integration.chaos import Options
from integration.chaos_clock import ClockShift, real_times
from integration.chaos_evidence import BackendLaunch, Evidence
from integration.chaos_faults import ClockFault, FaultEvent, judge_clock_fault
from integration.chaos_report import Report
from integration.test_chaos import _at, _name, chaos_run

TOLERANCE = 5.0


@pytest.fixture(scope="module")
def clock_run(tmp_path_factory: pytest.TempPathFactory) -> Report:
    """Seed 9 deals a +90 s jump of the leader's clock, a +90 s heir, a +3 s jump and a -90 s jump."""
    opts = Options(60, 9, ("clock",), network="netns", gap=(1.0, 2.5), workdir=tmp_path_factory.mktemp("chaos-clock"))
    return chaos_run(opts, "with libfaketime")


def test_a_clock_run_breaks_no_invariant(clock_run: Report) -> None:
    assert clock_run.violations == [], clock_run.render()
    assert clock_run.instants_checked >= 80 and clock_run.launches_checked >= 60, clock_run.render()


def test_a_clock_run_skewed_leaders_both_ways_and_the_guard_stopped_the_far_ones(clock_run: Report) -> None:
    faults = [f.clock for f in clock_run.faults if f.clock is not None]
    assert {c.skew for c in faults} >= {90.0, 3.0, -90.0}, clock_run.render()
    details = " | ".join(f.detail for f in clock_run.faults)
    assert "jumps" in details and "takes over" in details
    far = [c for c in faults if abs(c.skew) > TOLERANCE and c.kept_leading]
    assert len(far) >= 2 and all(c.guard_said for c in far), faults
    assert not any(c.guard_said for c in faults if abs(c.skew) <= TOLERANCE)


# -- the checks ---------------------------------------------------------------------------------------------------
def _skewed(skew: float, *, said: bool, kept: bool = True) -> FaultEvent:
    event = FaultEvent("clock", "test", _at(2))
    event.clock = ClockFault("r2", 2, skew, _at(6), _at(9), kept, said)
    return event


def test_an_early_launch_beyond_the_guard_bound_is_caught_and_one_within_it_is_not() -> None:
    ev = Evidence(launches=[BackendLaunch(_name(20), _at(14.5), 2), BackendLaunch(_name(30), _at(25.5), 2)])
    [found] = inv.not_early(ev, TOLERANCE)
    assert found.invariant == "on-time" and _name(20) in found.detail and "5.5s before" in found.detail


def test_a_far_skewed_leader_that_launched_or_kept_quiet_is_caught() -> None:
    ev = Evidence(launches=[BackendLaunch(_name(8), _at(8.0), 2), BackendLaunch(_name(10), _at(10.0), 2)])
    found = inv.clock_guarded(ev, [_skewed(90, said=False)], TOLERANCE)
    assert [v.invariant for v in found] == ["clock-guard", "clock-guard"]
    assert "never said" in found[0].detail and _name(8) in found[1].detail
    assert inv.clock_guarded(ev, [_skewed(3, said=False)], TOLERANCE) == []  # within the bound: it may launch
    assert inv.clock_guarded(Evidence(), [_skewed(-90, said=False, kept=False)], TOLERANCE) == []  # lost the lead


def test_a_launch_in_flight_at_the_jump_is_not_held_against_the_guard() -> None:
    ev = Evidence(launches=[BackendLaunch(_name(7), _at(6.5), 2)])
    assert inv.clock_guarded(ev, [_skewed(90, said=True)], TOLERANCE) == []


def test_a_backlog_decided_before_the_skew_may_still_go_out_during_it() -> None:
    """A catch-up of a thousand jobs' missed instants takes seconds to send; the skew came meanwhile."""
    ev = Evidence(launches=[BackendLaunch(_name(4), _at(8.5), 2), BackendLaunch(_name(6), _at(8.6), 2)])
    assert inv.clock_guarded(ev, [_skewed(-90, said=True)], TOLERANCE) == []


def test_logged_times_map_back_to_real_time_across_jumps() -> None:
    shifts = [ClockShift(2, 2, 90.0, 100.0), ClockShift(4, 5, 0.0, 110.0)]
    logged = [98.0, 99.5, 190.5, 195.0, 199.9, 111.0]  # event 4 logged as the file changed back: 109.9 real
    assert real_times(logged, shifts) == pytest.approx([98.0, 99.5, 100.5, 105.0, 109.9, 111.0])
    assert real_times(logged, []) == logged
    started_skewed = [ClockShift(0, 0, -90.0, 50.0)]
    assert real_times([-30.0], started_skewed) == [60.0]


def test_libfaketime_moves_a_running_process_s_wall_clock_and_not_its_monotonic_one(tmp_path: Path) -> None:
    """And time.sleep still sleeps: libfaketime alone made every call fail with EINVAL (the shim's reason)."""
    offset = tmp_path / "offset"
    chaos_clock.write_offset(offset, 90.0)
    script = (
        "import time, pathlib, sys\n"
        "w0, m0 = time.time(), time.monotonic()\n"
        "pathlib.Path(sys.argv[1]).write_text('-90\\n')\n"
        "time.sleep(0.05)\n"
        "w1, m1 = time.time(), time.monotonic()\n"
        "print(w0, w1 - w0, m1 - m0)\n"
    )
    env = {**os.environ, **chaos_clock.environment(offset, chaos_clock.shim(tmp_path / "shim"))}
    out = subprocess.run([sys.executable, "-c", script, str(offset)], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    wall, step, mono = (float(x) for x in out.stdout.split())
    assert wall == pytest.approx(time.time() + 90, abs=5)
    assert step == pytest.approx(-180, abs=1) and 0.05 <= mono < 1


def test_a_skewed_heir_still_concluding_open_launches_had_no_tick_to_guard() -> None:
    """The 60-minute Nomad run: each of four heirs spent its whole skew in takeover, concluding hundreds of open
    launches (instants decided before the skew), and reached no tick, where the guard is consulted. The guard had
    nothing to refuse; one that ticked while skewed must still have said so."""
    recovering: list[dict[str, Any]] = [
        {"event": "leading", "replica": "r1", "epoch": 9},
        *({"event": "open launch concluded", "epoch": 9, "decision": "resubmitted: submitted"} for _ in range(3)),
    ]
    assert judge_clock_fault(recovering, since=0, epoch=9, leads_now=True) == (False, False)
    ticked: list[dict[str, Any]] = [*recovering, {"event": "took over", "epoch": 9}]
    assert judge_clock_fault(ticked, since=0, epoch=9, leads_now=True) == (True, False)
    said: list[dict[str, Any]] = [*ticked, {"event": chaos_faults.GUARD_SAYS}]
    assert judge_clock_fault(said, since=0, epoch=9, leads_now=True) == (True, True)
    jumped: list[dict[str, Any]] = [
        {"event": "leading", "epoch": 4},
        {"event": "took over", "epoch": 4},
        {"event": "tick"},
    ]
    assert judge_clock_fault(jumped, since=2, epoch=4, leads_now=True) == (True, False), "took over before the jump"
    assert judge_clock_fault(jumped, since=2, epoch=4, leads_now=False) == (False, False)


def test_a_leader_whose_session_restarted_and_had_not_taken_over_again_had_no_tick_to_guard() -> None:
    """The 60-minute Nomad runs: r3 took over epoch 2, its leader session failed on a ZooKeeper quorum loss and
    started again under the same epoch; the new session's catch-up tick consulted the guard before the +90 s jump,
    launched only instants due before it, and was still following results when the skew ended: no tick of it saw
    the skew. The first session's "took over" is not this one's."""
    retried: list[dict[str, Any]] = [
        {"event": "leading", "replica": "r3", "epoch": 2},
        {"event": "took over", "epoch": 2, "launched": 16},
        {"event": "leader session failed; will retry", "epoch": 2},
        {"event": "leading", "replica": "r3", "epoch": 2},
        {"event": "open launches concluded", "count": 0},
        {"event": "launch outcome recorded", "epoch": 2},
    ]
    assert judge_clock_fault(retried, since=len(retried), epoch=2, leads_now=True) == (False, False)
    took_over_again = [*retried, {"event": "took over", "epoch": 2}]
    assert judge_clock_fault(took_over_again, since=len(retried), epoch=2, leads_now=True) == (True, False)
    restored: list[dict[str, Any]] = [  # epochs count from 0 again in a restored root: one log, two eras' epoch 2
        {"event": "leading", "epoch": 2},
        {"event": "took over", "epoch": 2},
        {"event": "leadership lost; back to following", "epoch": 2},
        {"event": "leading", "epoch": 2},
    ]
    assert judge_clock_fault(restored, since=len(restored), epoch=2, leads_now=True) == (False, False)

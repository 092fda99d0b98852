"""Each benchmark scenario at its smoke size on real ZooKeeper, so none of them rots: figures sane, counts match.

No timing thresholds: these assert that every launch happened and was recorded, not how fast.
"""

from __future__ import annotations

import math

import pytest

from benchmarks import (
    bench_coldstart,
    bench_herd,
    bench_memory,
    bench_peers,
    bench_results,
    bench_steady,
    bench_suspend,
    bench_takeover,
)
from benchmarks.__main__ import main
from integration.zk import ZkCluster, ZkHarnessError

pytestmark = pytest.mark.zookeeper


@pytest.fixture(scope="module", autouse=True)
def zookeeper_available() -> None:
    """Fail (never skip) with the harness's message when ZooKeeper cannot be started here."""
    cluster = ZkCluster(nodes=1)
    try:
        cluster.start()
    except ZkHarnessError as exc:
        pytest.fail(f"benchmarks need a real ZooKeeper: {exc}", pytrace=False)
    finally:
        cluster.destroy()


def sane(lag: dict[str, float]) -> bool:
    return all(math.isfinite(v) and -0.5 < v < 60 for v in lag.values()) and lag["p50"] <= lag["p99"] <= lag["max"]


def test_herd_launches_and_finishes_every_job_in_each_herd() -> None:
    rows = bench_herd.run([200], [1], herds=2)["rows"]
    assert [row["herd"] for row in rows] == [1, 2]
    for row in rows:
        assert row["submitted"] == 200
        assert row["finished_records"] == 200
        assert row["open_left"] == 0
        assert 0 <= row["all_begun_s"] <= row["all_finished_s"]
        assert sane(row["lag_s"])
        assert row["zk_ops_per_launch"] >= 3  # record + job state (+ an open-index node a batch), then the record
        assert row["herd_cpu_s"]["leader"] > 0 and row["herd_cpu_s"]["zookeeper1"] > 0  # both worked in the herd


def test_herd_of_timed_launches_follows_every_one_to_its_result() -> None:
    result = bench_herd.run([200], [1], 1, 5.0)
    (herd,) = result["rows"]
    (results,) = result["results"]
    assert herd["submitted"] == 200 and herd["following_at_herd"] >= 0
    assert results["results"] == 200
    assert sane(results["recorded_after_end_s"])
    assert results["zk_ops_per_result"] > 0


def test_results_of_real_processes_are_recorded_after_they_end() -> None:
    (row,) = bench_results.run(["process"], 3, 12.0)["rows"]
    assert row["results"] >= 3
    assert sane(row["recorded_after_end_s"]) and row["recorded_after_end_s"]["p50"] >= 0
    assert row["zk_ops_per_result"] > 0


def test_steady_misses_no_launch() -> None:
    (row,) = bench_steady.run(200, 20, 30.0, [1])["rows"]
    assert row["expected_launches"] >= 200 * 30 // 60
    assert row["missing"] == 0
    assert sane(row["lag_s"])
    assert row["samples"] and all(s["rss_mib"] > 0 for s in row["samples"])


def test_coldstart_reads_history_and_launches() -> None:
    row = bench_coldstart.run(1000, 10_000)
    assert row["ready_s"] > 0
    assert math.isfinite(row["first_launch_lag_s"])
    assert row["history20_deep_records"] == 20
    # 9000 records over 999 shallow jobs: this one holds 9 (10 once the new leader has launched it)
    assert row["history20_shallow_records"] in (9, 10)


def test_peers_both_schedulers_run_every_job() -> None:
    (row,) = bench_peers.run([200])["rows"]
    assert row["cronframework"]["submitted"] == 200
    assert row["apscheduler"]["ran"] == 200
    assert row["ratio_p99"] > 0


def test_takeover_new_leader_launches_and_concludes() -> None:
    rows = bench_takeover.run([200], [4.0], 1, ["kill -9", "SIGTERM"])["rows"]
    kill, term = rows
    assert 0 < kill["first_launch_s"]["max"] < 60
    assert 0 < term["first_launch_s"]["max"] < 60
    assert kill["open_concluded_s"]["max"] >= 0


def test_suspend_sees_the_fault_and_times_every_backend_call() -> None:
    rows = bench_suspend.run(200, 1)["rows"]
    assert {(r["fault"], r["backend_latency_s"]) for r in rows} == {
        (fault, latency) for fault in ("SIGSTOP", "SIGKILL") for latency in bench_suspend.LATENCIES
    }
    for row in rows:
        assert row["suspended_after_fault_s"]["max"] >= 0  # the fault came after sync point one, then SUSPENDED
        assert row["last_call_after_suspended_s"]["max"] < 60


def test_memory_reports_bytes_per_job_beyond_the_spec_at_each_size() -> None:
    result = bench_memory.run([100, 400])
    rows = result["rows"]
    assert [r["jobs"] for r in rows] == [100, 400]
    for row in rows:
        assert row["submits"] == row["jobs"] * bench_memory.PASSES  # every job launched once per pass
        assert row["spec_bytes_per_job"] > 0
        assert row["beyond_spec_per_job"]["pass1"] > 0
        assert row["holders_per_job"]["dispatcher"] > 0
        assert row["top_files"] and all("where" in t and "per_job" in t for t in row["top_files"])
    assert len(result["linear"]["per_job"]) == 2 and all(v > 0 for v in result["linear"]["per_job"])


def test_cli_rejects_unknown_scenario() -> None:
    with pytest.raises(SystemExit):
        main(["nonsense"])

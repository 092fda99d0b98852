"""Scheduler replicas as OS processes against a real ZooKeeper: election, takeover, crash points, apply, CLI."""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cronframework.catalog.apply import spec_document
from cronframework.catalog.cache import SpecCache
from cronframework.cluster.replica import specs_stamp
from cronframework.naming import parse_launch_name
from cronframework.records import Outcome, RecordState, SpecChange, StoredSpec
from cronframework.store.zookeeper.store import ZooKeeperStore
from integration.replicas import EVERY_SECOND, ReplicaSet, wait_for
from tests.leader_harness import job


@pytest.fixture
def cluster(zk_hosts: str, zk_root: str, tmp_path: Path) -> Iterator[ReplicaSet]:
    replicas = ReplicaSet(zk_hosts, zk_root, tmp_path / "cluster", session_timeout=4.0)
    yield replicas
    replicas.stop_all()


def apply(cluster: ReplicaSet, text: str, tmp_path: Path) -> str:
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text(text)
    return cluster.cli("apply", str(jobs)).stdout


def launched_names(cluster: ReplicaSet) -> list[str]:
    directory = Path(cluster.backends["process"]["state_dir"])
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_three_replicas_elect_one_leader_and_launch_every_second(cluster: ReplicaSet, tmp_path: Path) -> None:
    apply(cluster, EVERY_SECOND, tmp_path)
    for name in ("a", "b", "c"):
        cluster.start(name)
    leader = cluster.wait_leader()
    assert wait_for(lambda: len(launched_names(cluster)) >= 3, 30), cluster.log_tails()
    leaders = [r for r in cluster.replicas.values() if any(e["event"] == "leading" for e in r.events())]
    assert [r.replica_id for r in leaders] == [leader]
    store = cluster.store()
    try:
        finished = [r for r in store.history("beat", limit=50) if r.state is RecordState.FINISHED]
        assert finished and all(r.outcome is Outcome.SUBMITTED for r in finished)
    finally:
        store.close()


def test_kill_9_of_the_leader_hands_over_with_every_instant_accounted_for(cluster: ReplicaSet, tmp_path: Path) -> None:
    apply(cluster, EVERY_SECOND, tmp_path)
    for name in ("a", "b", "c"):
        cluster.start(name)
    first = cluster.wait_leader()
    assert wait_for(lambda: len(launched_names(cluster)) >= 2, 30)
    killed_at = datetime.now(UTC)
    cluster.replicas[first].signal(signal.SIGKILL)
    second = cluster.wait_leader(timeout=cluster.session_timeout + 15, other_than=first)
    assert second != first
    assert wait_for(lambda: _launched_after(cluster, killed_at + timedelta(seconds=cluster.session_timeout + 2)), 30)
    cluster.stop_all()
    store = cluster.store()
    try:
        records = sorted(store.history("beat", limit=500), key=lambda r: r.scheduled)
        assert store.open_launches() == []
        instants = [r.scheduled for r in records]
        assert instants == sorted(set(instants)), "an instant was recorded twice"
        gaps = [b - a for a, b in itertools.pairwise(instants)]
        assert all(g == timedelta(seconds=1) for g in gaps), f"an instant vanished: {gaps}"
        names = launched_names(cluster)
        submitted = {r.name for r in records if r.outcome in (Outcome.SUBMITTED, Outcome.ALREADY_EXISTED)}
        assert submitted == set(names)
    finally:
        store.close()


def _launched_after(cluster: ReplicaSet, instant: datetime) -> bool:
    return any(parse_launch_name(n).scheduled > instant for n in launched_names(cluster))


@pytest.mark.parametrize("point", ["after_sync_one", "after_submit", "after_sync_two"])
def test_crash_at_each_point_of_the_protocol_is_concluded_by_the_next_leader(
    cluster: ReplicaSet, tmp_path: Path, point: str
) -> None:
    apply(cluster, EVERY_SECOND, tmp_path)
    doomed = cluster.start("doomed", env={"CRONFRAMEWORK_CRASH_AT": point})
    assert wait_for(lambda: not doomed.alive(), 30), cluster.log_tails()
    assert doomed.process.returncode == 137
    cluster.start("heir")
    cluster.wait_leader()
    store = cluster.store()
    try:
        assert wait_for(lambda: store.read_takeover() and store.read_takeover()["replica"] == "heir", 30)
        report = store.read_takeover()
        assert report is not None
        concluded = {c["launch"]: c for c in report["open_launches"]}
        first = min(store.history("beat", limit=500), key=lambda r: r.scheduled)
        if point == "after_sync_two":
            assert concluded == {}  # nothing was left open
        elif point == "after_sync_one":
            assert concluded[first.name]["lookup"] == "not found"
            assert "resubmitted" in concluded[first.name]["decision"]
        else:
            assert concluded[first.name]["lookup"].startswith("found")
        record = store.get_launch(first.name)
        assert record is not None and record.state is RecordState.FINISHED
        assert launched_names(cluster).count(first.name) == 1
    finally:
        store.close()


def test_sigterm_hands_leadership_over_before_the_session_would_expire(cluster: ReplicaSet, tmp_path: Path) -> None:
    cluster.session_timeout = 20.0  # a kill -9 would take >= 20 s to notice; a graceful exit must not
    cluster.__post_init__()
    apply(cluster, EVERY_SECOND, tmp_path)
    cluster.start("a")
    cluster.wait_leader()
    cluster.start("b")
    time.sleep(1.0)
    started = time.monotonic()
    cluster.replicas["a"].signal(signal.SIGTERM)
    assert cluster.replicas["a"].process.wait(15) == 0
    assert cluster.wait_leader(timeout=10, other_than="a") == "b"
    assert time.monotonic() - started < 10


def _at(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["ts"])


def test_sigterm_hand_over_is_warm_and_the_old_leader_is_done_before_it_resigns(
    cluster: ReplicaSet, tmp_path: Path
) -> None:
    """The new leader promotes from the specs it kept warm while following; the old one finished every launch
    (sync point two) before it resigned, so nothing is left open for recovery and no instant is lost or doubled."""
    apply(cluster, EVERY_SECOND, tmp_path)
    cluster.start("a")
    cluster.wait_leader()
    cluster.start("b")
    assert wait_for(lambda: any(e["event"] == "replica started" for e in cluster.replicas["b"].events()), 30)
    assert wait_for(lambda: len(launched_names(cluster)) >= 2, 30)
    cluster.replicas["a"].signal(signal.SIGTERM)
    assert cluster.replicas["a"].process.wait(15) == 0
    assert cluster.wait_leader(timeout=10, other_than="a") == "b"
    events = cluster.replicas["b"].events
    assert wait_for(lambda: any(e["event"] == "took over" for e in events()), 15), cluster.log_tails()
    promoted = [e for e in events() if e["event"] in ("leading", "job specs warm", "took over")]
    assert [e["event"] for e in promoted] == ["leading", "job specs warm", "took over"]
    assert promoted[2]["open_concluded"] == 0
    old = cluster.replicas["a"].events()
    [resigned] = [e for e in old if e["event"] == "shutting down; handing leadership over"]
    assert max(_at(e) for e in old if e["event"].startswith("launch")) < _at(resigned) <= _at(promoted[0])
    assert wait_for(lambda: _launched_after(cluster, _at(promoted[2]) + timedelta(seconds=1)), 15)
    cluster.stop_all()
    store = cluster.store()
    try:
        records = sorted(store.history("beat", limit=500), key=lambda r: r.scheduled)
        assert store.open_launches() == []
        assert not [r.name for r in records if "recovery" in (r.reason or "")]
        instants = [r.scheduled for r in records]
        assert all(b - a == timedelta(seconds=1) for a, b in itertools.pairwise(instants)), instants
        submitted = {r.name for r in records if r.outcome is Outcome.SUBMITTED}
        assert submitted == set(launched_names(cluster))
    finally:
        store.close()


def test_warm_specs_are_checked_against_zookeeper_before_a_promotion_trusts_them(zk_hosts: str, zk_root: str) -> None:
    """A follower's snapshot, then specs written through another client: `current()` sees every change at once
    (no watch or refresh thread runs here to help), and re-reads nothing while the specs folder stays put."""
    writer = ZooKeeperStore.connect(zk_hosts, zk_root)
    follower = ZooKeeperStore.connect(zk_hosts, zk_root)
    try:
        writer.write_specs([SpecChange(n, spec_document(job(n)), None) for n in ("beat", "gone")])
        specs = SpecCache(follower, background=True, stamp=specs_stamp(follower))
        specs.refresh()
        reads: list[int] = []
        read = follower.read_specs

        def counted() -> dict[str, StoredSpec]:
            reads.append(1)
            return read()

        follower.read_specs = counted  # type: ignore[method-assign]
        assert sorted(specs.current()) == ["beat", "gone"] and reads == []
        writer.write_specs(
            [
                SpecChange("beat", spec_document(job("beat", "*/5 * * * *")), 0),
                SpecChange("gone", None, 0),
                SpecChange("new", spec_document(job("new")), None),
            ]
        )
        jobs = specs.current()
        assert sorted(jobs) == ["beat", "new"] and reads == [1]
        assert jobs["beat"].version == 1 and jobs["beat"].spec.schedule == "*/5 * * * *"
        assert specs.current() == jobs and reads == [1]
    finally:
        writer.close()
        follower.close()


def test_apply_shows_a_diff_and_the_leader_follows_spec_changes(cluster: ReplicaSet, tmp_path: Path) -> None:
    out = apply(cluster, EVERY_SECOND, tmp_path)
    assert "1 created" in out and "+++ job beat (files)" in out
    assert "no changes" in apply(cluster, EVERY_SECOND, tmp_path)
    cluster.start("a")
    cluster.wait_leader()
    assert wait_for(lambda: launched_names(cluster), 30)
    changed = EVERY_SECOND.replace("beat:", "beat2:")
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text(changed)
    out = cluster.cli("apply", str(jobs), "--prune").stdout
    assert "1 created, 0 updated, 1 deleted" in out
    assert wait_for(lambda: any(n.startswith("beat2-") for n in launched_names(cluster)), 30), cluster.log_tails()


def test_status_history_trigger_pause_against_zookeeper(cluster: ReplicaSet, tmp_path: Path) -> None:
    apply(cluster, EVERY_SECOND.replace('"* * * * * *"', '"0 0 1 1 *"'), tmp_path)
    cluster.start("a")
    cluster.wait_leader()
    cluster.cli("trigger", "beat")
    assert wait_for(lambda: any(n.endswith("-m") for n in launched_names(cluster)), 30), cluster.log_tails()
    status = cluster.cli("status", "--json").stdout
    assert '"leader"' in status and '"replica": "a"' in status and "beat" in status
    history = cluster.cli("history", "beat", "--json").stdout
    assert '"outcome": "submitted"' in history
    assert "paused" in cluster.cli("pause", "beat").stdout
    assert cluster.cli("trigger", "nope", check=False).returncode == 1


@pytest.mark.parametrize(
    "command",
    [
        ["status"],
        ["history", "beat"],
        ["trigger", "beat"],
        ["pause", "beat"],
        ["resume", "beat"],
        ["logs", "beat"],
        ["apply", "{jobs}"],
        ["scheduler"],
    ],
)
def test_unreachable_zookeeper_is_one_clear_line_not_a_traceback(command: list[str], tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text(EVERY_SECOND)
    config = tmp_path / "scheduler.yaml"
    config.write_text("zookeeper: {hosts: '127.0.0.1:9', connect_timeout: 2, session_timeout: 2}\n")
    argv = [part.format(jobs=jobs) for part in command]
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "cronframework", *argv, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: cannot reach ZooKeeper at 127.0.0.1:9 after 3 tries"], result.stderr
    assert time.monotonic() - started < 60  # bounded retries: 3 tries of 2 s each, not forever


def test_digest_acl_shuts_other_tenants_out(zk_hosts: str, zk_root: str, tmp_path: Path) -> None:
    import os

    from kazoo.client import KazooClient
    from kazoo.exceptions import NoAuthError

    os.environ["CRONFRAMEWORK_ZK_AUTH"] = "cron:s3cret"
    cluster = ReplicaSet(zk_hosts, zk_root, tmp_path / "cluster")
    try:
        apply(cluster, EVERY_SECOND, tmp_path)
        cluster.start("a")
        cluster.wait_leader()
        assert wait_for(lambda: launched_names(cluster), 30), cluster.log_tails()
        stranger = KazooClient(hosts=zk_hosts)
        stranger.start(timeout=10)
        try:
            with pytest.raises(NoAuthError):
                stranger.get(f"{zk_root}/specs/beat")
            with pytest.raises(NoAuthError):
                stranger.set(f"{zk_root}/specs/beat", b"{}")
            with pytest.raises(NoAuthError):
                stranger.get_children(f"{zk_root}/election")
            with pytest.raises(NoAuthError):
                stranger.create(f"{zk_root}/launches/beat/forged-20260101t000000z", b"{}")
        finally:
            stranger.stop()
        assert '"replica": "a"' in cluster.cli("status", "--json").stdout
    finally:
        cluster.stop_all()
        del os.environ["CRONFRAMEWORK_ZK_AUTH"]

"""Backups against a real ZooKeeper: a crash leaves a launch open, the snapshot carries it to a new root, and the
replica that takes the new root over concludes it -- no launch lost, none run twice, no instant recorded twice."""

from __future__ import annotations

import functools
import itertools
import json
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from cronframework.cluster.election import Election
from cronframework.ops.snapshot import load
from cronframework.records import Outcome, RecordState
from cronframework.store.zookeeper.store import ZooKeeperStore
from integration.replicas import EVERY_SECOND, ReplicaSet, wait_for


@pytest.fixture
def old(zk_hosts: str, zk_root: str, tmp_path: Path) -> Iterator[ReplicaSet]:
    replicas = ReplicaSet(zk_hosts, zk_root, tmp_path / "old", session_timeout=4.0)
    yield replicas
    replicas.stop_all()


@pytest.fixture
def new(zk_hosts: str, zk_root: str, tmp_path: Path, old: ReplicaSet) -> Iterator[ReplicaSet]:
    """A second cluster on a fresh root, launching into the SAME process-backend directory as `old`."""
    replicas = ReplicaSet(
        zk_hosts,
        zk_root + "-restored",
        tmp_path / "new",
        session_timeout=4.0,
        backends={"process": dict(old.backends["process"])},
    )
    config = yaml.safe_load(replicas.config_path.read_text())
    config["snapshot"] = {"dir": str(tmp_path / "periodic"), "every": "1s", "keep": 2}
    replicas.config_path.write_text(yaml.safe_dump(config))
    yield replicas
    replicas.stop_all()


def launched(cluster: ReplicaSet) -> list[str]:
    directory = Path(cluster.backends["process"]["state_dir"])
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def apply_jobs(cluster: ReplicaSet, tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text(EVERY_SECOND)
    cluster.cli("apply", str(jobs))


def crash_with_an_open_launch(old: ReplicaSet, tmp_path: Path) -> None:
    apply_jobs(old, tmp_path)
    doomed = old.start("doomed", env={"CRONFRAMEWORK_CRASH_AT": "after_sync_one"})
    assert wait_for(lambda: not doomed.alive(), 30), old.log_tails()
    assert doomed.process.returncode == 137


def test_an_open_launch_survives_export_and_import_and_is_concluded_once(
    old: ReplicaSet, new: ReplicaSet, tmp_path: Path
) -> None:
    crash_with_an_open_launch(old, tmp_path)
    file = tmp_path / "backup.json.gz"
    assert "1 open" in old.cli("snapshot", "export", str(file)).stdout
    (left_open,) = [r for r in load(file).launches if r.open]
    assert launched(old) == []  # the crash came before the backend was called

    assert "1 open" in new.cli("snapshot", "import", str(file)).stdout
    new.start("heir")
    new.wait_leader()
    store = new.store()
    try:
        assert wait_for(lambda: (t := store.read_takeover()) and t["replica"] == "heir", 30), new.log_tails()
        report = store.read_takeover()
        assert report is not None
        concluded = {c["launch"]: c for c in report["open_launches"]}
        assert concluded[left_open.name]["lookup"] == "not found"
        assert concluded[left_open.name]["decision"] == "resubmitted: submitted"
        assert wait_for(lambda: len(launched(new)) >= 5, 30), new.log_tails()
        assert wait_for(lambda: snapshots_written(new) >= 3, 30), new.log_tails()  # every 1s, keep 2: pruned
        new.stop_all()
        assert_every_instant_once(store, new, left_open.name)
    finally:
        store.close()
    assert_periodic_snapshots(tmp_path / "periodic", left_open.name)


def assert_every_instant_once(store: ZooKeeperStore, cluster: ReplicaSet, reopened: str) -> None:
    records = sorted(store.history("beat", limit=1000), key=lambda r: r.scheduled)
    assert store.open_launches() == []
    record = store.get_launch(reopened)
    assert record is not None and record.state is RecordState.FINISHED and record.outcome is Outcome.SUBMITTED
    instants = [r.scheduled for r in records]
    assert instants == sorted(set(instants)), "an instant was recorded twice"
    gaps = {b - a for a, b in itertools.pairwise(instants)}
    assert gaps == {timedelta(seconds=1)}, f"an instant vanished: {gaps}"
    names = launched(cluster)
    submitted = {r.name for r in records if r.outcome in (Outcome.SUBMITTED, Outcome.ALREADY_EXISTED)}
    assert submitted == set(names) and reopened in names
    for name in names:  # each backend launch ran its task once
        output = wait_for(functools.partial(_stdout, cluster, name), 15)
        assert output == f"beat {name}\n", f"{name}: {output!r}"


def snapshots_written(cluster: ReplicaSet) -> int:
    return sum(e["event"] == "snapshot written" for e in cluster.replicas["heir"].events())


def _stdout(cluster: ReplicaSet, name: str) -> str | None:
    path = Path(cluster.backends["process"]["state_dir"]) / name / "stdout"
    text = path.read_text() if path.exists() else ""
    return text if text.endswith("\n") else None


def assert_periodic_snapshots(folder: Path, reopened: str) -> None:
    files = sorted(folder.glob("cronframework-snapshot-*.json.gz"))
    assert 1 <= len(files) <= 2, files  # keep: 2
    newest = load(files[-1])
    assert reopened in {r.name for r in newest.launches}


def test_import_into_a_root_that_holds_state_is_refused(old: ReplicaSet, tmp_path: Path) -> None:
    apply_jobs(old, tmp_path)
    file = tmp_path / "backup.json"
    old.cli("snapshot", "export", str(file))
    store = old.store()
    before = (store.read_specs(), store.read_job_states(), store.history("beat", 100))
    result = old.cli("snapshot", "import", str(file), check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"error: refusing to import into {old.root}: it already holds job specs")
    assert (store.read_specs(), store.read_job_states(), store.history("beat", 100)) == before
    store.close()


def test_import_while_a_replica_leads_the_empty_root_is_refused(
    old: ReplicaSet, new: ReplicaSet, tmp_path: Path
) -> None:
    apply_jobs(old, tmp_path)
    file = tmp_path / "backup.json"
    old.cli("snapshot", "export", str(file))
    store = new.store()
    running = Election(store.client, new.root, "scheduler-a", acl=store.acl).start()
    try:
        assert running.elected.wait(10)
        started = time.monotonic()
        result = new.cli("snapshot", "import", str(file), "--wait", "1", check=False)
        assert result.returncode == 1, result.stdout
        assert "replica 'scheduler-a' leads it" in result.stderr and len(result.stderr.splitlines()) == 1
        assert time.monotonic() - started < 30
        assert store.read_specs() == {} and store.open_launches() == [] and store.read_job_states() == {}
        assert [c.replica for c in running.replicas()] == ["scheduler-a"]  # the importer left the election
    finally:
        running.resign()
        store.close()


def test_a_bad_file_touches_no_znode(new: ReplicaSet, tmp_path: Path, zk_hosts: str) -> None:
    file = tmp_path / "future.json"
    file.write_text(json.dumps({"format_version": 2}))
    result = new.cli("snapshot", "import", str(file), check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: {file}: unsupported format_version 2 (this release reads 1)"
    from cronframework.store.zookeeper.client import connect_zk

    client = connect_zk(zk_hosts, timeout=10, session_timeout=4)
    try:
        assert client.exists(new.root) is None  # validated before connecting: not even the layout was created
    finally:
        client.stop()
        client.close()


FORBID_EVERY_SECOND = EVERY_SECOND.replace("    backend: process\n", "    backend: process\n    concurrency: forbid\n")


def test_what_the_old_cluster_launched_after_the_export_is_found_by_name_after_the_import(
    old: ReplicaSet, new: ReplicaSet, tmp_path: Path
) -> None:
    """The old cluster goes on after the export; restored, the new one replays a forbid job from the snapshot's
    watermark in one tick: the instants but the newest, which it would record superseded, are looked up by name."""
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text(FORBID_EVERY_SECOND)
    old.cli("apply", str(jobs))
    old.start("a")
    assert wait_for(lambda: len(launched(old)) >= 2, 30), old.log_tails()
    file = tmp_path / "backup.json.gz"
    old.cli("snapshot", "export", str(file))
    exported = len(launched(old))
    assert wait_for(lambda: len(launched(old)) >= exported + 4, 30), old.log_tails()
    old.stop_all()
    made = set(launched(old))
    new.cli("snapshot", "import", str(file))
    new.start("heir")
    store = new.store()
    try:
        assert wait_for(lambda: (t := store.read_takeover()) and t["replica"] == "heir", 30), new.log_tails()
        new.stop_all()
        records = {r.name: r for r in store.history("beat", limit=1000)}
    finally:
        store.close()
    made_after_export = sorted(n for n in made if records[n].leader == "heir")  # decided again
    assert len(made_after_export) >= 3, (made_after_export, sorted(made))
    wrong = {
        n: records[n].outcome for n in made if records[n].outcome not in (Outcome.SUBMITTED, Outcome.ALREADY_EXISTED)
    }
    assert wrong == {}, "recorded skipped though the old cluster launched it"
    assert {records[n].outcome for n in made_after_export} == {Outcome.ALREADY_EXISTED}

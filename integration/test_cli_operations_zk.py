"""The operator commands against a real ZooKeeper: a trigger with no elected leader is refused unless queued, and
`status` marks next launches stale while no replica leads (tests/test_cli_operations.py has the embedded cases)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from cronframework.catalog.apply import apply_diff, diff_specs
from cronframework.cli import main
from cronframework.cluster.election import Election
from cronframework.records import JobState
from cronframework.spec.files import load_jobs
from cronframework.store.zookeeper.store import ZooKeeperStore
from integration.conftest import leader_fence
from tests.test_cli_operations import JOBS


@pytest.fixture
def applied(store: ZooKeeperStore, zk_client: KazooClient, tmp_path: Path) -> ZooKeeperStore:
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text(JOBS)
    apply_diff(store, diff_specs([j.spec for j in load_jobs([str(jobs)])], {}, prune=True))
    fence = leader_fence(zk_client, store)  # a replica that led once and planned the next instant
    store.put_job_states(fence, [JobState("beat", datetime(2026, 11, 25, 3, tzinfo=UTC))])
    zk_client.delete(fence.node_path)
    return store


@pytest.fixture
def elected(zk_client: KazooClient, zk_root: str) -> Iterator[Election]:
    election = Election(zk_client, zk_root, "r1").start()
    assert election.elected.wait(10)
    yield election
    election.resign()


def cli(zk_hosts: str, zk_root: str, *args: str) -> int:
    return main([*args, "--zk", zk_hosts, "--root", zk_root])


def test_trigger_with_no_leader_is_refused_unless_queued(
    applied: ZooKeeperStore, zk_hosts: str, zk_root: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(zk_hosts, zk_root, "trigger", "beat") == 1
    assert "--queue" in capsys.readouterr().err
    assert applied.pending_triggers() == []
    assert cli(zk_hosts, zk_root, "trigger", "beat", "--queue") == 0
    assert [t.job for t in applied.pending_triggers()] == ["beat"]


def test_trigger_and_status_name_the_elected_leader(
    applied: ZooKeeperStore, elected: Election, zk_hosts: str, zk_root: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(zk_hosts, zk_root, "trigger", "beat") == 0
    assert "r1" in capsys.readouterr().out
    assert cli(zk_hosts, zk_root, "status", "--json", "--no-lookup") == 0
    document = json.loads(capsys.readouterr().out)
    assert document["stale"] is False and document["leader"]["replica"] == "r1"


def test_status_with_no_leader_marks_next_launches_stale(
    applied: ZooKeeperStore, zk_hosts: str, zk_root: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(zk_hosts, zk_root, "status", "--no-lookup") == 0
    out = capsys.readouterr().out
    assert "no replica is elected" in out and "(stale)" in out
    assert cli(zk_hosts, zk_root, "status", "--json", "--no-lookup") == 0
    assert json.loads(capsys.readouterr().out)["stale"] is True


def test_history_and_logs_of_unknown_names_are_errors(applied: ZooKeeperStore, zk_hosts: str, zk_root: str) -> None:
    assert cli(zk_hosts, zk_root, "history", "nope") == 1
    assert cli(zk_hosts, zk_root, "logs", "beat", "--launch", "beat-20261125t030000z") == 1

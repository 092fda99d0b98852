"""Last results on a real ZooKeeper, as a status page server reads them: each job's answer is remembered and checked
against the stats of its state node and newest record in one round, and found again only when those moved. The
reader is a store of its own on its own client, as an API server beside the leader is."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import Any

import pytest
from kazoo.client import KazooClient
from starlette.testclient import TestClient

from cronframework.api import Api, LocalCluster, TokenAuth, create_app
from cronframework.catalog.apply import spec_document
from cronframework.cluster.election import ZkFence
from cronframework.records import LaunchRecord, Outcome, ResultBatch, SpecChange, TaskResult
from cronframework.store.zookeeper import store as zookeeper_store
from cronframework.store.zookeeper.client import connect_zk
from cronframework.store.zookeeper.store import ZooKeeperStore
from cronframework.testing import FakeClock
from tests.leader_harness import job
from tests.store_conformance import MINUTE, T0, done, ended, make_begin, summary_of

pytestmark = pytest.mark.zookeeper
NOW = T0 + 10 * MINUTE


class Rounds:
    """The listings and reads the stores make: paths of each call (a call is one round of pipelined multiReads)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.listed: list[list[str]] = []
        self.read: list[list[str]] = []
        listing, reading = zookeeper_store.list_many_async, zookeeper_store.read_many_async

        def listed(client: KazooClient, paths: Sequence[str], *args: Any, **kwargs: Any) -> Any:
            self.listed.append(list(paths))
            return listing(client, paths, *args, **kwargs)

        def read(client: KazooClient, paths: Sequence[str], *args: Any, **kwargs: Any) -> Any:
            self.read.append(list(paths))
            return reading(client, paths, *args, **kwargs)

        monkeypatch.setattr(zookeeper_store, "list_many_async", listed)
        monkeypatch.setattr(zookeeper_store, "read_many_async", read)

    def clear(self) -> None:
        self.listed.clear()
        self.read.clear()


@pytest.fixture
def reader(zk_hosts: str, zk_root: str, store: ZooKeeperStore) -> Iterator[ZooKeeperStore]:
    """A second store on the same root (made after the writer's, which lays the root out)."""
    client = connect_zk(zk_hosts, timeout=10, session_timeout=4)
    reading = ZooKeeperStore(client, zk_root)
    yield reading
    client.stop()
    client.close()


def launched(store: ZooKeeperStore, fence: ZkFence, job_name: str, minutes: int, outcome: Outcome) -> LaunchRecord:
    item = make_begin(fence, job_name, T0 + minutes * MINUTE)
    store.begin(fence, [item])
    finished = item.record.finish(
        outcome, now=item.record.scheduled, reason="refused" if outcome is Outcome.FAILED else None
    )
    store.finish(fence, [finished])
    return finished


def found_afresh(zk_hosts: str, zk_root: str, jobs: list[str]) -> dict[str, str]:
    """The answer of a store that remembers nothing."""
    client = connect_zk(zk_hosts, timeout=10, session_timeout=4)
    try:
        return ZooKeeperStore(client, zk_root).last_results(jobs, NOW)
    finally:
        client.stop()
        client.close()


def test_unchanged_jobs_are_checked_in_one_round_without_listing(
    store: ZooKeeperStore, fence: ZkFence, reader: ZooKeeperStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = [f"job-{i:04d}" for i in range(1_100)]  # more than one multiRead (a thousand paths)
    for start in range(0, len(jobs), 500):
        items = [make_begin(fence, j, T0 - 70 * MINUTE) for j in jobs[start : start + 500]]  # the hour before
        store.begin(fence, items)
        store.finish(fence, [done(i.record) for i in items])
    asked = [*jobs, "never-placed"]
    first = reader.last_results(asked, NOW)
    assert first == {j: "submitted" for j in jobs}
    rounds = Rounds(monkeypatch)
    assert reader.last_results(asked, NOW) == first
    # one round: each job's state node and newest record; only the job with no state node is looked up the long way
    assert [len(paths) for paths in rounds.read] == [2 * len(jobs) + 1]
    assert rounds.listed and all("never-placed" in path for paths in rounds.listed for path in paths)


def test_a_changed_last_result_is_read_on_the_next_call(
    store: ZooKeeperStore, fence: ZkFence, reader: ZooKeeperStore, zk_hosts: str, zk_root: str
) -> None:
    jobs = ["alpha", "beta", "gamma"]
    for name in jobs:
        launched(store, fence, name, 0, Outcome.SUBMITTED)
    first = launched(store, fence, "alpha", 5, Outcome.SUBMITTED)

    def answer(expected: dict[str, str]) -> None:
        got = reader.last_results(jobs, NOW)
        assert got == expected and got == found_afresh(zk_hosts, zk_root, jobs)

    answer({"alpha": "submitted", "beta": "submitted", "gamma": "submitted"})
    result = ended(first, TaskResult.FAILED, exit_code=1)  # the same record rewritten with its task's result
    store.record_results(fence, ResultBatch([result], [summary_of(result)]))
    answer({"alpha": "failed", "beta": "submitted", "gamma": "submitted"})
    launched(store, fence, "beta", 7, Outcome.FAILED)  # a newer launch: the job's state node moves
    answer({"alpha": "failed", "beta": "failed_to_launch", "gamma": "submitted"})
    store.begin(fence, [make_begin(fence, "gamma", T0 + 9 * MINUTE)])
    answer({"alpha": "failed", "beta": "failed_to_launch", "gamma": "begun"})
    store.prune(fence, "alpha", [result.name])  # the newest record goes: the one before is the last again
    answer({"alpha": "submitted", "beta": "failed_to_launch", "gamma": "begun"})
    launched(store, fence, "delta", 8, Outcome.SKIPPED)  # a job never asked before
    jobs.append("delta")
    answer({"alpha": "submitted", "beta": "failed_to_launch", "gamma": "begun", "delta": "skipped"})


def test_a_changed_last_result_shows_on_the_next_page_load(
    store: ZooKeeperStore, fence: ZkFence, reader: ZooKeeperStore
) -> None:
    names = ["alpha", "beta", "gamma"]
    store.write_specs([SpecChange(n, spec_document(job(n, "*/5 * * * *")), None) for n in names])
    for name in names:
        launched(store, fence, name, 0, Outcome.FAILED if name == "beta" else Outcome.SUBMITTED)
    view = LocalCluster("r1", url="http://127.0.0.1:1", epoch=lambda: 1)
    app = create_app(Api(reader, view, TokenAuth(None), FakeClock(NOW)))

    def rows(target: str) -> list[str]:
        response = client.get(target)
        assert response.status_code == 200, response.text
        return re.findall(r'<tr data-job="([^"]+)"', response.text)

    with TestClient(app) as client:
        assert rows("/?result=failed_to_launch") == ["beta"]
        assert rows("/?sort=result") == ["beta", "alpha", "gamma"]
        launched(store, fence, "beta", 5, Outcome.SUBMITTED)
        launched(store, fence, "gamma", 5, Outcome.FAILED)
        assert rows("/?result=failed_to_launch") == ["gamma"]
        assert rows("/?sort=result") == ["gamma", "alpha", "beta"]
        item = make_begin(fence, "alpha", T0 + 6 * MINUTE)
        store.begin(fence, [item])
        store.finish(fence, [done(item.record)])
        assert rows("/?sort=result") == ["gamma", "alpha", "beta"]  # submitted
        lost = ended(item.record, TaskResult.LOST)
        store.record_results(fence, ResultBatch([lost], [summary_of(lost)]))
        assert rows("/?sort=result") == ["alpha", "gamma", "beta"]


def test_a_record_rewritten_at_the_same_path_is_told_by_its_mzxid(
    store: ZooKeeperStore, fence: ZkFence, reader: ZooKeeperStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A finish rewrites the newest record in place: the state node does not move, the record's mzxid does, and
    its word is read from the bytes the check fetched, with no listing."""
    item = make_begin(fence, "alpha", T0)
    store.begin(fence, [item])
    assert reader.last_results(["alpha"], NOW) == {"alpha": "begun"}
    store.finish(fence, [item.record.finish(Outcome.SUBMITTED, now=T0 + timedelta(seconds=1))])
    rounds = Rounds(monkeypatch)
    assert reader.last_results(["alpha"], NOW) == {"alpha": "submitted"}
    assert rounds.listed == [] and [len(paths) for paths in rounds.read] == [2]

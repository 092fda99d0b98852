"""Launch records in hourly folders on a real ZooKeeper: history costs O(asked), pruning drops the hours it empties,
and a folder removed behind the cache's back is made again."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
from kazoo.client import KazooClient

from cronframework.cluster.election import ZkFence
from cronframework.errors import ConflictError
from cronframework.records import JobState, Outcome
from cronframework.store.zookeeper import store as zookeeper_store
from cronframework.store.zookeeper.store import ZooKeeperStore
from tests.store_conformance import T0, make_begin

pytestmark = pytest.mark.zookeeper
HOUR = timedelta(hours=1)


def finished_launches(store: ZooKeeperStore, fence: ZkFence, job: str, offsets: list[timedelta]) -> list[str]:
    items = [make_begin(fence, job, T0 + offset) for offset in offsets]
    store.begin(fence, items)
    store.finish(fence, [i.record.finish(Outcome.SUBMITTED, now=i.record.scheduled) for i in items])
    return [i.record.name for i in items]


class ListingCounter:
    """Counts the folders a store lists, and the folders of each listing call (a call is a round: its paths go
    in pipelined multiReads), by wrapping the listing its store module calls."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.listed: list[str] = []
        self.calls: list[int] = []
        original = zookeeper_store.list_many_async

        def counted(client: KazooClient, paths: Sequence[str], *args: Any, **kwargs: Any) -> Any:
            self.listed += paths
            self.calls.append(len(paths))
            return original(client, paths, *args, **kwargs)

        monkeypatch.setattr(zookeeper_store, "list_many_async", counted)


def test_records_sit_in_the_hour_of_their_scheduled_instant(
    store: ZooKeeperStore, fence: ZkFence, zk_client: KazooClient
) -> None:
    names = finished_launches(store, fence, "beat", [timedelta(0), timedelta(minutes=40), 2 * HOUR])
    job_dir = store.layout.launch_dir("beat")
    assert sorted(zk_client.get_children(job_dir)) == ["2026112506", "2026112507", "2026112508"]
    assert sorted(zk_client.get_children(f"{job_dir}/2026112507")) == [names[1]]  # 06:30 + 40 min


def test_history_lists_only_the_newest_hours_it_needs(
    store: ZooKeeperStore, fence: ZkFence, monkeypatch: pytest.MonkeyPatch
) -> None:
    offsets = [h * HOUR + m * timedelta(minutes=10) for h in range(40) for m in range(3)]  # 3 a hour, 40 hours
    names = finished_launches(store, fence, "beat", offsets)
    counter = ListingCounter(monkeypatch)
    newest = store.history("beat", 2)
    assert [r.name for r in newest] == names[::-1][:2]
    assert len(counter.listed) == 2  # the job's folder and its newest hour: not 40 hours, not 120 records
    counter.listed.clear()
    twenty = store.history("beat", 20)
    assert [r.name for r in twenty] == names[::-1][:20]
    assert len(counter.listed) == 1 + 1 + 4 + 16  # rounds of 1, 4, 16 hours stop once 20 names are in hand
    assert [r.name for r in store.history("beat", 1000)] == names[::-1]  # asking for all still finds all


def test_histories_of_many_jobs_list_their_folders_together(
    store: ZooKeeperStore, fence: ZkFence, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each round lists the next hours of every job still short of records in one request: the number of requests
    depends on how far back the records are, not on how many jobs there are."""
    jobs = [f"job-{i:04d}" for i in range(1_200)]  # more than one multiRead (a thousand paths) per round
    items = [make_begin(fence, job, T0 + h * HOUR) for h in range(3) for job in jobs]
    for start in range(0, len(items), 500):
        store.begin(fence, items[start : start + 500])
    counter = ListingCounter(monkeypatch)
    got = store.histories([*jobs, "nothing"], 2)
    assert sorted(got) == jobs
    assert all([r.scheduled for r in records] == [T0 + 2 * HOUR, T0 + HOUR] for records in got.values())
    assert len(counter.listed) == len(jobs) * (1 + 1 + 2) + 1  # folders, newest hours, then the two older ones
    assert counter.calls == [len(jobs) + 1, len(jobs), 2 * len(jobs)]  # three rounds, each for every job at once


def test_last_results_look_in_the_hours_around_now_first(
    store: ZooKeeperStore, fence: ZkFence, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job keeps up to `retention.count` hourly folders: listing them all for 10,000 jobs is what a status
    page's filter by last result must not do. The hours around `now` are listed directly; only a job with nothing
    in them has its folders listed."""
    busy = [f"busy-{i}" for i in range(3)]
    for job in busy:  # 40 hours kept, the newest in the hour before now
        finished_launches(store, fence, job, [h * HOUR for h in range(40)])
    finished_launches(store, fence, "daily", [timedelta(0), 24 * HOUR])  # nothing in the hours around now
    now = T0 + 40 * HOUR + timedelta(minutes=5)
    counter = ListingCounter(monkeypatch)
    got = store.last_results([*busy, "daily", "never"], now)
    assert got == {job: "submitted" for job in [*busy, "daily"]}
    assert counter.calls == [5, 5, 2, 1]  # the hour of now, the one before; daily and never: folders, newest hour
    assert store.layout.launch_dir("busy-0") not in counter.listed
    assert got == store.last_results([*busy, "daily", "never"])  # the same answer without a `now`


def test_a_manual_launch_sorts_by_its_trigger_instant_across_hours(store: ZooKeeperStore, fence: ZkFence) -> None:
    scheduled = finished_launches(store, fence, "beat", [timedelta(0), HOUR])
    manual = make_begin(fence, "beat", T0 + 2 * HOUR, manual=True)
    store.begin(fence, [manual])
    assert [r.name for r in store.history("beat", 2)] == [manual.record.name, scheduled[1]]


def test_pruning_drops_the_hours_it_empties_and_keeps_the_others(
    store: ZooKeeperStore, fence: ZkFence, zk_client: KazooClient
) -> None:
    names = finished_launches(store, fence, "beat", [timedelta(0), HOUR, HOUR + timedelta(minutes=10)])
    store.prune(fence, "beat", names[:2])  # all of 06:00, half of 07:00
    assert zk_client.get_children(store.layout.launch_dir("beat")) == ["2026112507"]
    assert [r.name for r in store.history("beat", 10)] == [names[2]]


def test_a_folder_removed_behind_the_cache_fails_one_begin_and_is_made_again(
    store: ZooKeeperStore, fence: ZkFence, zk_client: KazooClient
) -> None:
    [first] = finished_launches(store, fence, "beat", [timedelta(0)])
    zk_client.delete(store.layout.launch(first, "beat"))
    zk_client.delete(f"{store.layout.launch_dir('beat')}/2026112506")  # as another leader's pruning would
    again = make_begin(fence, "beat", T0 + timedelta(minutes=5))
    with pytest.raises(ConflictError):  # fails closed: the record does not exist, the launch was not begun
        store.begin(fence, [again])
    assert store.get_launch(again.record.name) is None
    store.begin(fence, [again])  # the failure dropped the cache: the folder is checked and made
    assert [r.name for r in store.history("beat", 5)] == [again.record.name]


def test_placing_a_job_makes_the_folder_of_its_next_launch(
    store: ZooKeeperStore, fence: ZkFence, zk_client: KazooClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = make_begin(fence, "beat", T0)
    store.put_job_states(fence, [JobState("beat", next_scheduled=T0)])
    assert zk_client.get_children(store.layout.launch_dir("beat")) == ["2026112506"]
    reads: list[str] = []
    original = store._get_many

    def recorded(paths: Any, what: str) -> Any:
        reads.append(what)
        return original(paths, what)

    monkeypatch.setattr(store, "_get_many", recorded)
    store.begin(fence, [first])
    assert "checking launch folders" not in reads  # the herd's begin did not wait for a folder check


def test_the_folder_cache_keeps_one_entry_per_job_whatever_the_history(store: ZooKeeperStore, fence: ZkFence) -> None:
    """A leader that runs for months must not remember every hour folder it ever made (bench_memory found it)."""
    for hour in range(30):
        finished_launches(store, fence, "beat", [hour * HOUR])
        finished_launches(store, fence, "tick", [hour * HOUR])
    assert store._hours == {"beat": "2026112611", "tick": "2026112611"}  # 06:30 + 29 h, the newest only
    late = make_begin(fence, "beat", T0 + 2 * HOUR + timedelta(minutes=1))  # a catch-up into an older hour
    store.begin(fence, [late])
    assert store.get_launch(late.record.name) is not None
    assert store._hours["beat"] == "2026112611"

"""`/v1/jobs` filtered and paged: by name prefix, state and last result, in name, next-launch or result order,
with a cursor that neither skips nor repeats a job when jobs are added between pages."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import timedelta
from typing import Any, cast

import pytest
from starlette.testclient import TestClient

from cronframework.abc import StateStore
from cronframework.api import Api, LocalCluster, TokenAuth, create_app
from cronframework.api.selection import result_of
from cronframework.catalog import cache
from cronframework.records import LaunchRecord, Outcome, RecordState, TaskResult, record_word
from cronframework.testing import MemoryStore
from tests.leader_harness import T0, Cluster, job
from tests.test_api import body, call, make_api


@pytest.fixture
def cluster() -> Cluster:
    c = Cluster()
    c.apply(
        job("db-backup", "0 3 * * *"),
        job("db-vacuum", "0 4 * * *"),
        job("db-report", "*/5 * * * *"),
        job("web-warm", "*/2 * * * *"),
        job("web-purge", "0 * * * *"),
    )
    session, _ = c.leader()
    session.promote()  # every job gets its next instant
    c.store.set_paused("db-vacuum", True)
    _record(c, "db-report", Outcome.FAILED)
    _record(c, "web-warm", Outcome.SKIPPED)
    return c


def _record(c: Cluster, name: str, outcome: Outcome) -> None:
    at = T0 - timedelta(minutes=1)
    record = LaunchRecord(f"{name}-x", name, at, RecordState.FINISHED, outcome=outcome, reason="test")
    c.store.records[record.name] = record


def jobs(c: Cluster, query: str) -> dict[str, Any]:
    response = call(make_api(c), "GET", f"/v1/jobs?{query}")
    assert response.status == 200, response.body
    got: dict[str, Any] = body(response)
    return got


def names(document: dict[str, Any]) -> list[str]:
    return [j["job"] for j in document["jobs"]]


def test_pages_follow_each_other_in_name_order_and_the_last_says_so(cluster: Cluster) -> None:
    first = jobs(cluster, "limit=2")
    assert names(first) == ["db-backup", "db-report"]
    assert first["page"] == {"total": 5, "matched": 5, "limit": 2, "next_after": "db-report"}
    second = jobs(cluster, "limit=2&after=db-report")
    third = jobs(cluster, f"limit=2&after={second['page']['next_after']}")
    assert names(second) == ["db-vacuum", "web-purge"] and names(third) == ["web-warm"]
    assert third["page"]["next_after"] is None
    assert first["leader"]["replica"] == "r1" and "stale" in first and "takeover" in first


def test_a_job_added_between_pages_is_neither_skipped_nor_repeated(cluster: Cluster) -> None:
    first = jobs(cluster, "limit=2")
    cluster.apply(job("aaa-new"), job("db-c"))  # one before the cursor, one after it
    rest = jobs(cluster, f"after={first['page']['next_after']}")
    assert names(rest) == ["db-vacuum", "web-purge", "web-warm"]


def test_filters_by_prefix_state_and_result(cluster: Cluster) -> None:
    assert names(jobs(cluster, "prefix=web-")) == ["web-purge", "web-warm"]
    assert names(jobs(cluster, "state=paused")) == ["db-vacuum"]
    assert names(jobs(cluster, "result=failed_to_launch")) == ["db-report"]
    assert names(jobs(cluster, "result=skipped&prefix=web")) == ["web-warm"]
    never = jobs(cluster, "result=none&prefix=db-")
    assert names(never) == ["db-backup", "db-vacuum"] and never["page"]["matched"] == 2


def test_orders_by_next_launch_and_by_result(cluster: Cluster) -> None:
    by_next = names(jobs(cluster, "sort=next"))
    assert by_next[:3] == ["web-warm", "db-report", "web-purge"]  # 06:02, 06:05, 07:00
    assert by_next[3:] == ["db-backup", "db-vacuum"]  # 03:00 and 04:00 tomorrow
    assert names(jobs(cluster, "sort=result"))[:2] == ["db-report", "web-warm"]  # failed, then skipped


def test_the_unfiltered_answer_is_every_job(cluster: Cluster) -> None:
    everything = jobs(cluster, "")
    assert len(everything["jobs"]) == 5 and everything["page"]["next_after"] is None


@pytest.mark.parametrize("query", ["state=asleep", "limit=0", "limit=x", "sort=random"])
def test_bad_filters_are_400(cluster: Cluster, query: str) -> None:
    assert call(make_api(cluster), "GET", f"/v1/jobs?{query}").status == 400


class Counting:
    """The store, counting the calls made to it by method name."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        got = getattr(self._store, name)
        if not callable(got):
            return got

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return got(*args, **kwargs)

        return counted


def _reads(jobs: int, target: str) -> Counter[str]:
    c = Cluster()
    c.apply(*[job(f"job-{i:03d}", "*/5 * * * *") for i in range(jobs)])
    for i in range(jobs):
        _record(c, f"job-{i:03d}", Outcome.FAILED if i % 3 == 0 else Outcome.SUBMITTED)
    store = Counting(c.store)
    api = Api(
        cast(StateStore, store), LocalCluster("r1", url="http://127.0.0.1:1", epoch=lambda: 1), TokenAuth(None), c.clock
    )
    assert call(api, "GET", target).status == 200
    return store.calls


@pytest.mark.parametrize(
    "target",
    [
        "/v1/jobs?result=failed_to_launch",
        "/v1/jobs?sort=result&limit=5",
        "/v1/jobs",
        "/?result=failed_to_launch",
        "/?sort=result",
        "/",
    ],
)
def test_the_store_is_read_as_often_for_many_jobs_as_for_few(target: str) -> None:
    """A filter or order by last result, or a long page, reads every job's last launches together: one store call,
    not one per job (on ZooKeeper each was several round trips: seconds at 10,000 jobs)."""
    few, many = _reads(6, target), _reads(60, target)
    assert many == few


def _variants() -> list[LaunchRecord]:
    begun = LaunchRecord("beat-x", "beat", T0, RecordState.BEGUN)
    finished = [begun.finish(o, now=T0, reason="r") for o in Outcome]
    return [begun, *finished, *(replace(finished[0], result=r) for r in TaskResult)]


@pytest.mark.parametrize("record", _variants(), ids=lambda r: f"{r.state}-{r.outcome}-{r.result}")
def test_the_result_filter_means_the_word_the_row_shows(record: LaunchRecord) -> None:
    assert record.word == record_word(record.to_bytes()) == result_of({"last_launch": record.to_dict()})
    assert result_of({"last_launch": None}) == "none"


def test_a_spec_is_compiled_once_not_at_every_request(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    """The unpaged answer's broken-spec check is remembered per spec version, as the filters' is: compiling
    10,000 specs cost a second per request."""
    compiled: list[str] = []
    original = cache.compile_job
    monkeypatch.setattr(cache, "compile_job", lambda stored: compiled.append(stored.name) or original(stored))
    api = make_api(cluster)
    with TestClient(create_app(api)) as client:
        assert client.get("/v1/jobs").status_code == 200
        assert sorted(compiled) == sorted(cluster.store.specs)
        compiled.clear()
        assert client.get("/v1/jobs").status_code == 200 and client.get("/?state=enabled").status_code == 200
        assert compiled == []


def test_a_page_reads_the_states_and_results_of_its_own_jobs_only(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not every job's (10,000 decoded per request); the order by next launch needs them all."""
    asked: list[tuple[str, list[str] | None]] = []
    for method in ("read_job_states", "read_job_results"):
        original = getattr(cluster.store, method)

        def counted(jobs: Any = None, method: str = method, original: Any = original) -> Any:
            asked.append((method, None if jobs is None else sorted(jobs)))
            return original(jobs)

        monkeypatch.setattr(cluster.store, method, counted)
    page = ["db-backup", "db-report"]
    assert names(jobs(cluster, "limit=2")) == page
    assert asked == [("read_job_states", page), ("read_job_results", page)]
    asked.clear()
    assert names(jobs(cluster, "limit=2&sort=next")) == ["web-warm", "db-report"]
    assert asked == [("read_job_states", None), ("read_job_results", ["db-report", "web-warm"])]

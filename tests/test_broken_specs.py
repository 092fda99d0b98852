"""A stored spec the scheduler cannot compile is never silent: status (CLI, API, page) shows the job broken with the
reason, a metric counts broken specs, and the leader goes on scheduling the others.

Broken specs are written straight into a store, past validation, as an older version or a hand edit would leave
them: the issue's case is `task.timeout: -30`, which an older `apply` stored as '-1d23h59m30s'.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from cronframework import metrics
from cronframework.abc import StateStore
from cronframework.api import Api, LocalCluster, TokenAuth
from cronframework.catalog.apply import spec_document
from cronframework.catalog.cache import SpecCache, compile_job, spec_problem
from cronframework.cli import main
from cronframework.ops.status import collect
from cronframework.records import JobState, JsonDocument, SpecChange, StoredSpec
from cronframework.store.sqlite import SqliteStore
from cronframework.testing import FakeFence
from tests.leader_harness import T0, Cluster, job
from tests.test_api import Response, call

OLD_NEGATIVE_TIMEOUT = {
    "schedule": "* * * * *",
    "backend": "fake",
    "task": {"command": ["/bin/true"], "timeout": "-1d23h59m30s"},
}


def put(store: StateStore, name: str, document: dict[str, Any] | None) -> None:
    current = store.read_specs().get(name)
    store.write_specs([SpecChange(name, document, current.version if current else None)])


def broken_gauge() -> float:
    return metrics.REGISTRY.get_sample_value("cronframework_broken_specs") or 0.0


@pytest.fixture
def cluster() -> Cluster:
    c = Cluster()
    c.apply(job("good"))
    put(c.store, "bad", OLD_NEGATIVE_TIMEOUT)
    # the leader scheduled it once, when it was still valid: that stale next instant must not show
    c.store.put_job_states(FakeFence(), [JobState("bad", T0 + timedelta(minutes=1))])
    return c


def by_job(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["job"]: item for item in status["jobs"]}


def test_spec_problem_names_the_field_and_is_none_for_a_good_spec(cluster: Cluster) -> None:
    specs = cluster.store.read_specs()
    assert spec_problem(specs["good"]) is None
    problem = spec_problem(specs["bad"])
    assert problem is not None and "'task.timeout'" in problem and "\n" not in problem


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"schedule": "61 * * * *", "task": {"command": ["x"]}}, "'schedule'"),
        ({"schedule": "@every 1m", "task": {"command": ["x"]}, "retention": {"age": "0s"}}, "'retention.age'"),
        ({"task": {"command": ["x"]}}, "'schedule'"),
        ({"schedule": "@every 1m", "task": {"command": ["x"]}, "surprise": 1}, "'surprise'"),
    ],
)
def test_spec_problem_covers_every_kind_of_refusal(document: dict[str, Any], field: str) -> None:
    problem = spec_problem(StoredSpec("j", document, 1))
    assert problem is not None and field in problem


def test_spec_problem_never_shows_a_tasks_environment_or_command() -> None:
    document = {**OLD_NEGATIVE_TIMEOUT, "task": {"command": ["run", 7], "env": {"TOKEN": 123456789}}}
    problem = spec_problem(StoredSpec("j", document, 1))
    assert problem is not None and "'task.env.TOKEN'" in problem and "'task.command[1]'" in problem
    assert "123456789" not in problem


def test_status_document_marks_the_job_broken_with_the_reason(cluster: Cluster) -> None:
    jobs = by_job(collect(cluster.store, []))
    assert jobs["bad"]["state"] == "broken" and "'task.timeout'" in jobs["bad"]["problem"]
    assert jobs["bad"]["next"] is None
    assert (jobs["good"]["state"], jobs["good"]["problem"]) == ("enabled", None)


def test_state_is_paused_or_disabled_for_jobs_that_compile() -> None:
    c = Cluster()
    c.apply(job("off", enabled=False), job("held"))
    c.store.set_paused("held", True)
    jobs = by_job(collect(c.store, []))
    assert (jobs["off"]["state"], jobs["held"]["state"]) == ("disabled", "paused")


def test_spec_cache_counts_broken_specs_and_forgets_fixed_and_deleted_ones(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    cache = SpecCache(cluster.store)
    with caplog.at_level(logging.ERROR, "cronframework.jobs"):
        assert set(cache.refresh()) == {"good"}
        cache.refresh()
    assert "'task.timeout'" in cache.invalid["bad"] and broken_gauge() == 1
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1  # once per stored version

    put(cluster.store, "bad", spec_document(job("bad")))
    assert set(cache.refresh()) == {"good", "bad"} and cache.invalid == {} and broken_gauge() == 0

    put(cluster.store, "bad", OLD_NEGATIVE_TIMEOUT)
    cache.refresh()
    assert broken_gauge() == 1
    put(cluster.store, "bad", None)
    cache.refresh()
    assert cache.invalid == {} and broken_gauge() == 0


def test_the_leader_schedules_the_others_around_a_broken_spec(cluster: Cluster) -> None:
    session, _ = cluster.leader()
    session.promote()
    cluster.run_for(session, 180)
    assert [outcome for _, outcome, _ in cluster.outcomes("good")] and cluster.outcomes("bad") == []


# -- the CLI ------------------------------------------------------------------------------------------------------
@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    store = SqliteStore(tmp_path / "state.sqlite")
    try:
        put(store, "good", spec_document(job("good")))
        put(store, "bad", OLD_NEGATIVE_TIMEOUT)
    finally:
        store.close()
    return tmp_path


def test_status_cli_table_flags_the_job_and_gives_the_reason(
    state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", "--state-dir", str(state_dir), "--no-lookup"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith(("good", "bad"))}
    assert "(broken)" in rows["bad"] and "(broken)" not in rows["good"]
    [reason] = [line for line in out.splitlines() if line.startswith("broken: bad:")]
    assert "'task.timeout'" in reason


def test_status_cli_json_has_state_and_problem(state_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--state-dir", str(state_dir), "--no-lookup", "--json"]) == 0
    jobs = by_job(json.loads(capsys.readouterr().out))
    assert jobs["bad"]["state"] == "broken" and "'task.timeout'" in jobs["bad"]["problem"]
    assert jobs["good"]["state"] == "enabled"


# -- the API and the page -----------------------------------------------------------------------------------------
def get(cluster: Cluster, target: str) -> Response:
    api = Api(
        cluster.store, LocalCluster("r1", url="http://127.0.0.1:1", epoch=lambda: 1), TokenAuth(None), cluster.clock
    )
    return call(api, "GET", target)


def test_api_jobs_and_job_detail_show_the_broken_job(cluster: Cluster) -> None:
    listed = by_job(json.loads(get(cluster, "/v1/jobs").body))
    assert listed["bad"]["state"] == "broken"
    response = get(cluster, "/v1/jobs/bad")
    assert response.status == 200
    detail = json.loads(response.body)
    assert detail["state"] == "broken" and "'task.timeout'" in detail["problem"]
    assert detail["next_launches"] == [] and (detail["schedule"], detail["timezone"]) == ("* * * * *", "UTC")


def test_status_page_and_job_page_show_the_reason(cluster: Cluster) -> None:
    index = get(cluster, "/").body.decode()
    assert 'class="state broken"' in index and "task.timeout" in index
    page = get(cluster, "/jobs/bad")
    assert page.status == 200 and "not scheduled" in page.body.decode() and "task.timeout" in page.body.decode()


@pytest.mark.parametrize(
    "document",
    [
        {"schedule": "? * * * *", "backend": "noop", "task": {"command": ["/bin/true"]}, "timeout": None},
        {"schedule": "@every 90s", "backend": "noop", "task": {"command": ["x"], "timeout": "1h"}, "name": "other"},
        {"schedule": "0 3 * * *", "timezone": "Europe/Berlin", "backend": "noop", "task": {"image": "i"}},
    ],
)
def test_a_spec_compiled_from_its_stored_json_is_the_one_compiled_from_the_document(document: dict[str, Any]) -> None:
    document = {k: v for k, v in document.items() if k != "timeout"}
    raw = json.dumps(document).encode()
    from_json = compile_job(StoredSpec("nightly", JsonDocument(raw, "spec nightly"), 3))
    from_dict = compile_job(StoredSpec("nightly", document, 3))
    assert from_json == from_dict and from_json.spec.name == "nightly"  # the store's name wins, as with the dict


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b'{"schedule": "* * * * *", "backend": "noop", "task": {"command": ["x"], "timeout": "-30s"}}', "timeout"),
        (b'{"schedule": "* * * * *", "task": }', "JSON"),
        (b"{}", "schedule"),
    ],
)
def test_a_stored_json_spec_that_does_not_compile_is_reported_broken(raw: bytes, problem: str) -> None:
    reason = spec_problem(StoredSpec("nightly", JsonDocument(raw, "spec nightly"), 3))
    assert reason is not None and problem.lower() in reason.lower()

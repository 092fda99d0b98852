"""The status page: times as people read them (the job's zone, relative, to the second), search, filters and pages
at scale, result fields shown when the documents carry them, and the page benchmark at its smoke size."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from benchmarks import bench_page
from cronframework.api import humane, page
from cronframework.api.selection import JobQuery
from cronframework.records import LaunchRecord, Outcome, RecordState
from tests.leader_harness import T0, Cluster, job
from tests.test_api import call, make_api

NOW = datetime(2026, 11, 25, 6, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("offset", "text"),
    [
        (timedelta(0), "now"),
        (timedelta(seconds=42), "in 42 s"),
        (timedelta(minutes=5, seconds=59), "in 5 min"),
        (-timedelta(hours=2, minutes=10), "2 h ago"),
        (-timedelta(days=3, hours=5), "3 d ago"),
    ],
)
def test_relative_times(offset: timedelta, text: str) -> None:
    assert humane.relative(NOW + offset, NOW) == text


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.3, "0.3 s"), (42, "42 s"), (65, "1 min 5 s"), (3725, "1 h 2 min"), (None, "")]
)
def test_durations(seconds: float | None, text: str) -> None:
    assert humane.duration(seconds) == text


def test_times_are_in_the_jobs_zone_to_the_second() -> None:
    assert humane.local(NOW, "Europe/Paris") == "2026-11-25 07:00:00 CET"
    assert humane.local(NOW, "America/New_York") == "2026-11-25 01:00:00 EST"
    assert humane.local(NOW, "Not/AZone") == "2026-11-25 06:00:00 UTC"


def test_a_duration_comes_from_the_result_when_it_says(monkeypatch: pytest.MonkeyPatch) -> None:
    assert humane.duration_of({"result": "succeeded", "duration": 12.5}) == 12.5
    started = {"started_at": "2026-11-25T06:00:00+00:00", "ended_at": "2026-11-25T06:01:05+00:00"}
    assert humane.duration_of({"result": "failed", **started}) == 65.0
    # a record's own begun/finished are the scheduler's sync points, not the run: no duration from them
    assert humane.duration_of({"begun_at": started["started_at"], "finished_at": started["ended_at"]}) is None


# -- the rendered page ----------------------------------------------------------------------------------------------
@pytest.fixture
def many() -> Cluster:
    c = Cluster()
    c.apply(
        *[job(f"job-{i:03d}", "*/5 * * * *") for i in range(250)], job("paris", "30 2 * * *", timezone="Europe/Paris")
    )
    session, _ = c.leader()
    session.promote()
    c.run_for(session, 300)
    return c


def html(c: Cluster, target: str) -> str:
    response = call(make_api(c), "GET", target)
    assert response.status == 200, response.body
    return response.body.decode()


def rows(text: str) -> list[str]:
    return re.findall(r'<tr data-job="([^"]+)"', text)


def test_the_list_is_paged_by_100_with_links_both_ways(many: Cluster) -> None:
    first = html(many, "/")
    assert rows(first) == [f"job-{i:03d}" for i in range(100)]
    assert "1&ndash;100 of 251" in first and 'rel="next" href="/?offset=100"' in first and 'rel="prev"' not in first
    last = html(many, "/?offset=200")
    assert rows(last)[-1] == "paris" and len(rows(last)) == 51 and 'rel="next"' not in last
    assert 'rel="prev" href="/?offset=100"' in last


def test_search_and_filters_keep_each_other_in_the_links(many: Cluster) -> None:
    found = html(many, "/?q=job-1&sort=next")
    assert rows(found) == [f"job-{i:03d}" for i in range(100, 200)]
    assert 'value="job-1"' in found and "(251 jobs in all)" in found
    many.store.set_paused("job-007", True)
    assert rows(html(many, "/?state=paused")) == ["job-007"]
    assert rows(html(many, "/?q=zzz")) == [] and "no jobs match" in html(many, "/?q=zzz")


def test_rows_show_zone_times_relative_times_results_and_the_recent_strip(many: Cluster) -> None:
    text = html(many, "/?q=paris")
    assert "2026-11-26 02:30:00 CET" in text and "in 19 h" in text  # 01:30Z tomorrow, from 06:05Z
    text = html(many, "/?q=job-000")
    assert "submitted" in text and text.count('class="run ok"') == len(many.store.history("job-000", 10)) == 1


def test_result_fields_are_shown_when_the_documents_carry_them() -> None:
    last = {"name": "beat-x", "job": "beat", "scheduled": "2026-11-25T05:59:00+00:00", "state": "finished"}
    job_doc: dict[str, Any] = {
        "job": "beat",
        "enabled": True,
        "paused": False,
        "state": "enabled",
        "problem": None,
        "next": None,
        "last_launch": {**last, "outcome": "submitted", "result": "failed", "exit_code": 3, "duration": 65},
        "last_success": "2026-11-25T05:00:00+00:00",
    }
    document = {"leader": None, "replicas": [], "takeover": None, "jobs": [job_doc], "page": _page(1)}
    text = page.index(document, {"beat": "UTC"}, {"beat": [job_doc["last_launch"]]}, JobQuery(limit=100), NOW)
    assert '<span class="badge bad">failed</span>' in text and "1 min 5 s" in text
    assert "last success" in text and "1 h ago" in text and 'class="run bad"' in text
    plain = {**job_doc, "last_launch": {**last, "outcome": "submitted"}}
    del plain["last_success"]
    text = page.index({**document, "jobs": [plain]}, {}, {}, JobQuery(limit=100), NOW)
    assert "last success" not in text and '<span class="badge ok">submitted</span>' in text


def _page(count: int) -> dict[str, Any]:
    return {"total": count, "matched": count, "limit": 100, "next_after": None}


def test_a_launch_page_names_its_job_and_refuses_another_jobs_launch(many: Cluster) -> None:
    name = many.store.history("job-001", 1)[0].name
    text = html(many, f"/jobs/job-001/launches/{name}")
    assert (
        name in text and 'href="/jobs/job-001"' in text and f'data-url="/v1/jobs/job-001/launches/{name}/logs"' in text
    )
    assert call(make_api(many), "GET", f"/jobs/job-002/launches/{name}").status == 404


def test_reasons_and_names_are_escaped_everywhere(many: Cluster) -> None:
    record = LaunchRecord(
        "job-001-x", "job-001", T0, RecordState.FINISHED, outcome=Outcome.SKIPPED, reason="<img src=x onerror=1>"
    )
    many.store.records[record.name] = record
    for target in ("/jobs/job-001", "/jobs/job-001/launches/job-001-x"):
        text = html(many, target)
        assert "<img src=x" not in text and "&lt;img src=x onerror=1&gt;" in text


# -- the benchmark, at its smoke size -------------------------------------------------------------------------------
def test_the_page_benchmark_runs_at_its_smoke_size() -> None:
    figures = bench_page.run(300, 2, 1, ("sqlite",))
    views = figures["sqlite"]["views_ms"]
    assert set(views) == set(bench_page.VIEWS)
    assert all(0 < v["median"] <= v["max"] for v in views.values())

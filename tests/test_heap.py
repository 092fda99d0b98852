"""The cyclic collector is kept out of bulk compiles (specs, a promotion's job table) and always comes back."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest

from cronframework.catalog import cache
from cronframework.catalog.cache import Job, SpecCache
from cronframework.engine import job_table
from cronframework.heap import YOUNG_THRESHOLD, gc_paused, tune_collector
from cronframework.records import StoredSpec
from tests.leader_harness import Cluster, job


@pytest.fixture(autouse=True)
def collector_on() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def test_the_collector_is_paused_while_specs_compile_and_on_again_after(monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = Cluster()
    cluster.apply(*[job(f"job-{i}", "*/5 * * * *") for i in range(3)])
    seen: list[bool] = []
    original = cache.compile_job

    def compile_job(stored: StoredSpec) -> Job:
        seen.append(gc.isenabled())
        return original(stored)

    monkeypatch.setattr(cache, "compile_job", compile_job)
    assert sorted(SpecCache(cluster.store).refresh()) == ["job-0", "job-1", "job-2"]
    assert seen == [False, False, False]
    assert gc.isenabled()


def test_the_collector_comes_back_after_an_error_and_stays_off_if_it_was() -> None:
    with pytest.raises(RuntimeError), gc_paused():
        assert not gc.isenabled()
        raise RuntimeError("boom")
    assert gc.isenabled()
    gc.disable()
    with gc_paused():
        pass
    assert not gc.isenabled()


def test_a_promotion_places_its_jobs_with_the_collector_paused(monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = Cluster()
    cluster.apply(job("beat", "*/5 * * * *"))
    seen: list[bool] = []
    original = job_table.load

    def load(*args: Any, **kwargs: Any) -> Any:
        seen.append(gc.isenabled())
        return original(*args, **kwargs)

    monkeypatch.setattr(job_table, "load", load)
    session, _ = cluster.leader()
    session.promote()
    assert seen == [False] and gc.isenabled()


def test_the_scheduler_s_collector_looks_at_the_young_generation_less_often() -> None:
    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        tune_collector()
        assert gc.get_threshold() == (YOUNG_THRESHOLD, 10, 10)
        gc.set_threshold(50_000, 5, 7)
        tune_collector()  # a process tuned further by its operator keeps that
        assert gc.get_threshold() == (50_000, 5, 7)
    finally:
        gc.set_threshold(*before)

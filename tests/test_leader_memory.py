"""What a leader holds stays flat once every job has launched: a per-job table may stay, nothing may grow with each
launch. A leader walks many hours of hourly jobs on a fake clock; the bytes reachable from its session (not entering
the store, the specs, the backend or the clock) are compared between an early hour and a much later one, further
apart than any per-job strip or cache of recent answers could fill up in (`benchmarks memory` measures the same on
real ZooKeeper with tracemalloc)."""

from __future__ import annotations

import gc
import sys
import types
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from cronframework import naming
from cronframework.engine.leader import LeaderSession
from cronframework.launch import LaunchState
from cronframework.records import RECENT_RUNS, TaskResult, _iso_utc
from cronframework.schedule.expression import Schedule, _Cron, parse_schedule
from cronframework.testing import FakeBackend
from tests.leader_harness import Cluster, job

JOBS = 40
_OPAQUE = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.CodeType, Schedule)


def reachable_bytes(roots: Iterable[Any], outside: Iterable[Any]) -> int:
    """sys.getsizeof over everything reachable from `roots`, each object once, never entering `outside`."""
    seen = {id(o) for o in outside}
    total, stack = 0, list(roots)
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, _OPAQUE):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        stack.extend(gc.get_referents(obj))
    return total


def leader_bytes(cluster: Cluster, session: LeaderSession) -> int:
    specs = session._specs
    compiled = [part for j in specs.jobs().values() for part in (j, j.spec, j.spec.name)]
    return reachable_bytes([session], [cluster.store, cluster.backend, cluster.clock, specs, *compiled])


def hourly_cluster() -> tuple[Cluster, LeaderSession]:
    """JOBS jobs on `? * * * *` whose tasks end as soon as they are looked up (each launch gets its result)."""
    cluster = Cluster(backend=FakeBackend(initial_state=LaunchState.SUCCEEDED))
    cluster.apply(*(job(f"mem-{i:02d}", "? * * * *") for i in range(JOBS)))
    session, _ = cluster.leader()
    session.promote()
    return cluster, session


def test_what_a_leader_holds_stays_flat_after_the_first_hours() -> None:
    cluster, session = hourly_cluster()
    cluster.run_for(session, 2 * 3600, step=20)  # a tick every 20 s: each launch on time, each result written
    early = leader_bytes(cluster, session)
    cluster.run_for(session, (RECENT_RUNS + 2) * 3600, step=20)
    late = leader_bytes(cluster, session)
    summary = cluster.store.read_job_results()["mem-00"]
    assert len(summary.recent) == RECENT_RUNS  # the strip is still written in full: it lives in the store
    assert summary.last_result is TaskResult.SUCCEEDED
    assert late - early < JOBS * 16, f"grew {(late - early) / JOBS:.0f} B a job in {RECENT_RUNS} hours"


def test_a_schedule_keeps_only_a_few_recent_answers() -> None:
    """A herd asks each schedule the same two questions; answers about instants long past are never asked again."""
    schedule = parse_schedule("17 * * * *", job="answers")
    at = datetime(2026, 11, 25, tzinfo=UTC)
    for _ in range(24 * 30):
        at = schedule.next_after(at)
    engine = schedule._engine
    assert isinstance(engine, _Cron) and len(engine._recent) <= 4


def test_the_text_of_instants_is_remembered_for_the_last_hour_at_most() -> None:
    """The launch-name stamp and the ISO text of instants are shared by a herd; a day of minutes is not kept."""
    start = datetime(2031, 1, 1, tzinfo=UTC)
    for minute in range(24 * 60):
        instant = start + timedelta(minutes=minute)
        naming.launch_name("text", instant)
        _iso_utc(instant)
    assert naming._stamp.cache_info().currsize <= 64
    assert _iso_utc.cache_info().currsize <= 64

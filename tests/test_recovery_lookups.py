"""Takeover concludes every open launch before its first tick, each with a backend lookup (and often a resubmit).
In the 60-minute Nomad fault run, restores and short-lived leaders left hundreds of them open while the loaded agent
answered in a few tenths of a second: one after the other, a takeover took minutes, most leaders were replaced
before their first tick, and from then on no task result was recorded (2,006 "followed", 1,471 "accounted").
The lookups of one takeover must overlap."""

from __future__ import annotations

import threading

from cronframework.records import Outcome
from tests.leader_harness import Cluster, job
from tests.test_leader import die_after_sync_point_one

OVERLAP = 4


def test_takeover_looks_up_open_launches_side_by_side() -> None:
    cluster = Cluster()
    cluster.apply(*(job(f"j{i}") for i in range(2 * OVERLAP)))
    die_after_sync_point_one(cluster)
    assert len(cluster.store.open_launches()) == 2 * OVERLAP
    together = threading.Barrier(OVERLAP, timeout=5)

    def lookup_waits_for_others(_name: str) -> None:
        together.wait()  # only returns once OVERLAP lookups are in flight at once
        return None

    cluster.backend.fail["lookup"] = lookup_waits_for_others
    second, _ = cluster.leader()
    second.promote()
    assert cluster.store.open_launches() == []
    assert sorted(cluster.backend.submitted) == sorted(f"j{i}-20261125t060100z" for i in range(2 * OVERLAP))
    records = [cluster.store.get_launch(f"j{i}-20261125t060100z") for i in range(2 * OVERLAP)]
    assert all(r is not None and r.outcome is Outcome.SUBMITTED for r in records)

"""`retry:` on a fake clock: a failed run is run again as `<launch>-a<N>`, through both sync points, never past the
job's next instant, and exactly once across a leader that dies between beginning a retry and concluding its run."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from cronframework.errors import LeadershipLost, StateStoreUnavailable
from cronframework.launch import BackendStatus, LaunchState
from cronframework.records import Outcome, ResultBatch, TaskResult
from tests.leader_harness import T0, Cluster, job

FIRST = "flaky-20261125t060000z"


def flaky(**retry: Any) -> Any:
    return job("flaky", "0 * * * *", retry={"attempts": 3, "backoff": "10s", **retry})


def fail(cluster: Cluster, name: str, code: int = 1) -> None:
    now = cluster.clock.now()
    cluster.backend.launches[name] = BackendStatus(LaunchState.FAILED, code, f"exit code {code}", now, now)


def succeed(cluster: Cluster, name: str) -> None:
    now = cluster.clock.now()
    cluster.backend.launches[name] = BackendStatus(LaunchState.SUCCEEDED, 0, None, now, now)


def leading(cluster: Cluster, *specs: Any) -> Any:
    """A leader that has launched 06:00."""
    cluster.apply(*specs)
    cluster.clock.set(T0 - timedelta(seconds=1))
    session, leadership = cluster.leader()
    session.promote()
    cluster.run_for(session, 1)
    return session, leadership


def test_a_failed_run_is_retried_under_its_own_name_until_it_succeeds() -> None:
    cluster = Cluster()
    session, _ = leading(cluster, flaky())
    fail(cluster, FIRST)
    cluster.run_for(session, 2)  # the result: retry at +10 s
    first = cluster.store.get_launch(FIRST)
    assert first is not None and first.result is TaskResult.FAILED and first.retry_at is not None
    cluster.run_for(session, 10)
    assert cluster.backend.submitted == [FIRST, f"{FIRST}-a2"]
    fail(cluster, f"{FIRST}-a2", 2)
    cluster.run_for(session, 2 + 20)  # backoff doubled
    succeed(cluster, f"{FIRST}-a3")
    cluster.run_for(session, 2)
    runs = cluster.store.history("flaky", limit=10)
    assert [(r.name, r.task_attempt, r.result, r.retry_at) for r in runs] == [
        (f"{FIRST}-a3", 3, TaskResult.SUCCEEDED, None),
        (f"{FIRST}-a2", 2, TaskResult.FAILED, None),
        (FIRST, 1, TaskResult.FAILED, None),
    ]
    assert cluster.store.following_launches() == []
    summary = cluster.store.read_job_results()["flaky"]
    assert summary.failures == 0 and summary.last_failure is None and len(summary.recent) == 3


def test_the_task_sees_its_attempt_number() -> None:
    cluster = Cluster()
    seen: dict[str, str] = {}
    cluster.backend.on_submit = lambda name, launch: seen.update({name: launch.env()["CRONFRAMEWORK_TASK_ATTEMPT"]})
    session, _ = leading(cluster, flaky())
    fail(cluster, FIRST)
    cluster.run_for(session, 12)
    assert seen == {FIRST: "1", f"{FIRST}-a2": "2"}


def test_attempts_are_bounded_and_the_last_failure_counts_once() -> None:
    cluster = Cluster()
    session, _ = leading(cluster, flaky(attempts=2))
    fail(cluster, FIRST)
    cluster.run_for(session, 12)
    fail(cluster, f"{FIRST}-a2")
    cluster.run_for(session, 120)
    assert cluster.backend.submitted == [FIRST, f"{FIRST}-a2"]
    summary = cluster.store.read_job_results()["flaky"]
    assert summary.failures == 1 and summary.last_result is TaskResult.FAILED


def test_a_retry_never_runs_past_the_job_s_next_instant() -> None:
    cluster = Cluster()
    session, _ = leading(cluster, job("often", "* * * * *", retry={"attempts": 5, "backoff": "61s"}))
    first = "often-20261125t060000z"
    fail(cluster, first)
    cluster.run_for(session, 2)
    record = cluster.store.get_launch(first)
    assert record is not None and record.retry_at is None  # 06:00:00 + 61 s is past 06:01
    assert cluster.store.read_job_results()["often"].failures == 1


def test_a_retry_of_a_forbid_job_is_skipped_while_a_later_launch_runs() -> None:
    cluster = Cluster()
    retry = {"attempts": 3, "backoff": "70m", "max_backoff": "2h", "past_next": True}
    session, _ = leading(cluster, job("flaky", "0 * * * *", concurrency="forbid", retry=retry))
    fail(cluster, FIRST)
    cluster.run_for(session, 2)  # the retry is due at 07:10, past 07:00 (past_next)
    cluster.run_for(session, 75 * 60)  # 07:00 launches and still runs at 07:10
    skipped = cluster.store.get_launch(f"{FIRST}-a2")
    assert skipped is not None and skipped.outcome is Outcome.SKIPPED
    assert skipped.reason is not None and "flaky-20261125t070000z is still running" in skipped.reason
    assert cluster.backend.submitted == [FIRST, "flaky-20261125t070000z"]
    first = cluster.store.get_launch(FIRST)
    assert first is not None and first.retry_at is None
    assert cluster.store.read_job_results()["flaky"].failures == 1  # given up: the run's failure is final


def test_a_run_given_up_by_a_write_whose_answer_was_lost_fails_once() -> None:
    """The write that concludes a given-up run applies, then fails: written again, the run is not counted again."""
    cluster = Cluster()
    retry = {"attempts": 3, "backoff": "70m", "max_backoff": "2h", "past_next": True}
    session, _ = leading(cluster, job("flaky", "0 * * * *", concurrency="forbid", retry=retry))
    real, lost = cluster.store.record_results, []

    def answer_lost_when_concluded(fence: Any, batch: ResultBatch) -> None:
        real(fence, batch)
        if not lost and any(r.name == FIRST and r.retry_at is None for r in batch.records):
            lost.append(True)
            raise StateStoreUnavailable("ZooKeeper connection lost while recording task results")

    cluster.store.record_results = answer_lost_when_concluded  # type: ignore[method-assign]
    fail(cluster, FIRST)
    cluster.run_for(session, 2)
    cluster.run_for(session, 75 * 60)  # the retry at 07:10 is skipped (07:00 runs): the run is given up
    assert lost
    summary = cluster.store.read_job_results()["flaky"]
    assert summary.failures == 1 and summary.last_launch == FIRST


def test_a_leader_dying_after_beginning_a_retry_does_not_start_it_twice() -> None:
    cluster = Cluster()
    session, leadership = leading(cluster, flaky())
    fail(cluster, FIRST)
    cluster.run_for(session, 2)
    real = cluster.store.record_results

    def dies(fence: Any, batch: ResultBatch) -> None:
        leadership.active = False
        raise LeadershipLost("killed after the retry's sync point one")

    cluster.store.record_results = dies  # type: ignore[method-assign]
    with pytest.raises(LeadershipLost):
        cluster.run_for(session, 10)
    cluster.store.record_results = real  # type: ignore[method-assign]
    retry = cluster.store.get_launch(f"{FIRST}-a2")
    assert retry is not None and retry.outcome is Outcome.SUBMITTED
    first = cluster.store.get_launch(FIRST)
    assert first is not None and first.retry_at is not None  # its conclusion died with the leader
    heir, _ = cluster.leader()
    heir.promote()
    cluster.run_for(heir, 30)
    assert cluster.backend.submitted == [FIRST, f"{FIRST}-a2"]
    first = cluster.store.get_launch(FIRST)
    assert first is not None and first.retry_at is None
    assert [r.name for r in cluster.store.following_launches()] == [f"{FIRST}-a2"]


def test_a_leader_dying_before_beginning_a_due_retry_leaves_it_to_the_next_one() -> None:
    cluster = Cluster()
    session, leadership = leading(cluster, flaky())
    fail(cluster, FIRST)
    cluster.run_for(session, 2)
    leadership.active = False
    heir, _ = cluster.leader()
    heir.promote()
    cluster.run_for(heir, 12)
    assert cluster.backend.submitted == [FIRST, f"{FIRST}-a2"]

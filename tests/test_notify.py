"""Webhook notifications, end to end in one process: a leader on the fake clock, the in-memory store, and a real HTTP
receiver on loopback. What a result, a skip, a failed launch or an overdue job raises is written with it into the
outbox, POSTed signed with an idempotency key, retried when the receiver fails, and kept undeliverable when it
cannot be delivered; nothing is lost when the leader dies before the POST."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from cronframework import metrics
from cronframework.engine.notify import NotifyConfig
from cronframework.errors import LeadershipLost, PermanentBackendError
from cronframework.launch import BackendStatus, LaunchState
from cronframework.ops.status import collect
from cronframework.records import NoticeState, TaskResult
from tests.leader_harness import T0, Cluster, job
from tests.webhook_receiver import Receiver

SECRET = "hook-s3cret"
FIRST = "nightly-20261125t060100z"
FAST = NotifyConfig(attempts=3, backoff=timedelta(milliseconds=10), max_backoff=timedelta(milliseconds=40), timeout=0.5)


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CF_TEST_HOOK_SECRET", SECRET)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    yield hook
    hook.stop()


def nightly(url: str, events: list[str] | None = None, **fields: Any) -> Any:
    hook = {"url": url, "secret_env": "CF_TEST_HOOK_SECRET", **({"events": events} if events else {})}
    return job("nightly", notify=[hook], **fields)


def leading(cluster: Cluster, *specs: Any, seconds: float = 60) -> Any:
    cluster.apply(*specs)
    session, leadership = cluster.leader(notify=FAST)
    session.promote()
    cluster.run_for(session, seconds)
    return session, leadership


def ends(cluster: Cluster, name: str, state: LaunchState, code: int = 0) -> None:
    now = cluster.clock.now()
    cluster.backend.launches[name] = BackendStatus(
        state, code, None if state is LaunchState.SUCCEEDED else "exit 3", now, now
    )


def test_a_failed_result_is_posted_signed_with_its_idempotency_key(cluster: Cluster, receiver: Receiver) -> None:
    session, _ = leading(cluster, nightly(receiver.url))
    ends(cluster, FIRST, LaunchState.FAILED, 3)
    cluster.run_for(session, 2)
    [got] = receiver.delivered()
    assert got.path == "/hooks/t0ken" and got.signed_with(SECRET) and not got.signed_with("another")
    assert got.headers["Idempotency-Key"] == f"{FIRST}:failed"
    assert got.headers["X-Cronframework-Event"] == "failed"
    body = got.json
    assert (body["launch"], body["result"], body["exit_code"], body["job"]) == (FIRST, "failed", 3, "nightly")
    assert body["text"].startswith("cronframework: nightly failed") and FIRST in body["text"]  # a chat tool's line
    assert cluster.store.read_outbox() == []


def test_a_success_after_failures_is_a_recovery(cluster: Cluster, receiver: Receiver) -> None:
    session, _ = leading(cluster, nightly(receiver.url, ["failed", "succeeded", "recovered"]))
    ends(cluster, FIRST, LaunchState.FAILED, 1)
    cluster.run_for(session, 60)
    ends(cluster, "nightly-20261125t060200z", LaunchState.SUCCEEDED)
    cluster.run_for(session, 2)
    assert receiver.keys() == [
        f"{FIRST}:failed",
        "nightly-20261125t060200z:succeeded",
        "nightly-20261125t060200z:recovered",
    ]


def test_a_receiver_that_answers_500_is_retried_with_the_same_key(cluster: Cluster) -> None:
    flaky = Receiver(statuses=[500, 503])
    try:
        session, _ = leading(cluster, nightly(flaky.url))
        ends(cluster, FIRST, LaunchState.FAILED, 3)
        cluster.run_for(session, 2)
        assert [r.status for r in flaky.received] == [500, 503, 200]
        assert {r.headers["Idempotency-Key"] for r in flaky.received} == {f"{FIRST}:failed"}
        assert all(r.signed_with(SECRET) for r in flaky.received)
        assert cluster.store.read_outbox() == []
    finally:
        flaky.stop()


@pytest.mark.parametrize(
    ("statuses", "delay", "posts"),
    [
        ([500, 500, 500], 0.0, 3),  # always failing: the bounded retries run out
        ([404], 0.0, 1),  # refused for good: not retried
        ([], 1.0, 3),  # slower than the POST timeout (0.5 s) every time
    ],
)
def test_what_cannot_be_delivered_is_kept_undeliverable_in_status_and_a_metric(
    cluster: Cluster, statuses: list[int], delay: float, posts: int
) -> None:
    bad = Receiver(statuses=list(statuses), delay=delay)
    try:
        session, _ = leading(cluster, nightly(bad.url))
        ends(cluster, FIRST, LaunchState.FAILED, 3)
        cluster.run_for(session, 2)
        assert len(bad.received) == posts if not delay else len(bad.received) <= posts
    finally:
        bad.stop()
    [kept] = cluster.store.read_outbox()
    assert kept.state is NoticeState.UNDELIVERABLE and kept.attempts == posts and kept.last_error
    notifications = collect(cluster.store, [])["notifications"]
    assert notifications["undeliverable"] == 1 and notifications["pending"] == 0
    [shown] = notifications["recent_undeliverable"]
    assert shown["key"] == f"{FIRST}:failed" and "t0ken" not in shown["url"]  # the URL's path may hold a token
    assert metrics.REGISTRY.get_sample_value("cronframework_notifications_undeliverable") == 1


def test_a_receiver_that_is_down_leaves_the_notice_undeliverable(cluster: Cluster) -> None:
    down = Receiver()
    url = down.url
    down.stop()
    session, _ = leading(cluster, nightly(url))
    ends(cluster, FIRST, LaunchState.FAILED, 3)
    cluster.run_for(session, 2)
    [kept] = cluster.store.read_outbox()
    assert kept.state is NoticeState.UNDELIVERABLE and kept.attempts == FAST.attempts


def test_a_leader_killed_before_the_post_loses_nothing(cluster: Cluster, receiver: Receiver) -> None:
    session, leadership = leading(cluster, nightly(receiver.url))
    ends(cluster, FIRST, LaunchState.FAILED, 3)

    def killed() -> None:
        leadership.active = False
        raise LeadershipLost("kill -9 after the result's transaction, before any POST")

    session._outbox.after_tick = killed  # type: ignore[method-assign]
    with pytest.raises(LeadershipLost):
        cluster.run_for(session, 2)
    [pending] = cluster.store.read_outbox()  # written with the result
    assert pending.state is NoticeState.PENDING and receiver.received == []
    heir, _ = cluster.leader(notify=FAST)
    heir.promote()
    assert receiver.keys() == [f"{FIRST}:failed"]
    assert cluster.store.read_outbox() == []


def test_skips_notify_missed_and_skipped_but_never_a_pause(cluster: Cluster, receiver: Receiver) -> None:
    spec = nightly(receiver.url, ["missed", "skipped"], concurrency="forbid")
    cluster.apply(spec)
    first, _ = cluster.leader(notify=FAST)
    first.promote()  # places the job at 06:01
    cluster.clock.set(T0 + timedelta(minutes=10))  # no leader ran 06:01 .. 06:10: missed
    session, _ = cluster.leader(notify=FAST)
    session.promote()
    cluster.run_for(session, 60)  # 06:11 launches; 06:12 ... is skipped while it runs (forbid)
    cluster.run_for(session, 60)
    events = {r.headers["X-Cronframework-Event"] for r in receiver.delivered()}
    assert events == {"missed", "skipped"}
    missed = [r.json for r in receiver.delivered() if r.json["event"] == "missed"]
    assert missed and all(m["outcome"] == "skipped" and m["reason"].startswith("missed") for m in missed)
    before = len(receiver.received)
    cluster.store.set_paused("nightly", True)
    cluster.run_for(session, 120)
    assert len(receiver.received) == before


def test_a_failed_launch_is_notified(cluster: Cluster, receiver: Receiver) -> None:
    cluster.backend.fail["submit"] = PermanentBackendError("image not found: etl:3")
    leading(cluster, nightly(receiver.url))
    [got] = receiver.delivered()
    assert got.headers["Idempotency-Key"] == f"{FIRST}:failed_to_launch"
    assert got.json["reason"] == "failed to launch: image not found: etl:3"


def test_no_success_within_the_expected_time_is_overdue_once_until_a_success(
    cluster: Cluster, receiver: Receiver
) -> None:
    spec = nightly(receiver.url, ["overdue"], expect={"success_within": "10m"})
    session, _ = leading(cluster, spec, seconds=11 * 60)  # every run still running: no success
    [got] = receiver.delivered()
    assert got.headers["X-Cronframework-Event"] == "overdue" and got.json["job"] == "nightly"
    nightly_status = next(j for j in collect(cluster.store, [])["jobs"] if j["job"] == "nightly")
    assert nightly_status["overdue_since"] is not None
    assert metrics.REGISTRY.get_sample_value("cronframework_job_overdue", {"job": "nightly"}) == 1
    cluster.run_for(session, 10 * 60)
    assert len(receiver.delivered()) == 1  # one per spell
    ends(cluster, FIRST, LaunchState.SUCCEEDED)
    cluster.run_for(session, 2)
    assert cluster.store.read_job_results()["nightly"].overdue_since is None
    assert metrics.REGISTRY.get_sample_value("cronframework_job_overdue", {"job": "nightly"}) == 0


def test_an_overdue_job_keeps_its_last_runs_and_a_new_leader_does_not_raise_it_again(
    cluster: Cluster, receiver: Receiver
) -> None:
    """The overdue check writes a summary the leader read back from the store, not one it kept: the strip of last
    runs and the failures stay; the heir's check starts from what the store says (overdue already)."""
    spec = nightly(receiver.url, ["overdue"], expect={"success_within": "10m"})
    session, _ = leading(cluster, spec)
    ends(cluster, FIRST, LaunchState.FAILED, 1)
    cluster.run_for(session, 10 * 60)
    summary = cluster.store.read_job_results()["nightly"]
    assert summary.overdue_since is not None and summary.failures == 1
    assert [r.launch for r in summary.recent] == [FIRST]
    heir, _ = cluster.leader(notify=FAST)
    heir.promote()
    cluster.run_for(heir, 5 * 60)
    assert [r.headers["X-Cronframework-Event"] for r in receiver.delivered()] == ["overdue"]
    assert cluster.store.read_job_results()["nightly"] == summary


def test_a_job_failing_n_times_in_a_row_is_suspended_with_the_reason_in_status(cluster: Cluster) -> None:
    session, _ = leading(cluster, job("nightly", suspend_after_failures=2), seconds=120)
    ends(cluster, FIRST, LaunchState.FAILED, 1)
    cluster.run_for(session, 2)
    assert cluster.store.read_paused() == set()
    ends(cluster, "nightly-20261125t060200z", LaunchState.FAILED, 1)
    cluster.run_for(session, 2)
    assert cluster.store.read_paused() == {"nightly"}
    status = next(j for j in collect(cluster.store, [])["jobs"] if j["job"] == "nightly")
    assert status["state"] == "paused" and status["suspended"].startswith("suspended after 2 failed results")
    cluster.run_for(session, 60)
    assert cluster.store.history("nightly", limit=1)[0].reason == "paused"
    cluster.store.set_paused("nightly", False)  # resumed: the status no longer says suspended
    status = next(j for j in collect(cluster.store, [])["jobs"] if j["job"] == "nightly")
    assert status["suspended"] is None
    assert cluster.store.read_job_results()["nightly"].last_result is TaskResult.FAILED


@pytest.fixture
def cluster() -> Cluster:
    return Cluster()

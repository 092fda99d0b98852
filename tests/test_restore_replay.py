"""A store restored from a snapshot, on a fake clock: the old cluster went on launching after the snapshot was taken,
and the restored cluster, replaying from the snapshot's watermarks, must find those launches by name rather than
record them skipped -- a forbid job's superseded instants, a default job's missed ones, and a retry whose time
passed while no leader ran."""

from __future__ import annotations

from datetime import timedelta

from cronframework.launch import BackendStatus, LaunchState
from cronframework.ops.snapshot import capture, restore
from cronframework.records import LaunchRecord, Outcome
from cronframework.store.sqlite import SoleLeader
from cronframework.testing import MemoryStore
from tests.leader_harness import T0, Cluster, job

LAUNCHED = (Outcome.SUBMITTED, Outcome.ALREADY_EXISTED)


def fail_active(cluster: Cluster, job_name: str) -> None:
    """Every run of `job_name` the backend has ends failed (now, if it had not yet)."""
    now = cluster.clock.now()
    for name, status in cluster.backend.launches.items():
        if name.startswith(f"{job_name}-") and status.state is not LaunchState.FAILED:
            cluster.backend.launches[name] = BackendStatus(LaunchState.FAILED, 1, "exit code 1", now, now)


def run(cluster: Cluster, session: object, seconds: int, failing: str = "flaky") -> None:
    for _ in range(seconds):
        cluster.clock.advance(1)
        session.tick()  # type: ignore[attr-defined]
        fail_active(cluster, failing)


def restored(cluster: Cluster, snapshot: object) -> None:
    """The ensemble's data lost: a new, empty store gets the snapshot (docs/backups.md), at the clock's now."""
    cluster.store = MemoryStore(cluster.clock)
    restore(cluster.store, SoleLeader(epoch=0, replica="import"), snapshot, now=cluster.clock.now())  # type: ignore[arg-type]


def records(cluster: Cluster, *jobs: str) -> dict[str, LaunchRecord]:
    return {r.name: r for j in jobs for r in cluster.store.history(j, limit=10_000)}


def test_what_the_old_cluster_launched_after_the_snapshot_is_found_by_name_not_recorded_skipped() -> None:
    cluster = Cluster()
    cluster.backend.initial_state = LaunchState.SUCCEEDED  # every task ends at once: forbid never waits
    slow = job("slow", "*/5 * * * * *", concurrency="forbid", catchup={"policy": "all", "max": 100})
    plain = job("plain", "*/5 * * * * *")  # catchup: none, the default
    flaky = job("flaky", "*/20 * * * * *", retry={"attempts": 3, "backoff": "3s", "max_backoff": "3s"})
    cluster.apply(slow, plain, flaky)
    cluster.clock.set(T0 - timedelta(seconds=1))
    old, _ = cluster.leader()
    old.promote()
    run(cluster, old, 3)  # 06:00 launched, failed, its result written with a retry to come
    first = cluster.store.get_launch("flaky-20261125t060000z")
    assert first is not None and first.retry_at is not None, "the snapshot holds a run whose retry is to come"
    snapshot = capture(cluster.store, source="/cf", now=cluster.clock.now())
    run(cluster, old, 14)  # the old cluster goes on: 06:05, 06:10, 06:15, and the retries of 06:00
    old_launches = set(cluster.backend.launches)
    assert {"slow-20261125t060010z", "flaky-20261125t060000z-a2", "flaky-20261125t060000z-a3"} <= old_launches
    cluster.clock.advance(10)  # the ensemble lost, no leader, then the operator's restore
    restored(cluster, snapshot)
    new, _ = cluster.leader()
    new.promote()
    run(cluster, new, 3)
    after = records(cluster, "slow", "plain", "flaky")
    skipped_though_launched = sorted(n for n, r in after.items() if n in old_launches and r.outcome not in LAUNCHED)
    assert skipped_though_launched == []
    decided_again = {n: r.outcome for n, r in after.items() if n in old_launches and r.epoch == cluster.epoch}
    assert decided_again and set(decided_again.values()) == {Outcome.ALREADY_EXISTED}, decided_again
    assert {n for n in old_launches if n.startswith("flaky")} <= set(after), "every attempt the old cluster made"
    assert len(cluster.backend.submitted) == len(set(cluster.backend.submitted)), "nothing launched twice"


def test_a_replayed_instant_the_backend_cannot_answer_about_waits_for_its_answer() -> None:
    """The lookup fails (the 60-minute Docker run: dockerd's socket gone, flaky-...180245z-a2 recorded skipped though
    the old cluster had run it): the job's replayed instants are not decided on a guess; they wait, with the job's
    watermark, until the backend answers, and are then recorded as what it has. Other jobs go on meanwhile."""
    from cronframework.errors import TransientBackendError

    cluster = Cluster()
    cluster.backend.initial_state = LaunchState.SUCCEEDED
    cluster.apply(
        job("slow", "*/5 * * * * *", concurrency="forbid", catchup={"policy": "all", "max": 100}),
        job("other", "*/5 * * * * *", concurrency="forbid", catchup={"policy": "all", "max": 100}),
    )
    cluster.clock.set(T0 - timedelta(seconds=1))
    old, _ = cluster.leader()
    old.promote()
    run(cluster, old, 2)
    snapshot = capture(cluster.store, source="/cf", now=cluster.clock.now())
    run(cluster, old, 10)
    cluster.clock.advance(5)
    restored(cluster, snapshot)
    cluster.backend.fail["lookup"] = lambda name: TransientBackendError("down") if name.startswith("slow-") else None
    new, _ = cluster.leader()
    new.promote()
    run(cluster, new, 2)
    assert "slow-20261125t060005z" not in records(cluster, "slow"), "not decided without the backend's answer"
    assert records(cluster, "other")["other-20261125t060005z"].outcome is Outcome.ALREADY_EXISTED
    del cluster.backend.fail["lookup"]
    run(cluster, new, 2)
    after = records(cluster, "slow")
    assert after["slow-20261125t060005z"].outcome is Outcome.ALREADY_EXISTED
    assert after["slow-20261125t060010z"].outcome is Outcome.ALREADY_EXISTED
    assert len(cluster.backend.submitted) == len(set(cluster.backend.submitted)), "nothing launched twice"


def test_a_replayed_launch_whose_submit_cannot_reach_the_backend_is_looked_up_not_recorded_failed() -> None:
    """A refused connection proves that this submit did not land, not that the cluster the restore replaced never
    launched the instant (the 60-minute Nomad run: 50 launches of the old cluster recorded failed_to_launch after a
    restore, the agent being down). The record stays open until the backend answers, then says what it has."""
    from cronframework.errors import BackendUnreachable

    cluster = Cluster()
    cluster.backend.initial_state = LaunchState.SUCCEEDED
    cluster.apply(job("beat", "*/5 * * * * *", catchup={"policy": "all", "max": 100}))
    cluster.clock.set(T0 - timedelta(seconds=1))
    old, _ = cluster.leader()
    old.promote()
    run(cluster, old, 2)
    snapshot = capture(cluster.store, source="/cf", now=cluster.clock.now())
    run(cluster, old, 10)  # 06:05 and 06:10, after the snapshot
    old_launches = set(cluster.backend.launches)
    cluster.clock.advance(5)
    restored(cluster, snapshot)
    down = BackendUnreachable("connection refused")
    cluster.backend.fail["submit"] = cluster.backend.fail["lookup"] = down
    new, _ = cluster.leader()
    new.promote()
    replayed = {n: r for n, r in records(cluster, "beat").items() if n in old_launches and r.epoch == cluster.epoch}
    assert replayed and not any(r.outcome is Outcome.FAILED for r in replayed.values()), replayed
    del cluster.backend.fail["submit"], cluster.backend.fail["lookup"]
    run(cluster, new, 3)
    after = records(cluster, "beat")
    assert {after[n].outcome for n in replayed} == {Outcome.ALREADY_EXISTED}
    assert len(cluster.backend.submitted) == len(set(cluster.backend.submitted)), "nothing launched twice"


def test_a_restore_s_instants_older_than_the_catch_up_window_are_found_by_name_not_one_stale_record() -> None:
    """The 60-minute Docker run: a snapshot restored 10 minutes after its watermark, past the 10-minute catch-up
    window; the instants the old cluster had launched after it were written as one stale "missed" record, and the
    records of the launches it covered were gone (43 instants, 40 containers with no record). Each instant from the
    watermark to the restore is decided on its own, found by name first."""
    cluster = Cluster()
    cluster.backend.initial_state = LaunchState.SUCCEEDED
    cluster.apply(job("beat", "* * * * * *", catchup={"policy": "all", "max": 100, "window": "20s"}))
    cluster.clock.set(T0 - timedelta(seconds=1))
    old, _ = cluster.leader()
    old.promote()
    run(cluster, old, 2)
    snapshot = capture(cluster.store, source="/cf", now=cluster.clock.now())
    run(cluster, old, 10)  # 06:00:02 .. 06:00:11, after the snapshot
    old_launches = set(cluster.backend.launches)
    cluster.clock.advance(30)  # the ensemble lost for longer than the catch-up window, then the restore
    restored(cluster, snapshot)
    cluster.clock.advance(1)
    new, _ = cluster.leader()
    new.promote()
    run(cluster, new, 2)
    after = records(cluster, "beat")
    lost = sorted(n for n in old_launches if n not in after or after[n].outcome not in LAUNCHED)
    assert lost == []
    assert len(cluster.backend.submitted) == len(set(cluster.backend.submitted)), "nothing launched twice"


def triggered_after_the_snapshot(cluster: Cluster) -> tuple[object, str]:
    """The old cluster launches a manual trigger after the snapshot is taken; then all data is lost and the
    operator restores (the 60-minute Docker run: slow-...230444z-m, a container with no record after the restore)."""
    cluster.backend.initial_state = LaunchState.SUCCEEDED
    cluster.apply(job("slow", "0 0 * * * *"), job("plain", "*/5 * * * * *"))
    cluster.clock.set(T0 - timedelta(seconds=1))
    old, _ = cluster.leader()
    old.promote()
    run(cluster, old, 2)
    snapshot = capture(cluster.store, source="/cf", now=cluster.clock.now())
    request = cluster.store.request_trigger("slow", force=False, now=cluster.clock.now())
    run(cluster, old, 2)
    manual = f"slow-{request.requested_at:%Y%m%dt%H%M%Sz}-m"
    assert manual in cluster.backend.launches, "the old cluster launched the trigger"
    cluster.clock.advance(5)
    restored(cluster, snapshot)
    return snapshot, manual


def test_a_manual_launch_after_the_snapshot_is_found_by_listing_and_recorded_not_launched_again() -> None:
    cluster = Cluster()
    _, manual = triggered_after_the_snapshot(cluster)
    new, _ = cluster.leader()
    new.promote()
    run(cluster, new, 2)
    record = cluster.store.get_launch(manual)
    assert record is not None and record.outcome is Outcome.ALREADY_EXISTED, record
    assert record.manual and record.epoch == cluster.epoch
    assert len(cluster.backend.submitted) == len(set(cluster.backend.submitted)), "nothing launched twice"
    assert cluster.store.pending_triggers() == []
    marker = (cluster.store.read_takeover() or {})["restored"]
    assert "listed" in marker, "the takeover report says every job was listed"


def test_a_record_that_says_not_launched_is_corrected_after_a_restore_when_the_backend_ran_it() -> None:
    """The 60-minute process run at c9b739e: two restores in a row. The first used a snapshot from before four
    instants, so the restored cluster launched them; the second used a newer snapshot, which had recorded them
    failed to launch (a full disk) before that era existed. The tasks ran once; the store said they had not. Listing
    each job after a restore corrects such a record when the backend says its task ran and ended."""
    from cronframework.errors import PermanentBackendError
    from cronframework.records import TaskResult

    cluster = Cluster()
    cluster.backend.initial_state = LaunchState.SUCCEEDED
    cluster.apply(job("beat", "*/5 * * * * *"))
    cluster.clock.set(T0 - timedelta(seconds=1))
    old, _ = cluster.leader()
    old.promote()
    cluster.backend.fail["submit"] = PermanentBackendError("no space left on device")
    run(cluster, old, 11)
    del cluster.backend.fail["submit"]
    failed = sorted(n for n, r in records(cluster, "beat").items() if r.outcome is Outcome.FAILED)
    assert len(failed) >= 2
    snapshot = capture(cluster.store, source="/cf", now=cluster.clock.now())
    now = cluster.clock.now()
    ran, created = failed[:-1], failed[-1]  # an erased era launched these; the last it only created, never started
    for name in ran:
        cluster.backend.launches[name] = BackendStatus(LaunchState.SUCCEEDED, 0, started_at=now, finished_at=now)
    cluster.backend.launches[created] = BackendStatus(LaunchState.FAILED, reason="start refused")
    cluster.clock.advance(5)
    restored(cluster, snapshot)
    new, _ = cluster.leader()
    new.promote()
    run(cluster, new, 3)
    for name in ran:
        record = cluster.store.get_launch(name)
        assert record is not None and record.outcome is Outcome.ALREADY_EXISTED, record
        assert record.result is TaskResult.SUCCEEDED and record.concluded, "its task ended: concluded with its result"
    record = cluster.store.get_launch(created)
    assert record is not None and record.outcome is Outcome.FAILED, "never started: the record stands"
    assert len(cluster.backend.submitted) == len(set(cluster.backend.submitted)), "nothing launched twice"


def test_once_every_job_is_listed_a_later_leader_does_not_list_again() -> None:
    cluster = Cluster()
    triggered_after_the_snapshot(cluster)
    first, _ = cluster.leader()
    first.promote()
    run(cluster, first, 2)
    listed: list[str] = []
    cluster.backend.fail["list"] = lambda job: listed.append(job)  # type: ignore[func-returns-value]
    second, _ = cluster.leader()
    second.promote()
    run(cluster, second, 2)
    assert listed == []


def test_a_job_whose_backend_cannot_list_is_listed_when_it_answers_and_the_restore_is_not_marked_listed_before() -> (
    None
):
    from cronframework.errors import TransientBackendError

    cluster = Cluster()
    _, manual = triggered_after_the_snapshot(cluster)
    cluster.backend.fail["list"] = lambda job: TransientBackendError("down") if job == "slow" else None
    new, _ = cluster.leader()
    new.promote()
    run(cluster, new, 3)
    assert cluster.store.get_launch(manual) is None
    assert "listed" not in (cluster.store.read_takeover() or {})["restored"]
    del cluster.backend.fail["list"]
    run(cluster, new, 2)
    record = cluster.store.get_launch(manual)
    assert record is not None and record.outcome is Outcome.ALREADY_EXISTED
    assert "listed" in (cluster.store.read_takeover() or {})["restored"]
    assert len(cluster.backend.submitted) == len(set(cluster.backend.submitted)), "nothing launched twice"


def test_an_older_manual_launch_the_store_has_pruned_is_not_requested_again() -> None:
    """Only the snapshot's own time (less a margin for the requester's clock) up to the restore is listed for."""
    cluster = Cluster()
    _, manual = triggered_after_the_snapshot(cluster)
    old_manual = "slow-20261125t050000z-m"  # an hour before: outside the window, and no record names it
    cluster.backend.launches[old_manual] = BackendStatus(LaunchState.SUCCEEDED)
    new, _ = cluster.leader()
    new.promote()
    run(cluster, new, 2)
    assert cluster.store.get_launch(manual) is not None
    assert cluster.store.get_launch(old_manual) is None


REVIVED = "slow-20261125t060020z"


def restored_with_an_open_launch_and_three_later_ones(lost_for: int = 5) -> Cluster:
    """The 60-minute process run's `forbid` overlap: the snapshot was read between slow-...213825z's sync points;
    the old cluster then recorded it failed to launch (a read-only disk) and made three later launches. After the
    restore, recovery found it open and not on the backend and started it, the replay found the later three (ended),
    and the next instant's check asked only about the newest of those: both ran at once."""
    from cronframework.errors import PermanentBackendError

    cluster = Cluster()
    cluster.apply(job("slow", "*/20 * * * * *", concurrency="forbid", catchup={"policy": "all", "max": 100}))
    taken: list[object] = []

    def refuse_revived(name: str) -> BaseException | None:
        if name != REVIVED or taken:
            return None
        taken.append(capture(cluster.store, source="/cf", now=cluster.clock.now()))  # between its sync points
        return PermanentBackendError("read-only file system")

    cluster.backend.fail["submit"] = refuse_revived
    cluster.clock.set(T0 - timedelta(seconds=1))
    old, _ = cluster.leader()
    old.promote()
    for _ in range(65):  # 06:00:00 .. 06:01:04: the old cluster's launches each end within a second
        run(cluster, old, 1)
        cluster.backend.finish_all()
    assert cluster.store.get_launch(REVIVED).outcome is Outcome.FAILED  # type: ignore[union-attr]
    assert "slow-20261125t060100z" in cluster.backend.launches and REVIVED not in cluster.backend.launches
    del cluster.backend.fail["submit"]
    cluster.clock.advance(lost_for)  # 06:01:09: the ensemble lost and restored; tasks now run until finished
    restored(cluster, taken[0])
    return cluster


def test_a_forbid_launch_waits_for_an_older_launch_recovery_revived_not_only_the_job_s_last() -> None:
    cluster = restored_with_an_open_launch_and_three_later_ones()
    new, _ = cluster.leader()
    new.promote()
    assert cluster.running() == [REVIVED], "recovery started the launch the snapshot held open"
    run(cluster, new, 15)  # past 06:01:20
    assert cluster.running() == [REVIVED], "no later launch while it runs (concurrency: forbid)"
    later = records(cluster, "slow")["slow-20261125t060120z"]
    assert later.outcome is Outcome.SKIPPED and REVIVED in (later.reason or ""), later.reason


def test_a_forbid_launch_waits_for_an_older_launch_recovery_left_open() -> None:
    """The same, while the backend cannot yet answer about the open launch: recovery leaves it open, and it may
    still be started; the next instant does not launch beside it."""
    from cronframework.errors import TransientBackendError

    cluster = restored_with_an_open_launch_and_three_later_ones()
    cluster.backend.fail["lookup"] = lambda name: TransientBackendError("down") if name == REVIVED else None
    new, _ = cluster.leader()
    new.promote()
    run(cluster, new, 15)  # past 06:01:20
    later = records(cluster, "slow")["slow-20261125t060120z"]
    assert later.outcome is Outcome.SKIPPED and REVIVED in (later.reason or ""), later.reason
    assert "no recorded outcome" in (later.reason or "")
    del cluster.backend.fail["lookup"]
    run(cluster, new, 2)
    assert cluster.running() == [REVIVED], "started once its backend answered, and alone"


def test_a_forbid_launch_in_the_tick_that_finds_the_later_ones_waits_for_the_revived_one_too() -> None:
    """The same in one tick (the 60-minute process run at c9b739e): the catch-up tick after the restore found the old
    cluster's later launches and planned the next instant, which was due by then. Its check asked about the newest
    launch found in that tick, and the verdict on the job's previous launch, the one recovery had started, was
    dropped."""
    cluster = restored_with_an_open_launch_and_three_later_ones(lost_for=17)  # 06:01:21: 06:01:20 is due at once
    new, _ = cluster.leader()
    new.promote()
    assert cluster.running() == [REVIVED], "no later launch while it runs (concurrency: forbid)"
    later = records(cluster, "slow")["slow-20261125t060120z"]
    assert later.outcome is Outcome.SKIPPED and REVIVED in (later.reason or ""), later.reason

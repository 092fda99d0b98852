"""A takeover facing a slow backend and a great deal to conclude goes on launching and snapshotting meanwhile.

In the 60-minute Nomad and Docker fault runs (docs/reliability.md) leaders spent their whole tenures in promotion:
hundreds of open launches concluded by lookup, then thousands of a restore's replayed instants looked up one after
the other in the first tick, against a slowed backend. Periodic snapshots began only after a tick, so none were
written for half an hour, each restore replayed more, and new instants waited. On a fake clock whose time passes
inside each backend lookup."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from cronframework.launch import LaunchState
from cronframework.ops.snapshot import SnapshotPolicy, capture, load
from cronframework.records import LaunchRecord, Outcome
from tests.leader_harness import T0, Cluster, job
from tests.test_leader import die_after_sync_point_one
from tests.test_restore_replay import LAUNCHED, records, restored, run

OPEN = 60


def slow_lookups(
    cluster: Cluster, seconds: float, slow: Callable[[str], bool], first: Callable[[], None] | None = None
) -> Callable[[str], None]:
    """A backend fault: each lookup of a name `slow` picks takes `seconds` of the fake clock's time. One at a time:
    the fake clock cannot let lookups overlap, so a slice holds fewer than it would live."""
    lock = threading.Lock()
    calls = []

    def lookup(name: str) -> None:
        if not slow(name):
            return
        with lock:
            calls.append(name)
            if len(calls) == 1 and first is not None:
                first()
            cluster.clock.advance(seconds)

    return lookup


def restored_after(cluster: Cluster, spec: object, seconds: int, lookup_takes: float) -> None:
    """`spec` launched by an old cluster for `seconds` after a snapshot, then the ensemble lost and the snapshot
    restored; each first lookup of one of its launches takes `lookup_takes` of the fake clock (the replay's, not
    the result follower's later ones of the launches it found)."""
    cluster.backend.initial_state = LaunchState.SUCCEEDED
    cluster.apply(spec)  # type: ignore[arg-type]
    cluster.clock.set(T0 - timedelta(seconds=1))
    old, _ = cluster.leader()
    old.promote()
    run(cluster, old, 2)
    snapshot = capture(cluster.store, source="/cf", now=cluster.clock.now())
    run(cluster, old, seconds)
    cluster.clock.advance(5)
    restored(cluster, snapshot)
    prefix, asked = f"{spec.name}-", set()  # type: ignore[attr-defined]

    def first_time(name: str) -> bool:
        slow = name.startswith(prefix) and name not in asked
        asked.add(name)
        return slow

    cluster.backend.fail["lookup"] = slow_lookups(cluster, lookup_takes, first_time)


def left_open(cluster: Cluster) -> Callable[[str], bool]:
    """The 06:01 launches the first leader left open, until recovery submits them (the result follower's lookups of
    running launches stay quick)."""
    return lambda name: name.endswith("-20261125t060100z") and name not in cluster.backend.launches


def test_a_takeover_with_hundreds_of_open_launches_launches_new_instants_while_it_concludes_them() -> None:
    cluster = Cluster()
    cluster.apply(*(job(f"j{i:03}") for i in range(OPEN)))
    die_after_sync_point_one(cluster)
    assert len(cluster.store.open_launches()) == OPEN
    cluster.apply(job("beat", "* * * * * *"))
    cluster.backend.fail["lookup"] = slow_lookups(cluster, 0.5, left_open(cluster))
    second, _ = cluster.leader()
    started = cluster.clock.now()
    second.promote()
    assert cluster.clock.now() - started < timedelta(seconds=10), "promotion gave the open launches a slice"
    assert cluster.store.open_launches(), "the rest are left for later ticks"
    first_beat = None
    for _ in range(OPEN * 2):
        if not cluster.store.open_launches():
            break
        cluster.clock.advance(1)
        second.tick()
        beats = [r for r in cluster.store.history("beat", limit=1000) if r.outcome is Outcome.SUBMITTED]
        if beats and first_beat is None:
            first_beat = min(r.scheduled for r in beats)
            still_open = len(cluster.store.open_launches())
    assert first_beat is not None and still_open > 0, "a new instant launched while open launches were concluded"
    assert cluster.store.open_launches() == [], "every open launch concluded in the end"
    concluded = [cluster.store.get_launch(f"j{i:03}-20261125t060100z") for i in range(OPEN)]
    assert all(r is not None and r.outcome is Outcome.SUBMITTED for r in concluded)
    assert len(cluster.backend.submitted) == len(set(cluster.backend.submitted)), "nothing launched twice"


def test_a_slow_takeover_writes_its_snapshot_before_its_catch_up_with_every_job_s_watermark(tmp_path: Path) -> None:
    """The snapshot starts once promotion has placed the jobs (their states written) and before the catch-up
    tick, however many open launches are left: and it holds each job's watermark, so a restore from it replays each
    job from there. Started before the states were written, a new cluster's first snapshot held its specs alone,
    and a restore from it let every launch since vanish (integration/test_chaos_disks.py, 170 violations)."""
    cluster = Cluster()
    cluster.apply(*(job(f"j{i:03}") for i in range(20)))
    die_after_sync_point_one(cluster)
    cluster.apply(job("beat", "* * * * * *"))
    cluster.clock.advance(3)  # a catch-up to launch
    policy = SnapshotPolicy(directory=tmp_path, every=timedelta(minutes=5), keep=3, source="/cf")
    second, _ = cluster.leader(snapshot=policy)
    seen: list[list[str]] = []

    def snapshot_written_by_now(name: str, _launch: object) -> None:
        if seen or not name.startswith("beat-"):  # the catch-up's, not recovery's resubmits
            return
        snapshots = second._housekeeping.snapshots
        assert snapshots is not None
        snapshots.join(10)
        seen.append(sorted(p.name for p in tmp_path.iterdir()))

    cluster.backend.on_submit = snapshot_written_by_now
    cluster.backend.fail["lookup"] = slow_lookups(cluster, 0.5, left_open(cluster))
    second.promote()
    assert cluster.store.open_launches(), "open launches were left for later ticks"
    assert seen and len(seen[0]) == 1, f"a snapshot was written before the catch-up's first submit: {seen}"
    written = load(tmp_path / seen[0][0])
    assert {s.job for s in written.job_states} >= {f"j{i:03}" for i in range(20)} | {"beat"}


def test_a_new_cluster_s_first_snapshot_holds_its_jobs_watermarks(tmp_path: Path) -> None:
    cluster = Cluster()
    cluster.apply(job("beat", "* * * * * *"), job("daily", "0 3 * * *"))
    policy = SnapshotPolicy(directory=tmp_path, every=timedelta(minutes=5), keep=3, source="/cf")
    first, _ = cluster.leader(snapshot=policy)
    first.promote()
    snapshots = first._housekeeping.snapshots
    assert snapshots is not None
    snapshots.join(10)
    [path] = list(tmp_path.iterdir())
    assert {s.job for s in load(path).job_states} == {"beat", "daily"}


def test_a_restore_s_thousands_of_replayed_instants_are_looked_up_a_slice_per_tick_while_other_jobs_launch() -> None:
    cluster = Cluster()
    # ten minutes the snapshot does not hold, each kept on record to the end (decided a prefix at a time now)
    restored_after(cluster, job("beat", "* * * * * *", retention={"count": 1000}), 600, 0.1)
    old_launches = {n for n in cluster.backend.launches if n.startswith("beat-")}
    cluster.apply(job("fresh", "* * * * * *"))  # a job the snapshot does not hold: nothing to replay
    new, _ = cluster.leader()
    started = cluster.clock.now()
    new.promote()
    assert cluster.clock.now() - started < timedelta(seconds=10), "the first tick looked up a slice, not all"
    run(cluster, new, 5)
    fresh = [r for r in cluster.store.history("fresh", limit=100) if r.outcome is Outcome.SUBMITTED]
    assert len(fresh) >= 3, "a job with nothing to replay launches while the replay goes on"
    replayed = records(cluster, "beat")
    assert not all(n in replayed for n in old_launches), "the replay is still under way"
    for _ in range(300):
        if all(n in replayed for n in old_launches):
            break
        run(cluster, new, 1)
        replayed = records(cluster, "beat")
    lost = sorted(n for n in old_launches if n not in replayed or replayed[n].outcome not in LAUNCHED)
    assert lost == [], [(n, replayed[n].outcome, replayed[n].reason) if n in replayed else n for n in lost[:3]]
    assert len(cluster.backend.submitted) == len(set(cluster.backend.submitted)), "nothing launched twice"


def test_a_slow_read_of_the_open_launches_does_not_use_up_the_time_for_concluding_them() -> None:
    """The 60-minute Docker run: with 366 open launches on a loaded ZooKeeper, reading them took longer than the
    slice, which had been counted from before the read; pass after pass began no lookup at all."""
    cluster = Cluster()
    cluster.apply(*(job(f"j{i:03}") for i in range(OPEN)))
    die_after_sync_point_one(cluster)
    read = cluster.store.open_launches

    def slow_read() -> list[LaunchRecord]:
        cluster.clock.advance(3.0)  # longer than promotion's slice and any tick's
        return read()

    cluster.store.open_launches = slow_read  # type: ignore[method-assign]
    cluster.backend.fail["lookup"] = slow_lookups(cluster, 0.5, left_open(cluster))
    second, _ = cluster.leader()
    second.promote()
    assert len(read()) < OPEN, "promotion concluded some"
    for _ in range(OPEN):
        if not read():
            break
        cluster.clock.advance(1)
        second.tick()
    assert read() == [], "every open launch concluded, a slice per tick"


def test_a_kept_answer_about_a_replayed_launch_is_asked_again_once_recovery_concluded_that_launch() -> None:
    """An answer is kept from tick to tick until the plan that needs it is carried out. Recovery may conclude the
    same launch meanwhile (a record ahead of its job's watermark, started now): "not found" is then no longer true."""
    from cronframework.adapters import BackendSet
    from cronframework.engine.replay_finds import ReplayFinds
    from cronframework.launch import BackendStatus
    from cronframework.store.sqlite import SoleLeader

    cluster = Cluster()
    spec = job("j", "* * * * *")
    name = "j-20261125t060000z"
    finds = ReplayFinds(BackendSet(preset={"fake": cluster.backend}), SoleLeader(epoch=1, replica="r1"), cluster.clock)
    assert finds.find({name: spec}, budget=1.0) == {name: None}
    cluster.backend.launches[name] = BackendStatus(LaunchState.RUNNING)  # recovery resubmitted it
    assert finds.find({name: spec}, budget=1.0) == {name: None}, "kept: not asked twice while the plan waits"
    finds.forget([name])
    assert finds.find({name: spec}, budget=1.0) == {name: BackendStatus(LaunchState.RUNNING)}


def test_a_takeover_s_catch_up_tick_gives_a_restore_s_replay_the_promotion_s_slice() -> None:
    """The 60-minute Nomad and Docker runs at c9b739e: a `forbid` job's replayed instants were asked 16 at a time in
    each new leader's catch-up tick (a quarter second when an instant is near), whose launches then took the rest of
    its tenure; the next leader began again, and the job was never decided. The catch-up tick gives them
    `recovery_slice`, as promotion gives open launches."""
    cluster = Cluster()
    spec = job("slow", "*/5 * * * * *", concurrency="forbid", catchup={"policy": "all", "max": 100})
    restored_after(cluster, spec, 150, 0.05)  # thirty instants the snapshot does not hold
    new, _ = cluster.leader()
    new.promote()  # and deposed right after: what its catch-up tick decided is all it decides
    made_before = {n for n in cluster.backend.launches if n.startswith("slow-")}
    replayed = records(cluster, "slow")
    assert made_before <= set(replayed), sorted(made_before - set(replayed))[:3]


def test_leaders_deposed_after_one_tick_each_move_a_slow_restore_s_replay_forward() -> None:
    """The 60-minute Nomad run at c9b739e: a `forbid` job's replay needed more lookups than any one tenure answered;
    each new leader asked the same first names again and decided none, and the job never launched again. A job is
    decided up to its first unanswered replayed launch, so each tenure's answers are written down and the next
    leader goes on from there."""
    from cronframework.naming import parse_launch_name

    cluster = Cluster()
    spec = job("slow", "*/5 * * * * *", concurrency="forbid", catchup={"policy": "all", "max": 100})
    restored_after(cluster, spec, 150, 1.0)  # thirty instants the snapshot does not hold
    restored_at, kept = cluster.clock.now(), len(records(cluster, "slow"))
    replayed = lambda name: name.startswith("slow-") and parse_launch_name(name).scheduled < restored_at  # noqa: E731
    cluster.backend.fail["lookup"] = slow_lookups(cluster, 1.0, replayed)  # every time: a tenure answers 16
    made_before = {n for n in cluster.backend.launches if n.startswith("slow-")}
    progress = []
    for _ in range(10):
        new, _ = cluster.leader()
        new.promote()  # and deposed right after
        progress.append(len(records(cluster, "slow")) - kept)
        cluster.clock.advance(1)
        if made_before <= set(records(cluster, "slow")):
            break
    assert progress[0] > 0, "the first tenure wrote down the instants it had answers for"
    decided = records(cluster, "slow")
    assert made_before <= set(decided), (progress, sorted(made_before - set(decided))[:3])
    lost = sorted(n for n in made_before if decided[n].outcome not in LAUNCHED)
    assert lost == [], lost[:3]
    assert len(cluster.backend.submitted) == len(set(cluster.backend.submitted)), "nothing launched twice"

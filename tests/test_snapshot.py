"""Backups: SQLite round trips, refusals, bad files, the restore-safe read order, periodic snapshots."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cronframework.abc import StateStore
from cronframework.cli import main
from cronframework.errors import StateStoreUnavailable
from cronframework.naming import LaunchIdentity
from cronframework.ops.snapshot import (
    FORMAT_VERSION,
    RESTORED,
    PeriodicSnapshots,
    SnapshotError,
    SnapshotPolicy,
    capture,
    load,
    parse,
    read_launches,
    restored_at,
)
from cronframework.records import (
    Begin,
    JobResults,
    JobState,
    LaunchRecord,
    Notice,
    Outcome,
    ResultBatch,
    SpecChange,
    TaskResult,
    TriggerRequest,
)
from cronframework.store.sqlite import SqliteStore
from cronframework.testing import FakeClock, FakeFence, MemoryStore

T0 = datetime(2026, 11, 25, 6, 30, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
DOC = {"schedule": "* * * * *", "backend": "process", "task": {"command": ["/bin/true"]}}


def begin_item(job: str, minute: int, *, manual: bool = False) -> Begin:
    identity = LaunchIdentity(job, T0 + minute * MINUTE, manual=manual)
    record = LaunchRecord.begin(identity, leader="r1", epoch=3, now=identity.scheduled)
    return Begin(record, JobState(job, T0 + (minute + 1) * MINUTE, identity.name))


def populate(store: StateStore, fence: Any) -> None:
    """Two jobs with finished, skipped, manual and open records, a pause, a trigger and a takeover report; a failed
    run with its retry to come, its job's results summary and its notification waiting in the outbox."""
    store.write_specs([SpecChange("alpha", DOC, None), SpecChange("beta", {**DOC, "schedule": "0 * * * *"}, None)])
    items = [begin_item("alpha", n) for n in range(4)] + [begin_item("beta", 0), begin_item("alpha", 2, manual=True)]
    store.begin(fence, items)
    finished = [i.record.finish(Outcome.SUBMITTED, now=T0 + MINUTE, exit_code=0) for i in items[:2]]
    store.finish(fence, [*finished, items[4].record.finish(Outcome.SKIPPED, now=T0, reason="paused")])
    store.set_paused("beta", True)
    store.request_trigger("alpha", force=True, now=T0 + 10 * MINUTE)
    store.write_takeover(fence, {"replica": "r1", "epoch": 3, "open_launches": []})
    failed = finished[1].with_result(TaskResult.FAILED, reason="exit code 1", exit_code=1, ended_at=T0 + MINUTE)
    failed = replace(failed, retry_at=T0 + 2 * MINUTE)
    summary = JobResults("alpha").add(failed, final=False, now=T0 + MINUTE)
    notice = Notice("n1", f"{failed.name}:failed", "alpha", "failed", "https://hooks.example/x", {}, T0 + MINUTE)
    store.record_results(fence, ResultBatch([failed], [summary], [notice]))


def sqlite_state(path: Path) -> Path:
    store = SqliteStore(path / "state.sqlite")
    try:
        populate(store, store.acquire_leadership("r1"))
    finally:
        store.close()
    return path


def contents(store: StateStore) -> dict[str, Any]:
    """Everything a store holds, without what a restore legitimately renumbers (spec versions, trigger ids) or adds
    (the takeover report's note of the restore)."""
    jobs = sorted(set(store.read_specs()) | set(store.read_job_states()))
    return {
        "specs": {n: dict(s.document) for n, s in store.read_specs().items()},
        "states": store.read_job_states(),
        "paused": store.read_paused(),
        "records": {j: store.history(j, 1000) for j in jobs},
        "open": store.open_launches(),
        "triggers": [(t.job, t.requested_at, t.force) for t in store.pending_triggers()],
        "takeover": {k: v for k, v in (store.read_takeover() or {}).items() if k != RESTORED} or None,
        "following": store.following_launches(),
        "results": store.read_job_results(),
        "outbox": store.read_outbox(),
    }


def read_sqlite(path: Path) -> dict[str, Any]:
    store = SqliteStore(path / "state.sqlite")
    try:
        return contents(store)
    finally:
        store.close()


def restored_marker(path: Path) -> Any:
    store = SqliteStore(path / "state.sqlite")
    try:
        return (store.read_takeover() or {}).get(RESTORED)
    finally:
        store.close()


def cli(*args: str) -> int:
    return main(["snapshot", *args])


# -- round trips --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["backup.json", "backup.json.gz"])
def test_export_then_import_into_an_empty_state_dir_gives_an_equal_store(tmp_path: Path, name: str) -> None:
    source = sqlite_state(tmp_path / "source")
    file = tmp_path / name
    assert cli("export", str(file), "--state-dir", str(source)) == 0
    assert cli("import", str(file), "--state-dir", str(tmp_path / "target")) == 0
    before, after = read_sqlite(source), read_sqlite(tmp_path / "target")
    assert after == before
    assert restored_at(restored_marker(tmp_path / "target")) is not None, "the store says it was restored, and when"
    assert [r.name for r in after["open"]] == [
        "alpha-20261125t063200z",
        "alpha-20261125t063200z-m",
        "alpha-20261125t063300z",
    ]
    assert after["records"]["beta"][0].outcome is Outcome.SKIPPED


def test_the_file_is_one_json_document_gzipped_by_extension(tmp_path: Path) -> None:
    source = sqlite_state(tmp_path / "source")
    assert cli("export", str(tmp_path / "b.json.gz"), "--state-dir", str(source)) == 0
    document = json.loads(gzip.decompress((tmp_path / "b.json.gz").read_bytes()))
    assert document["format_version"] == FORMAT_VERSION
    assert document["source"] == str(source)
    assert {s["name"] for s in document["specs"]} == {"alpha", "beta"}
    assert len(document["launches"]) == 6 and document["paused"] == ["beta"]
    assert [t["job"] for t in document["triggers"]] == ["alpha"]
    assert not list(tmp_path.glob(".*.tmp"))  # written via tmp + rename


def test_imported_open_records_are_concluded_by_the_next_leader_not_lost(tmp_path: Path) -> None:
    source = sqlite_state(tmp_path / "source")
    file = tmp_path / "b.json"
    cli("export", str(file), "--state-dir", str(source))
    cli("import", str(file), "--state-dir", str(tmp_path / "target"))
    store = SqliteStore(tmp_path / "target" / "state.sqlite")
    try:
        leader = store.acquire_leadership("next")
        assert leader.epoch == 2  # the import itself held epoch 1
        open_names = [r.name for r in store.open_launches()]
        store.finish(leader, [r.finish(Outcome.ALREADY_EXISTED, now=T0) for r in store.open_launches()])
        assert open_names and store.open_launches() == []
    finally:
        store.close()


# -- refusals -----------------------------------------------------------------------------------------------------
def test_import_into_a_non_empty_state_dir_is_refused_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = sqlite_state(tmp_path / "source")
    file = tmp_path / "b.json"
    cli("export", str(file), "--state-dir", str(source))
    target = tmp_path / "target"
    store = SqliteStore(target / "state.sqlite")
    store.set_paused("gamma", True)
    store.close()
    capsys.readouterr()
    assert cli("import", str(file), "--state-dir", str(target)) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: refusing to import into") and "paused jobs" in err and "\n" not in err
    after = read_sqlite(target)
    assert after["paused"] == {"gamma"} and after["specs"] == {} and after["open"] == []
    assert read_meta(target, "epoch") is None  # leadership was never even taken


def test_import_while_a_scheduler_holds_the_state_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "b.json"
    cli("export", str(file), "--state-dir", str(sqlite_state(tmp_path / "source")))
    running = SqliteStore(tmp_path / "target" / "state.sqlite")
    running.acquire_leadership("scheduler")
    try:
        capsys.readouterr()
        assert cli("import", str(file), "--state-dir", str(tmp_path / "target")) == 1
        assert "another cronframework process is running" in capsys.readouterr().err
        assert running.read_specs() == {} and running.open_launches() == []
    finally:
        running.close()


def read_meta(state: Path, key: str) -> str | None:
    store = SqliteStore(state / "state.sqlite")
    try:
        rows = store._rows("SELECT value FROM meta WHERE key=?", key)
        return rows[0][0] if rows else None
    finally:
        store.close()


def test_export_of_a_missing_state_dir_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("export", str(tmp_path / "b.json"), "--state-dir", str(tmp_path / "nothing")) == 1
    assert capsys.readouterr().err.startswith("error: no embedded state at")
    assert not (tmp_path / "b.json").exists()


# -- bad files ----------------------------------------------------------------------------------------------------
def good_document(tmp_path: Path) -> dict[str, Any]:
    file = tmp_path / "good.json"
    cli("export", str(file), "--state-dir", str(sqlite_state(tmp_path / "source")))
    return dict(json.loads(file.read_text()))


def corrupt(document: dict[str, Any], key: str, index: int, **change: Any) -> dict[str, Any]:
    items = [dict(item) for item in document[key]]
    items[index].update(change)
    items[index] = {k: v for k, v in items[index].items() if v != "<drop>"}
    return {**document, key: items}


BAD_DOCUMENTS: dict[str, tuple[Callable[[dict[str, Any]], Any], str]] = {
    "unknown version": (lambda d: {**d, "format_version": 2}, "unsupported format_version 2"),
    "no version": (lambda d: {k: v for k, v in d.items() if k != "format_version"}, "format_version None"),
    "not an object": (lambda d: [d], "not a snapshot"),
    "launches not a list": (lambda d: {**d, "launches": {}}, "field 'launches' must be list"),
    "record without job": (lambda d: corrupt(d, "launches", 1, job="<drop>"), "launches[1]:"),
    "record with a foreign name": (lambda d: corrupt(d, "launches", 2, name="alpha-x"), "launches[2]: launch name"),
    "record with a bad instant": (lambda d: corrupt(d, "launches", 0, scheduled="yesterday"), "launches[0]:"),
    "record of an unknown state": (lambda d: corrupt(d, "launches", 0, state="lost"), "launches[0]:"),
    "finished without outcome": (lambda d: corrupt(d, "launches", 0, outcome=None), "needs an outcome"),
    "record with wrong types": (lambda d: corrupt(d, "launches", 3, attempt="2"), "launches[3]: field 'attempt'"),
    "duplicate record": (lambda d: {**d, "launches": d["launches"] + d["launches"][:1]}, "appears twice"),
    "bad job name": (lambda d: corrupt(d, "specs", 0, name="Alpha!"), "specs[0]:"),
    "state without job": (lambda d: corrupt(d, "job_states", 0, job="<drop>"), "job_states[0]: missing field 'job'"),
    "trigger without force": (lambda d: corrupt(d, "triggers", 0, force="<drop>"), "triggers[0]: missing field"),
}


@pytest.mark.parametrize("case", sorted(BAD_DOCUMENTS))
def test_a_bad_file_is_one_line_exit_1_and_nothing_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    change, expected = BAD_DOCUMENTS[case]
    file = tmp_path / "bad.json"
    file.write_text(json.dumps(change(good_document(tmp_path))))
    capsys.readouterr()
    assert cli("import", str(file), "--state-dir", str(tmp_path / "target")) == 1
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1 and str(file) in err
    assert not (tmp_path / "target").exists()


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [
        ("truncated.json", b'{"format_version": 1, "specs": [', "not valid JSON"),
        ("plain.json.gz", b'{"format_version": 1}', "not a gzip file"),
        ("empty.json", b"", "not valid JSON"),
    ],
)
def test_unreadable_files_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, raw: bytes, expected: str
) -> None:
    (tmp_path / name).write_bytes(raw)
    assert cli("import", str(tmp_path / name), "--state-dir", str(tmp_path / "target")) == 1
    assert expected in capsys.readouterr().err
    assert not (tmp_path / "target").exists()


def test_a_truncated_gzip_file_is_refused_without_a_traceback(tmp_path: Path) -> None:
    source = sqlite_state(tmp_path / "source")
    file = tmp_path / "b.json.gz"
    cli("export", str(file), "--state-dir", str(source))
    file.write_bytes(file.read_bytes()[:40])
    result = subprocess.run(
        [sys.executable, "-m", "cronframework", "snapshot", "import", str(file), "--state-dir", str(tmp_path / "t")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and result.stderr.startswith("error: ")
    assert len(result.stderr.strip().splitlines()) == 1


# -- the restore-safe read order ----------------------------------------------------------------------------------
class BusyStore(MemoryStore):
    """A leader keeps launching: one more `begin` lands between any two reads of the job states and the records."""

    def __init__(self, launches_during_read: int, trigger_launched_on_read: int) -> None:
        super().__init__()
        self.trigger_on = trigger_launched_on_read
        self.fence = FakeFence()
        self.minute = 0
        self.left = launches_during_read

    def pending_triggers(self) -> list[TriggerRequest]:
        pending = super().pending_triggers()
        if self.left > 0:
            self.left -= 1
            self.minute += 1
            items = [begin_item("alpha", self.minute)]
            if pending and self.minute == self.trigger_on:  # the operator's trigger is launched meanwhile too
                manual = begin_item("alpha", 1, manual=True)
                items.append(Begin(manual.record, items[0].next_state, pending[0].id))
            self.begin(self.fence, items)
        return pending


def busy(launches_during_read: int, trigger_launched_on_read: int = 1) -> BusyStore:
    store = BusyStore(launches_during_read, trigger_launched_on_read)
    store.write_specs([SpecChange("alpha", DOC, None)])
    store.begin(store.fence, [begin_item("alpha", 0)])
    store.request_trigger("alpha", force=False, now=T0 + MINUTE)
    return store


def test_a_launch_during_the_read_makes_capture_read_again_until_stable() -> None:
    store = busy(launches_during_read=1)
    snapshot = capture(store, source="mem", now=T0)
    assert snapshot.job_states == [store.states["alpha"]]
    assert {r.name for r in snapshot.launches} == set(store.records)
    assert snapshot.triggers == []  # consumed by the launch that happened during the read


def test_a_store_that_never_settles_still_gives_watermarks_the_records_back() -> None:
    store = busy(launches_during_read=100)
    snapshot = capture(store, source="mem", now=T0)
    (state,) = snapshot.job_states
    recorded = {r.scheduled for r in snapshot.launches if not r.manual}
    assert state.next_scheduled is not None
    claimed = {T0 + n * MINUTE for n in range(60) if T0 + n * MINUTE < state.next_scheduled}
    assert claimed <= recorded  # a watermark never claims an instant whose record is missing
    assert max(recorded) >= state.next_scheduled  # the records ran ahead: the safe direction


def test_a_trigger_launched_during_the_last_read_is_not_restored_as_pending_too() -> None:
    store = busy(launches_during_read=100, trigger_launched_on_read=2)  # the second and last attempt
    snapshot = capture(store, source="mem", now=T0)
    assert "alpha-20261125t063100z-m" in {r.name for r in snapshot.launches}
    assert snapshot.triggers == []  # else the restored leader would meet the taken name on every tick


def test_records_of_a_deleted_job_that_are_still_open_are_kept() -> None:
    store = MemoryStore()
    fence = FakeFence()
    store.begin(fence, [begin_item("gone", 0)])
    store.states.clear()
    assert [r.name for r in read_launches(store, set())] == ["alpha-20261125t063000z".replace("alpha", "gone")]


def test_parse_names_the_first_bad_item() -> None:
    with pytest.raises(SnapshotError, match=r"paused\[1\]"):
        parse(
            {
                "format_version": 1,
                "created_at": T0.isoformat(),
                "source": "x",
                "specs": [],
                "job_states": [],
                "paused": ["ok", 7],
                "launches": [],
                "triggers": [],
                "takeover": None,
            }
        )


# -- periodic snapshots -------------------------------------------------------------------------------------------
def periodic(tmp_path: Path, keep: int = 2) -> tuple[PeriodicSnapshots, FakeClock]:
    clock = FakeClock(T0)
    store = MemoryStore(clock)
    populate(store, FakeFence())
    policy = SnapshotPolicy(tmp_path / "snaps", timedelta(minutes=10), keep, source="/cf")
    return PeriodicSnapshots(store, policy, clock), clock


def files(folder: Path) -> Sequence[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_periodic_snapshots_are_due_every_interval_and_keep_the_newest(tmp_path: Path) -> None:
    snaps, clock = periodic(tmp_path, keep=2)
    started = []
    for _ in range(40):  # 40 ticks of one minute: due at 0, 10, 20, 30
        started.append(snaps.maybe_run())
        snaps.join(10)
        clock.advance(60)
    assert [i for i, s in enumerate(started) if s] == [0, 10, 20, 30]
    assert files(tmp_path / "snaps") == [
        "cronframework-snapshot-20261125t065000z.json.gz",
        "cronframework-snapshot-20261125t070000z.json.gz",
    ]
    document = json.loads(gzip.decompress((tmp_path / "snaps" / files(tmp_path / "snaps")[-1]).read_bytes()))
    assert document["source"] == "/cf" and len(document["launches"]) == 6


def test_a_store_with_no_jobs_and_no_launches_is_not_snapshotted_so_the_last_real_one_stays_the_newest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The 60-minute process run: ZooKeeper's data lost, the replicas still running made the root again on the empty
    ensemble, and its new leader wrote a snapshot of the empty store at once; that file, the newest, was the one
    restored, and every job and record was gone (13,472 violations)."""
    snaps, clock = periodic(tmp_path)
    assert snaps.write_one() is not None
    kept = files(tmp_path / "snaps")
    clock.advance(60)
    empty = PeriodicSnapshots(MemoryStore(clock), SnapshotPolicy(tmp_path / "snaps", timedelta(minutes=10), 2), clock)
    assert empty.write_one() is None
    assert files(tmp_path / "snaps") == kept
    assert "periodic snapshot skipped" in caplog.text


def test_a_failing_periodic_snapshot_is_logged_not_raised(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    snaps, _ = periodic(tmp_path)
    (tmp_path / "snaps").write_text("a file where the directory should be")
    assert snaps.write_one() is None
    assert "periodic snapshot failed" in caplog.text


def test_other_files_in_the_snapshot_dir_are_never_pruned(tmp_path: Path) -> None:
    snaps, clock = periodic(tmp_path, keep=1)
    (tmp_path / "snaps").mkdir()
    (tmp_path / "snaps" / "notes.txt").write_text("mine")
    for _ in range(3):
        snaps.write_one()
        clock.advance(3600)
    assert files(tmp_path / "snaps") == ["cronframework-snapshot-20261125t083000z.json.gz", "notes.txt"]


def test_the_leader_writes_periodic_snapshots_from_its_ticks(tmp_path: Path) -> None:
    from tests.leader_harness import Cluster, job

    cluster = Cluster()
    cluster.apply(job("alpha"))
    policy = SnapshotPolicy(tmp_path / "snaps", timedelta(minutes=5), keep=3, source="/cf")
    session, _ = cluster.leader(snapshot=policy)
    session.promote()
    for _ in range(12):  # twelve one-minute ticks: snapshots at minutes 0 (the first tick), 5 and 10
        cluster.clock.advance(60)
        session.tick()
        snapshots = session._housekeeping.snapshots
        assert snapshots is not None
        snapshots.join(10)
    written = files(tmp_path / "snaps")
    assert len(written) == 3
    newest = json.loads(gzip.decompress((tmp_path / "snaps" / written[-1]).read_bytes()))
    assert max(r["name"] for r in newest["launches"]) == "alpha-20261125t061000z"  # taken at the 10-minute tick


def test_the_config_file_snapshot_section_reaches_the_leader(tmp_path: Path) -> None:
    from cronframework.cluster.config import load_config
    from cronframework.errors import CronframeworkError

    path = tmp_path / "scheduler.yaml"
    path.write_text("zookeeper: {root: /prod}\nsnapshot: {dir: /backups, every: 15m, keep: 4}\n")
    policy = load_config(str(path), {}).leader_config().snapshot
    assert policy == SnapshotPolicy(Path("/backups"), timedelta(minutes=15), 4, "/prod")
    assert load_config(None, {}).leader_config().snapshot is None
    path.write_text("snapshot: {dir: /backups, keep: 0}\n")
    with pytest.raises(CronframeworkError, match=r"snapshot\.keep"):
        load_config(str(path), {})


def test_a_retry_attempt_record_round_trips_through_a_snapshot() -> None:
    """A `retry:` attempt is named `<launch>-aN`; a snapshot holding one must import (the import refused it)."""
    identity = LaunchIdentity("flaky", T0).retry(2)
    record = LaunchRecord.begin(identity, leader="r1", epoch=1, now=T0).finish(Outcome.SUBMITTED, now=T0)
    assert record.name.endswith("-a2") and record.task_attempt == 2
    document = {
        "format_version": FORMAT_VERSION,
        "created_at": T0.isoformat(),
        "source": "x",
        "specs": [],
        "job_states": [],
        "paused": [],
        "launches": [record.to_dict()],
        "triggers": [],
        "takeover": None,
    }
    [back] = parse(document).launches
    assert back.name == record.name and back.task_attempt == 2
    forged = {**record.to_dict(), "task_attempt": 3}
    with pytest.raises(SnapshotError, match="does not match"):
        parse({**document, "launches": [forged]})


class ListedBeforeTheRetries(MemoryStore):
    """Each job's listing was taken before its runs' retries were begun, and the runs were read after they were
    concluded (a retry is begun before its run is concluded): the records of the retries were never listed."""

    def history(self, job: str, limit: int = 20) -> list[LaunchRecord]:
        return [r for r in super().history(job, limit) if r.task_attempt == 1]


def test_a_retry_begun_while_the_records_were_read_is_in_the_snapshot() -> None:
    store, fence = ListedBeforeTheRetries(), FakeFence()
    store.write_specs([SpecChange("flaky", {**DOC, "retry": {"attempts": 3}}, None), SpecChange("plain", DOC, None)])
    chain = [LaunchIdentity("flaky", T0).retry(n) for n in (1, 2, 3)]
    runs = [LaunchRecord.begin(i, leader="r1", epoch=3, now=T0).finish(Outcome.SUBMITTED, now=T0) for i in chain]
    failed = [r.with_result(TaskResult.FAILED, ended_at=T0) for r in runs[:2]]  # concluded: each retry was begun
    store.begin(fence, [Begin(r, JobState("flaky", T0 + MINUTE, r.name)) for r in [*failed, runs[2]]])
    lone = LaunchRecord.begin(LaunchIdentity("plain", T0), leader="r1", epoch=3, now=T0)
    store.begin(
        fence, [Begin(lone.finish(Outcome.SUBMITTED, now=T0).with_result(TaskResult.FAILED), JobState("plain"))]
    )
    snapshot = capture(store, source="mem", now=T0)
    assert [r.name for r in snapshot.launches] == [*(i.name for i in chain), lone.name]


# -- a snapshot under constant faults -------------------------------------------------------------------------------
class FaultyStore(MemoryStore):
    """A thousand jobs behind a store that loses its connection every `every`-th read, as ZooKeeper does under the
    fault suite's constant faults: no read of the whole store fits between two faults."""

    READS = (
        "read_specs",
        "read_job_states",
        "read_paused",
        "get_launch",
        "open_launches",
        "read_job_results",
        "read_outbox",
        "history",
        "full_histories",
        "pending_triggers",
        "read_takeover",
    )

    def __init__(self, clock: FakeClock, every: int) -> None:
        super().__init__(clock)
        self.every, self.reads, self.cuts, self.inside = every, 0, 0, False

    def __getattribute__(self, name: str) -> Any:
        method = super().__getattribute__(name)
        if name not in FaultyStore.READS or not self.every or self.inside:  # a read's own reads are part of it
            return method

        def cut_now_and_then(*args: Any, **kwargs: Any) -> Any:
            self.reads += 1
            if self.reads % self.every == 0:
                self.cuts += 1
                raise StateStoreUnavailable("ZooKeeper unavailable during a read: ConnectionLoss")
            self.inside = True
            try:
                return method(*args, **kwargs)
            finally:
                self.inside = False

        return cut_now_and_then


def thousand_jobs(clock: FakeClock) -> FaultyStore:
    store = FaultyStore(clock, every=0)
    names = [f"job-{n:04d}" for n in range(1000)]
    store.write_specs([SpecChange(name, DOC, None) for name in names])
    store.begin(FakeFence(), [begin_item(name, minute) for name in names for minute in range(2)])
    return store


def test_a_periodic_snapshot_completes_under_constant_faults_resuming_each_cut_step(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    store = thousand_jobs(clock)
    store.every = 7  # a fault every seventh read
    snaps = PeriodicSnapshots(store, SnapshotPolicy(tmp_path / "snaps", timedelta(seconds=10), 2), clock)
    path = snaps.write_one()
    assert path is not None and store.cuts > 0
    written = load(path)
    assert len(written.specs) == 1000 and len(written.launches) == 2000
    assert clock.now() - T0 < timedelta(seconds=60), "each cut costs a pause, not a new read of everything"


def test_a_store_that_stays_away_fails_the_snapshot_once_its_patience_is_spent(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    store = thousand_jobs(clock)
    store.every = 1  # every read refused
    snaps = PeriodicSnapshots(store, SnapshotPolicy(tmp_path / "snaps", timedelta(seconds=10), 2), clock)
    assert snaps.write_one() is None and files(tmp_path / "snaps") == []
    assert timedelta(minutes=1.9) <= clock.now() - T0 <= timedelta(minutes=3)
    with pytest.raises(StateStoreUnavailable):  # a manual export is not patient: it says so at once
        capture(store, source="x", now=T0)

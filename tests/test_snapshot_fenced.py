"""A periodic snapshot is written only by a leader that still holds the fence it started with.

Found by the 60-minute process run: a snapshot read resumed step by step across the loss of the ensemble's data
(its session expired, the client reconnected to the emptied ensemble) and was written after the loss, stamped with
its start. It was then the newest file and was restored later, over an era that had launched what it recorded
`failed_to_launch`: 11 records that the backend contradicts.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from cronframework.ops.snapshot import PeriodicSnapshots, SnapshotPolicy
from cronframework.records import JobState, LaunchRecord
from cronframework.store.sqlite import SoleLeader
from cronframework.testing import FakeClock, FakeFence, MemoryStore
from tests.test_snapshot import T0, begin_item, files


class LostDuringTheRead(MemoryStore):
    """The leader's session ends while the snapshot reads the launches (the ensemble's data is lost)."""

    def __init__(self, clock: FakeClock, leadership: SoleLeader) -> None:
        super().__init__(clock)
        self.leadership = leadership

    def open_launches(self) -> list[LaunchRecord]:
        self.leadership.active = False
        return super().open_launches()


def snapshots(tmp_path: Path, leading: bool) -> tuple[PeriodicSnapshots, Path]:
    clock = FakeClock(T0)
    leadership = SoleLeader(epoch=3, replica="r1")
    store = LostDuringTheRead(clock, leadership) if not leading else MemoryStore(clock)
    store.begin(FakeFence(), [begin_item("a", 1)])
    store.put_job_states(FakeFence(), [JobState("a", T0 + timedelta(minutes=2))])
    folder = tmp_path / "snaps"
    return PeriodicSnapshots(store, SnapshotPolicy(folder, timedelta(seconds=10), 2), clock, leadership), folder


def test_a_snapshot_whose_leader_lost_its_fence_during_the_read_is_not_written(tmp_path: Path) -> None:
    snaps, folder = snapshots(tmp_path, leading=False)
    assert snaps.write_one() is None
    assert files(folder) == []


def test_a_snapshot_of_a_leader_that_still_leads_is_written(tmp_path: Path) -> None:
    snaps, folder = snapshots(tmp_path, leading=True)
    assert snaps.write_one() is not None
    assert len(files(folder)) == 1

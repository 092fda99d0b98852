"""A ZooKeeper ensemble whose data is lost, restored from the leader's newest periodic snapshot: what the restore
may repeat, and the checks that hold it to that.

A snapshot holds every job's watermark (the next instant to decide) and every record up to it. The restored
cluster starts from those watermarks, so it decides again every instant from a job's watermark to the loss -- at
most the snapshot's age of instants -- and nothing before it. What it decides again that had been launched is found
by name (`already_existed`), never launched a second time. Epochs start again at 0 in the restored root: evidence
from after the loss counts its epochs in an era of its own (`ERA`).
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from kazoo.client import KazooClient

ERA = 1_000_000  # epochs of the n-th restored root are counted from n * ERA


@dataclass(frozen=True)
class Restore:
    snapshot: str
    taken: float  # the snapshot's created_at (real time)
    lost: float  # when the ensemble lost its data
    restored: float  # when the import finished
    watermarks: dict[str, datetime]  # per job: the next instant the snapshot had left to decide


def read_snapshot(path: Path, lost: float, restored: float) -> Restore:
    with gzip.open(path, "rt") as handle:
        body = json.load(handle)
    marks = {s["job"]: datetime.fromisoformat(s["next_scheduled"]) for s in body["job_states"] if s["next_scheduled"]}
    taken = datetime.fromisoformat(body["created_at"]).timestamp()
    return Restore(path.name, taken, lost, restored, marks)


def empty_root(hosts: str, root: str) -> None:
    """What the replicas recreated on the empty ensemble goes, so the import finds an empty root."""
    client = KazooClient(hosts=hosts, timeout=10)
    client.start(timeout=30)
    try:
        if client.exists(root):
            client.delete(root, recursive=True)
    finally:
        client.stop()
        client.close()


def era(at: float, cuts: list[float]) -> int:
    """How many losses came before `at`."""
    return sum(at >= cut for cut in cuts)

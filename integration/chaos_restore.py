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
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from kazoo.client import KazooClient

from cronframework.naming import LaunchIdentity
from cronframework.schedule.expression import parse_schedule

ERA = 1_000_000  # epochs of the n-th restored root are counted from n * ERA
RECORDED_SPAN = timedelta(minutes=10)  # before a watermark, the instants a snapshot must hold a record of each


@dataclass(frozen=True)
class Restore:
    snapshot: str
    taken: float  # the snapshot's created_at (real time)
    lost: float  # when the ensemble lost its data
    restored: float  # when the import finished
    watermarks: dict[str, datetime]  # per job: the next instant the snapshot had left to decide
    unrecorded: tuple[str, ...] = ()  # launches before their job's watermark that the snapshot holds no record of


def read_snapshot(path: Path, lost: float, restored: float) -> Restore:
    with gzip.open(path, "rt") as handle:
        body = json.load(handle)
    marks = {s["job"]: datetime.fromisoformat(s["next_scheduled"]) for s in body["job_states"] if s["next_scheduled"]}
    taken = datetime.fromisoformat(body["created_at"]).timestamp()
    return Restore(path.name, taken, lost, restored, marks, unrecorded(body, marks))


def unrecorded(body: dict[str, Any], marks: dict[str, datetime]) -> tuple[str, ...]:
    """Each job's scheduled instants, from its first record in the snapshot (at most `RECORDED_SPAN` back) up to
    its watermark, that have no record there: the restored cluster never decides them again, so each is lost."""
    names = {str(r["name"]) for r in body.get("launches", [])}
    first: dict[str, datetime] = {}
    for record in body.get("launches", []):
        if not record.get("manual") and record.get("attempt", 1) == 1:
            at = datetime.fromisoformat(record["scheduled"])
            first[record["job"]] = min(at, first.get(record["job"], at))
    out = []
    for spec in body.get("specs", []):
        job, mark = spec["name"], marks.get(spec["name"])
        if mark is None or job not in first:
            continue
        schedule = parse_schedule(spec["document"]["schedule"], job=job)
        for instant in schedule.between(max(first[job], mark - RECORDED_SPAN), mark - timedelta(microseconds=1)):
            if (name := LaunchIdentity(job, instant).name) not in names:
                out.append(name)
    return tuple(out)


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

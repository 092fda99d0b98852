"""Where each piece of state lives under the store's root znode, and its byte form (docs/design.md).

Every znode stays small (a spec document, one record, one job state): reads cost O(what is asked), and no
single write approaches jute.maxbuffer (1 MB). A job's launch records sit in one folder per UTC hour of their
scheduled instant (`launches/<job>/<yyyymmddhh>/<launch name>`): ZooKeeper can only list a folder whole, so a flat
folder made `history(job, 20)` cost O(every record kept) -- seconds at 100k records. An hour holds at most 3,600
scheduled launches of a job (second-level schedules), and history lists the newest hours until it has enough."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cronframework.errors import StateStoreError
from cronframework.naming import parse_launch_name
from cronframework.records import TriggerRequest

# half of jute.maxbuffer: a spec or report larger than this is refused, not truncated
MAX_NODE_BYTES = 512 * 1024
TRIGGER_PREFIX = "t-"
STAMP_WIDTH = len("20261125t063000z")  # naming.py's launch name stamp
SECTIONS = ("specs", "jobs", "paused", "launches", "open", "triggers", "election", "results", "outbox")


@dataclass(frozen=True)
class Layout:
    root: str

    def section(self, name: str) -> str:
        return f"{self.root}/{name}"

    def spec(self, job: str) -> str:
        return f"{self.root}/specs/{job}"

    def job(self, job: str) -> str:
        return f"{self.root}/jobs/{job}"

    def paused(self, job: str) -> str:
        return f"{self.root}/paused/{job}"

    def results(self, job: str) -> str:
        return f"{self.root}/results/{job}"

    def outbox(self, notice: str) -> str:
        return f"{self.root}/outbox/{notice}"

    def launch_dir(self, job: str) -> str:
        return f"{self.root}/launches/{job}"

    def launch_hour(self, job: str, hour: str) -> str:
        return f"{self.root}/launches/{job}/{hour}"

    def launch(self, name: str, job: str | None = None) -> str:
        """Pass `job` when known: parsing the name is the costly part of a 10k-launch batch."""
        return f"{self.launch_dir(job or parse_launch_name(name).job)}/{hour_of_name(name)}/{name}"

    def open(self, name: str) -> str:
        return f"{self.root}/open/{name}"

    def trigger(self, trigger_id: str) -> str:
        return f"{self.root}/triggers/{trigger_id}"

    @property
    def election(self) -> str:
        return f"{self.root}/election"

    @property
    def takeover(self) -> str:
        return f"{self.root}/takeover"

    @property
    def clock(self) -> str:
        return f"{self.root}/clock"

    @property
    def chain(self) -> str:
        """Versioned by every sync point one transaction, so that none applies behind one that failed (chain.py)."""
        return f"{self.root}/chain"


HOUR_FORMAT = "%Y%m%d%H"


def hour_of_name(name: str) -> str:
    """The hourly folder of a launch, read off its fixed-width name (naming.py: `...-YYYYMMDDtHHMMSSz[-m][-aN]`); a
    retry sits beside the run it retries."""
    if name[-1] != "z" and not name.endswith("-m"):
        name = name[: name.rindex("-a")]
    stamp = name[-18:-2] if name.endswith("-m") else name[-16:]
    return stamp[:8] + stamp[9:11]


def hour_of(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime(HOUR_FORMAT)


def normalize_root(root: str) -> str:
    root = "/" + root.strip("/")
    if root == "/":
        raise StateStoreError("the ZooKeeper store needs its own root znode, not '/'")
    return root


def encode_json(document: Mapping[str, Any], what: str) -> bytes:
    raw = json.dumps(document, separators=(",", ":"), sort_keys=True).encode()
    if len(raw) > MAX_NODE_BYTES:
        raise StateStoreError(f"{what} is {len(raw)} bytes; a znode holds at most {MAX_NODE_BYTES}")
    return raw


def decode_json(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise StateStoreError(f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise StateStoreError(f"{what} is not a JSON object")
    return value


def encode_trigger(job: str, force: bool, now: datetime) -> bytes:
    return encode_json({"job": job, "force": force, "requested_at": now.isoformat()}, "trigger request")


def decode_trigger(trigger_id: str, raw: bytes) -> TriggerRequest:
    data = decode_json(raw, f"trigger {trigger_id}")
    requested = datetime.fromisoformat(data["requested_at"])
    return TriggerRequest(id=trigger_id, job=data["job"], requested_at=requested, force=bool(data["force"]))


def launch_order(job: str) -> Callable[[str], tuple[str, bool, str]]:
    """Sort key for the launch names of `job` (scheduled instant, manual after scheduled, then the name), read off
    the fixed-width stamp after the job's name: no reads, and no parsing (a status page sorts 30,000 names; parsing
    each cost a quarter of a second)."""
    stamp = len(job) + 1
    manual = stamp + STAMP_WIDTH

    def key(name: str) -> tuple[str, bool, str]:
        return name[stamp:manual], name.startswith("-m", manual), name

    return key

"""The applied job specs, parsed once per version: every replica keeps this warm so a takeover does not re-read."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from pydantic import ValidationError

from cronframework import metrics
from cronframework.abc import ReadStore
from cronframework.errors import CronframeworkError, ScheduleError
from cronframework.heap import gc_paused
from cronframework.records import JsonDocument, StoredSpec
from cronframework.schedule.expression import Schedule, parse_schedule
from cronframework.spec.files import field_problems
from cronframework.spec.model import JobSpec

log = logging.getLogger("cronframework.jobs")


@dataclass(frozen=True)
class Job:
    spec: JobSpec
    schedule: Schedule
    version: int


class BrokenSpec(CronframeworkError):
    """A stored spec the scheduler cannot compile, so its job is not scheduled. `apply` and `run` validate before
    they write, so this means a spec written by another version or around them; `status` shows the reason."""


def compile_job(stored: StoredSpec) -> Job:
    """The stored spec, validated and with its schedule parsed; BrokenSpec (one line) when it cannot be."""
    try:
        spec = _validated(stored)
        schedule = parse_schedule(spec.schedule, job=spec.name, timezone=spec.timezone, dst=spec.dst)
    except ValidationError as exc:
        raise BrokenSpec("; ".join(field_problems(exc))) from None
    except ScheduleError as exc:
        raise BrokenSpec(f"field 'schedule': {exc}") from None
    except (TypeError, ValueError) as exc:  # not a mapping at all
        raise BrokenSpec(f"not a job spec: {exc}") from None
    return Job(spec, schedule, stored.version)


def _validated(stored: StoredSpec) -> JobSpec:
    """The spec validated from its stored JSON when it has not been decoded (pydantic parses and validates in one
    pass, several times faster than json.loads and then the dict), else from the document. The name is appended
    as the last key: as with the dict, it wins over a name in the document."""
    document = stored.document
    if isinstance(document, JsonDocument) and not document.decoded:
        raw = document.raw.strip()
        if raw[:1] == b"{" and raw[-1:] == b"}":
            name = json.dumps(stored.name).encode()
            body = raw[1:-1].strip()
            return JobSpec.model_validate_json(b"{" + body + (b"," if body else b"") + b'"name":' + name + b"}")
    return JobSpec.model_validate({**document, "name": stored.name})


def spec_problem(stored: StoredSpec) -> str | None:
    """Why the scheduler does not schedule this stored spec (one line), or None when it does: what `status` shows
    as a broken job, and what a manual trigger of it should be refused with."""
    try:
        compile_job(stored)
    except BrokenSpec as exc:
        return str(exc)
    return None


class SpecCache:
    """Specs from the store, re-parsed only when their version moves; `changed` is set on every change.

    With `background=True` (replicas) a thread of its own re-reads the store after each change, so the leader's
    loop never stalls on reading 10k specs: it takes the compiled snapshot (`latest()`). Without it (the fake-clock
    tests), `latest()` re-reads in the caller's thread, which keeps those tests deterministic.

    `stamp` (optional) reads a token that moves with every spec write, e.g. the ZooKeeper specs folder's
    mzxid/pzxid. A promotion then re-reads only when the token moved since the snapshot was read (`current()`):
    reading and decoding 10k specs is most of a 10k takeover, and a follower already holds them.
    """

    def __init__(
        self, store: ReadStore, *, background: bool = False, stamp: Callable[[], Hashable] | None = None
    ) -> None:
        self._store = store
        self._background = background
        self._stamp = stamp
        self._lock = threading.Lock()
        self._reading = threading.Lock()  # one refresh at a time, so a snapshot and its stamp always match
        self._covered: Hashable | None = None  # the stamp read just before the snapshot's specs were read
        self._jobs: dict[str, Job] = {}
        self._dirty = threading.Event()
        self.changed = threading.Event()
        self.listeners: list[Callable[[], None]] = []
        self.invalid: dict[str, str] = {}  # job -> why its stored spec does not compile (those are not scheduled)
        self._invalid_versions: dict[str, int] = {}

    def start(self) -> None:
        self.refresh()
        self._store.watch_specs(self._on_change)
        if self._background:
            threading.Thread(target=self._refresh_loop, name="spec-cache", daemon=True).start()

    def _on_change(self) -> None:
        if self._background:
            self._dirty.set()
        else:
            self._announce()

    def _announce(self) -> None:
        self.changed.set()
        for listener in self.listeners:
            listener()

    def _refresh_loop(self) -> None:
        while True:
            self._dirty.wait()
            self._dirty.clear()
            try:
                self.refresh()
            except CronframeworkError as exc:  # store away: try again shortly, keep serving the last snapshot
                log.warning("spec refresh failed; retrying", extra={"error": str(exc)})
                self._dirty.set()
                threading.Event().wait(1.0)
                continue
            self._announce()

    def latest(self) -> dict[str, Job]:
        """The specs after the last announced change."""
        return self.jobs() if self._background else self.refresh()

    def current(self) -> dict[str, Job]:
        """The specs as the store holds them now, for a promotion: the warm snapshot when the store's stamp has
        not moved since it was read, else a fresh read. Without a stamp, always a fresh read."""
        if self._stamp is None:
            return self.refresh()
        with self._reading:
            stamp = self._stamp()
            with self._lock:
                if self._covered is not None and stamp == self._covered:
                    log.info("job specs warm", extra={"jobs": len(self._jobs)})
                    return dict(self._jobs)
            return self._read(stamp)

    def refresh(self) -> dict[str, Job]:
        with self._reading:
            return self._read(self._stamp() if self._stamp is not None else None)

    def _read(self, stamp: Hashable | None) -> dict[str, Job]:
        """Re-read every spec; `stamp` was read before them, so a write after it moves the stamp past it."""
        self._covered = None
        with gc_paused():  # 100k specs decoded and compiled: the collector would rescan them all, over and over
            return self._compile_all(self._store.read_specs(), stamp)

    def _compile_all(self, stored: dict[str, StoredSpec], stamp: Hashable | None) -> dict[str, Job]:
        with self._lock:
            self._covered = stamp
            fresh: dict[str, Job] = {}
            for name, item in stored.items():
                old = self._jobs.get(name)
                if old is not None and old.version == item.version:
                    fresh[name] = old
                elif self._invalid_versions.get(name) != item.version:  # a broken version is reported once
                    job = self._compile(item)
                    if job is not None:
                        fresh[name] = job
            for name in set(self.invalid) - set(stored):  # deleted: no longer broken
                del self.invalid[name], self._invalid_versions[name]
            metrics.BROKEN_SPECS.set(len(self.invalid))
            self._jobs = fresh
            return dict(fresh)

    def _compile(self, item: StoredSpec) -> Job | None:
        try:
            job = compile_job(item)
        except BrokenSpec as exc:
            self.invalid[item.name], self._invalid_versions[item.name] = str(exc), item.version
            log.error("stored spec is invalid; job not scheduled", extra={"job": item.name, "error": str(exc)})
            return None
        self.invalid.pop(item.name, None)
        self._invalid_versions.pop(item.name, None)
        return job

    def jobs(self) -> dict[str, Job]:
        with self._lock:
            return dict(self._jobs)

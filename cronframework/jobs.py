"""The applied job specs, parsed once per version: every replica keeps this warm so a takeover does not re-parse."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import ValidationError

from cronframework.errors import CronframeworkError
from cronframework.jobspec import JobSpec
from cronframework.schedule import Schedule, parse_schedule
from cronframework.store import StateStore, StoredSpec

log = logging.getLogger("cronframework.jobs")


@dataclass(frozen=True)
class Job:
    spec: JobSpec
    schedule: Schedule
    version: int


def compile_job(stored: StoredSpec) -> Job:
    spec = JobSpec.model_validate({**stored.document, "name": stored.name})
    schedule = parse_schedule(spec.schedule, job=spec.name, timezone=spec.timezone, dst=spec.dst)
    return Job(spec, schedule, stored.version)


class SpecCache:
    """Specs from the store, re-parsed only when their version moves; `changed` is set on every change.

    With `background=True` (replicas) a thread of its own re-reads the store after each change, so the leader's
    loop never stalls on reading 10k specs: it takes the compiled snapshot (`latest()`). Without it (the fake-clock
    tests), `latest()` re-reads in the caller's thread, which keeps those tests deterministic.
    """

    def __init__(self, store: StateStore, *, background: bool = False) -> None:
        self._store = store
        self._background = background
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._dirty = threading.Event()
        self.changed = threading.Event()
        self.listeners: list[Callable[[], None]] = []
        self.invalid: dict[str, str] = {}

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

    def refresh(self) -> dict[str, Job]:
        stored = self._store.read_specs()
        with self._lock:
            fresh: dict[str, Job] = {}
            for name, item in stored.items():
                old = self._jobs.get(name)
                if old is not None and old.version == item.version:
                    fresh[name] = old
                    continue
                job = self._compile(item)
                if job is not None:
                    fresh[name] = job
            self._jobs = fresh
            return dict(fresh)

    def _compile(self, item: StoredSpec) -> Job | None:
        try:
            job = compile_job(item)
        except (ValidationError, CronframeworkError, ValueError) as exc:
            self.invalid[item.name] = str(exc).splitlines()[0]
            log.error("stored spec is invalid; job not scheduled", extra={"job": item.name, "error": str(exc)})
            return None
        self.invalid.pop(item.name, None)
        return job

    def jobs(self) -> dict[str, Job]:
        with self._lock:
            return dict(self._jobs)

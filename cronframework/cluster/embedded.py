"""The embedded default: one replica, no ZooKeeper, state in SQLite, jobs from files. Same launch protocol.

`cronframework run PATH...` applies the job files to the local store (with the same diff `apply` shows) at start and
again on each SIGHUP, and runs the leader session until SIGTERM.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cronframework import metrics
from cronframework.abc import Clock, Closeable, StateStore
from cronframework.adapters import BackendSet
from cronframework.catalog.apply import SpecDiff, apply_diff, diff_specs
from cronframework.catalog.cache import SpecCache
from cronframework.clock import SystemClock
from cronframework.cluster.config import ApiSection, ServiceConfig
from cronframework.engine.leader import LeaderConfig, LeaderSession
from cronframework.errors import CronframeworkError, SpecErrors
from cronframework.spec.files import load_jobs
from cronframework.spec.model import JobSpec
from cronframework.store.sqlite import SoleLeader, SqliteStore

log = logging.getLogger("cronframework.embedded")
CLUSTER = "embedded"  # the launches' cronframework.cluster label


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "cronframework" / "embedded"


ServeEmbeddedApi = Callable[
    [ApiSection, StateStore, SoleLeader, Callable[[], LeaderSession | None], Clock, float], Closeable | None
]
"""Starts the HTTP API beside the embedded scheduler (`api.wiring.serve_embedded`, passed in by the CLI)."""


@dataclass
class EmbeddedOptions:
    paths: Sequence[str]
    state_dir: Path = field(default_factory=default_state_dir)
    backends: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    leader: LeaderConfig = field(default_factory=lambda: LeaderConfig(cluster=CLUSTER))
    api: ApiSection | None = None  # None: no HTTP API (library use); `cronframework run` passes one

    @classmethod
    def from_config(cls, config: ServiceConfig, paths: Sequence[str], state_dir: Path) -> EmbeddedOptions:
        """The scheduler's config file read for one machine: its backends, scheduler, api and snapshot sections."""
        leader = config.leader_config(cluster=CLUSTER, source=str(state_dir))
        return cls(paths, state_dir, config.backends, leader, config.api)


def backend_configs(options: EmbeddedOptions) -> dict[str, dict[str, Any]]:
    """Per-backend config; the process backend keeps its launch directories beside the state file."""
    configs = {name: dict(conf) for name, conf in options.backends.items()}
    configs.setdefault("process", {}).setdefault("state_dir", str(options.state_dir / "process"))
    return configs


def run_embedded(
    options: EmbeddedOptions,
    stop: threading.Event,
    clock: Clock | None = None,
    reload: threading.Event | None = None,
    serve_api: ServeEmbeddedApi | None = None,
) -> LeaderSession:
    """Apply the files, take the state lock, and run the leader until `stop` is set; each time `reload` is set (by
    SIGHUP), the files are applied again."""
    specs = [loaded.spec for loaded in load_jobs(options.paths)]  # first: a file that does not validate leaves no state
    store = SqliteStore(options.state_dir / "state.sqlite")
    try:
        leadership = store.acquire_leadership(f"{socket.gethostname()}:{os.getpid()}")
        applied = apply_specs(store, specs)
        log.info("job files applied", extra={**applied.fields(), "state": str(options.state_dir)})
        cache = SpecCache(store)
        cache.start()
        backends = BackendSet(backend_configs(options), loader=metrics.instrumented_loader)
        clock = clock or SystemClock()
        observed = metrics.instrument_store(store)
        session = LeaderSession(observed, cache, backends, leadership, clock, options.leader, stop)
        reloader = Reloader(store, options.paths, reload).start() if reload is not None else None
        api = None
        if serve_api is not None and options.api is not None:
            observed_api = metrics.instrument_store(store)
            api = serve_api(options.api, observed_api, leadership, lambda: session, clock, options.leader.poll_interval)
        metrics.leading(leadership.epoch)
        try:
            session.run()
        finally:
            if reloader is not None:
                reloader.close()
            metrics.not_leading()
            leadership.active = False
            if api is not None:
                api.close()
            backends.close()
        return session
    finally:
        store.close()


@dataclass(frozen=True)
class Applied:
    jobs: int  # in the files
    diff: SpecDiff

    def fields(self) -> dict[str, int]:
        """For the log line: how many jobs the files hold and what applying them changed."""
        return {
            "jobs": self.jobs,
            "jobs_created": len(self.diff.created),
            "jobs_updated": len(self.diff.updated),
            "jobs_deleted": len(self.diff.deleted),
        }


def apply_files(store: SqliteStore, paths: Sequence[str]) -> Applied:
    """The store's specs made those of the files, jobs missing from them deleted (`apply --prune`). Validation comes
    first and covers every file, so an invalid file raises SpecErrors with nothing written."""
    return apply_specs(store, [loaded.spec for loaded in load_jobs(paths)])


def apply_specs(store: SqliteStore, specs: Sequence[JobSpec]) -> Applied:
    diff = diff_specs(specs, store.read_specs(), prune=True)
    apply_diff(store, diff)
    return Applied(len(specs), diff)


class Reloader:
    """Applies the job files again each time `requested` is set, on a thread of its own (see reload_on_hangup).

    The writes go through the store like `apply`'s; the store's spec watch then wakes the leader, which reconciles
    the changed specs as after any other spec change. A file that does not validate changes nothing: its errors
    are logged and the jobs already applied keep running.
    """

    def __init__(self, store: SqliteStore, paths: Sequence[str], requested: threading.Event) -> None:
        self._store, self._paths, self._requested = store, paths, requested
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="reload", daemon=True)

    def start(self) -> Reloader:
        self._thread.start()
        return self

    def close(self) -> None:
        self._closed = True
        self._requested.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while True:
            self._requested.wait()
            if self._closed:
                return
            self._requested.clear()
            try:
                self.reload()
            except Exception:  # an unforeseen failure must not end reloading for the rest of the process's life
                log.exception("jobs not reloaded; the running jobs are unchanged")

    def reload(self) -> Applied | None:
        """What was applied, or None when nothing could be (the reason is logged)."""
        log.info("reloading job files", extra={"paths": list(self._paths)})
        try:
            applied = apply_files(self._store, self._paths)
        except SpecErrors as exc:
            for error in exc.errors:
                log.error("invalid job file", extra={"error": str(error)})
            log.error("jobs not reloaded; the running jobs are unchanged", extra={"errors": len(exc.errors)})
            return None
        except CronframeworkError as exc:
            log.error("jobs not reloaded; the running jobs are unchanged", extra={"error": str(exc)})
            return None
        log.info("jobs reloaded", extra=applied.fields())
        return applied

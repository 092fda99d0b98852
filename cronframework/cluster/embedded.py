"""The embedded default: one replica, no ZooKeeper, state in SQLite, jobs from files. Same launch protocol.

`cronframework run PATH...` applies the job files to the local store (so a changed file changes the schedule on
the next start, with the same diff `apply` shows) and runs the leader session until SIGTERM.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cronframework.abc import Clock
from cronframework.adapters import BackendSet
from cronframework.catalog.apply import apply_diff, diff_specs
from cronframework.catalog.cache import SpecCache
from cronframework.clock import SystemClock
from cronframework.cluster.config import ApiSection
from cronframework.engine.leader import LeaderConfig, LeaderSession
from cronframework.ops import metrics
from cronframework.spec.files import load_jobs
from cronframework.store.sqlite import SoleLeader, SqliteStore

if TYPE_CHECKING:
    from cronframework.api.wiring import RunningApi

log = logging.getLogger("cronframework.embedded")


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "cronframework" / "embedded"


@dataclass
class EmbeddedOptions:
    paths: Sequence[str]
    state_dir: Path = field(default_factory=default_state_dir)
    backends: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    leader: LeaderConfig = field(default_factory=lambda: LeaderConfig(cluster="embedded"))
    api: ApiSection | None = None  # None: no HTTP API (library use); `cronframework run` passes one


def backend_configs(options: EmbeddedOptions) -> dict[str, dict[str, Any]]:
    """Per-backend config; the process backend keeps its launch directories beside the state file."""
    configs = {name: dict(conf) for name, conf in options.backends.items()}
    configs.setdefault("process", {}).setdefault("state_dir", str(options.state_dir / "process"))
    return configs


def run_embedded(options: EmbeddedOptions, stop: threading.Event, clock: Clock | None = None) -> LeaderSession:
    """Apply the files, take the state lock, and run the leader until `stop` is set."""
    specs_from_files = [loaded.spec for loaded in load_jobs(options.paths)]
    store = SqliteStore(options.state_dir / "state.sqlite")
    try:
        leadership = store.acquire_leadership(f"{socket.gethostname()}:{os.getpid()}")
        diff = diff_specs(specs_from_files, store.read_specs(), prune=True)
        apply_diff(store, diff)
        log.info(
            "job files applied",
            extra={
                "jobs": len(specs_from_files),
                "jobs_created": len(diff.created),
                "jobs_updated": len(diff.updated),
                "jobs_deleted": len(diff.deleted),
                "state": str(options.state_dir),
            },
        )
        cache = SpecCache(store)
        cache.start()
        backends = BackendSet(backend_configs(options), loader=metrics.instrumented_loader)
        clock = clock or SystemClock()
        observed = metrics.instrument_store(store)
        session = LeaderSession(observed, cache, backends, leadership, clock, options.leader, stop)
        api = _serve_api(options, store, leadership, session, clock)
        metrics.leading(leadership.epoch)
        try:
            session.run()
        finally:
            metrics.following()
            leadership.active = False
            if api is not None:
                api.close()
            backends.close()
        return session
    finally:
        store.close()


def _serve_api(
    options: EmbeddedOptions, store: SqliteStore, leadership: SoleLeader, session: LeaderSession, clock: Clock
) -> RunningApi | None:
    if options.api is None:
        return None
    from cronframework.api.wiring import serve_embedded  # late: the api imports the CLI, which imports this module

    observed = metrics.instrument_store(store)
    return serve_embedded(options.api, observed, leadership, lambda: session, clock, options.leader.poll_interval)

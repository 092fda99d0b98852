"""A leader session wired to fakes: a fake clock, the in-memory store and a backend with per-method faults."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cronframework.adapters import BackendSet
from cronframework.catalog.apply import spec_document
from cronframework.catalog.cache import SpecCache
from cronframework.engine.leader import LeaderConfig, LeaderSession
from cronframework.records import LaunchRecord, Outcome, SpecChange
from cronframework.spec.model import JobSpec
from cronframework.store.sqlite import SoleLeader
from cronframework.testing import FakeBackend, FakeClock, MemoryStore

T0 = datetime(2026, 11, 25, 6, 0, tzinfo=UTC)


def job(name: str, schedule: str = "* * * * *", **fields: Any) -> JobSpec:
    body = {
        "name": name,
        "schedule": schedule,
        "backend": "fake",
        "task": {"command": ["/bin/true"]},
        **fields,
    }
    return JobSpec.model_validate(body)


@dataclass
class Cluster:
    clock: FakeClock = field(default_factory=lambda: FakeClock(T0))
    backend: FakeBackend = field(default_factory=FakeBackend)
    store: MemoryStore = field(init=False)
    epoch: int = 0

    def __post_init__(self) -> None:
        self.store = MemoryStore(self.clock)

    def apply(self, *specs: JobSpec) -> None:
        current = self.store.read_specs()
        changes = [
            SpecChange(s.name, spec_document(s), current[s.name].version if s.name in current else None) for s in specs
        ]
        self.store.write_specs(changes)

    def leader(self, **config: Any) -> tuple[LeaderSession, SoleLeader]:
        """A fresh leader (a new epoch), as after a takeover."""
        self.epoch += 1
        leadership = SoleLeader(epoch=self.epoch, replica=f"r{self.epoch}")
        specs = SpecCache(self.store)
        specs.start()
        backends = BackendSet(preset={"fake": self.backend})
        session = LeaderSession(
            self.store, specs, backends, leadership, self.clock, LeaderConfig(**config), threading.Event()
        )
        return session, leadership

    def run_for(self, session: LeaderSession, seconds: float, step: float = 1.0) -> list[LaunchRecord]:
        records: list[LaunchRecord] = []
        end = self.clock.now() + timedelta(seconds=seconds)
        while self.clock.now() < end:
            self.clock.advance(step)
            records += session.tick()
        return records

    def running(self) -> list[str]:
        """The launches the backend runs now, by name."""
        return sorted(name for name, status in self.backend.launches.items() if status.state.active)

    def outcomes(self, job_name: str) -> list[tuple[str, Outcome | None, str | None]]:
        return [(r.name, r.outcome, r.reason) for r in reversed(self.store.history(job_name, limit=10_000))]

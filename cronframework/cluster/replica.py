"""One scheduler replica: keep the job specs warm, stand in the election, lead when elected, hand over on SIGTERM.

Followers never call a backend. A leader session ends on LeadershipLost (SUSPENDED makes `check` fail at once, LOST
drops the fence) and the replica goes back to waiting; the election re-joins by itself.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from cronframework import metrics
from cronframework.abc import Clock, Closeable, StateStore
from cronframework.adapters import BackendSet
from cronframework.catalog.cache import SpecCache
from cronframework.clock import SystemClock
from cronframework.cluster.config import ServiceConfig
from cronframework.cluster.election import Election, ZkFence
from cronframework.engine.housekeeping import freeze_heap
from cronframework.engine.leader import LeaderSession
from cronframework.errors import CronframeworkError, LeadershipLost
from cronframework.store.zookeeper.client import call
from cronframework.store.zookeeper.store import ZooKeeperStore

log = logging.getLogger("cronframework.replica")


class SessionLease:
    """How long the session is known to live: ZooKeeper expires it no sooner than `timeout` after it last heard
    from us, so a round trip sent at t proves it until t + timeout. A leader frozen (SIGSTOP, a stalled VM) or cut
    off past that has a successor, yet its client may not have noticed: the election still holds its fence.
    So a check more than a third of the timeout after the last proof sends a new round trip first (one every few
    seconds at most, shared by every thread that checks), and a failed one is the end of leadership."""

    def __init__(self, confirm: Callable[[], None], timeout: float, clock: Clock) -> None:
        self._confirm, self._renew_after, self._clock = confirm, timeout / 3, clock
        self._lock = threading.Lock()
        self._proven_at: float | None = None

    def hold(self, replica: str) -> None:
        if self._fresh():
            return
        with self._lock:
            if self._fresh():
                return
            sent = self._clock.monotonic()
            try:
                self._confirm()
            except Exception as exc:  # whatever the client raises, the session is not proven
                raise LeadershipLost(f"replica {replica} could not confirm its session: {exc!r}") from exc
            self._proven_at = sent

    def _fresh(self) -> bool:
        return self._proven_at is not None and self._clock.monotonic() - self._proven_at < self._renew_after


@dataclass
class ZkLeadership:
    """Valid while the election still holds the same fence (SUSPENDED or a pause of the whole process clears it,
    so `check` fails at once) and, with a `lease`, while the session is proven to live (SessionLease)."""

    election: Election
    held: ZkFence
    lease: SessionLease | None = None

    @property
    def fence(self) -> ZkFence:
        return self.held

    def check(self) -> None:
        self._still_held()
        if self.lease is not None:
            self.lease.hold(self.held.replica)
            self._still_held()  # the round trip may have taken long enough for the election to move on

    def _still_held(self) -> None:
        if not self.election.holds(self.held):
            raise LeadershipLost(f"replica {self.held.replica} no longer leads (epoch {self.held.epoch})")


@dataclass
class ReplicaState:
    replica: str
    role: str = "starting"
    epoch: int | None = None
    sessions: int = 0
    last_error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


ServeApi = Callable[["Replica", ZooKeeperStore, StateStore], Closeable | None]
"""Starts the HTTP API beside a replica (`api.wiring.serve_replica`, passed in by the CLI: the API is an edge that
observes the cluster, so the cluster does not import it)."""


class Replica:
    def __init__(
        self,
        config: ServiceConfig,
        *,
        replica_id: str | None = None,
        clock: Clock | None = None,
        serve_api: ServeApi | None = None,
    ) -> None:
        self.config = config
        self._serve_api = serve_api
        self.replica_id = replica_id or f"{socket.gethostname()}-{os.getpid()}"
        self.clock = clock or SystemClock()
        self.stop = threading.Event()
        self._wake = threading.Event()
        self.state = ReplicaState(self.replica_id)
        self.session: LeaderSession | None = None

    def request_stop(self) -> None:
        self.stop.set()
        self._wake.set()
        if self.session is not None:
            self.session.wake()

    def run(self) -> None:
        zk = self.config.zookeeper
        store = zk.connect()
        specs = SpecCache(store, background=True, stamp=specs_stamp(store))
        specs.listeners.append(self._freeze_if_following)
        specs.start()
        freeze_heap()  # the compiled specs are most of the heap: the promotion's collection need not walk them
        election = Election(
            store.client,
            zk.root,
            self.replica_id,
            acl=store.acl,
            on_elected=lambda _fence: self._wake.set(),
            on_suspended=self._suspended,
            on_lost=self._suspended,
            max_pause=zk.session_timeout / 2,  # a shorter stand-still cannot have outlived the session
        ).start()
        backends = BackendSet(self.config.backends, loader=metrics.instrumented_loader)
        self.state.role = "follower"
        api = self._serve_api(self, store, metrics.instrument_store(store)) if self._serve_api else None
        log.info("replica started", extra={"replica": self.replica_id, "zk_root": zk.root})
        try:
            self._loop(store, specs, election, backends)
        finally:
            self._shutdown(store, election, backends, api)

    def _loop(self, store: ZooKeeperStore, specs: SpecCache, election: Election, backends: BackendSet) -> None:
        while not self.stop.is_set():
            fence = election.fence
            if fence is None:
                self._wake.wait(0.5)
                self._wake.clear()
                continue
            self._lead(store, specs, ZkLeadership(election, fence, self._lease(store, fence)), backends)

    def _lease(self, store: ZooKeeperStore, fence: ZkFence) -> SessionLease:
        timeout = self.config.zookeeper.session_timeout

        def confirm() -> None:
            if store.client.exists_async(fence.node_path).get(timeout=timeout) is None:
                raise LeadershipLost(f"election node {fence.node_path} is gone")

        return SessionLease(confirm, timeout, self.clock)

    def _lead(self, store: ZooKeeperStore, specs: SpecCache, leadership: ZkLeadership, backends: BackendSet) -> None:
        fence = leadership.fence
        self.state.role, self.state.epoch = "leader", fence.epoch
        self.state.sessions += 1
        log.info("leading", extra={"replica": fence.replica, "epoch": fence.epoch})
        metrics.leading(fence.epoch)
        observed = metrics.instrument_store(store)
        self.session = LeaderSession(
            observed, specs, backends, leadership, self.clock, self.config.leader_config(), self.stop
        )
        try:
            self.session.run()
        except LeadershipLost as exc:
            log.warning("leadership lost; back to following", extra={"epoch": fence.epoch, "reason": str(exc)})
        except CronframeworkError as exc:
            self.state.last_error = str(exc)
            log.error("leader session failed; will retry", extra={"epoch": fence.epoch, "error": str(exc)})
            self.stop.wait(1.0)
        finally:
            metrics.not_leading()
            self.session = None
            self.state.role = "follower"

    def _freeze_if_following(self) -> None:
        """After a follower's spec refresh (the leader freezes in its own loop, between ticks)."""
        if self.session is None:
            freeze_heap()

    def _suspended(self) -> None:
        session = self.session
        if session is not None:
            session.wake()

    def _shutdown(self, store: ZooKeeperStore, election: Election, backends: BackendSet, api: Closeable | None) -> None:
        """Resign first, so the next replica promotes while this one closes the rest (closing the API alone
        waits up to half a second). Nothing here calls a backend: the leader session has ended, and its launcher
        waited for every submit in flight, before the loop returned."""
        log.info("shutting down; handing leadership over", extra={"replica": self.replica_id})
        election.resign()
        if api is not None:
            api.close()
        backends.close()
        store.close()
        self.state.role = "stopped"


def specs_stamp(store: ZooKeeperStore, timeout: float = 10.0) -> Callable[[], Hashable]:
    """The specs folder's (mzxid, pzxid), for SpecCache: every `write_specs` transaction sets the folder's data,
    and a spec created or deleted changes its children, so a spec written after the stamp was read moves it.
    `sync` first: the server this client reads from may lag the one an operator wrote through."""
    client, path = store.client, store.layout.section("specs")

    def stamp() -> Hashable:
        call(client, "syncing before reading the specs stamp", lambda: client.sync_async(path), timeout)
        stat = call(client, "reading the specs stamp", lambda: client.exists_async(path), timeout)
        return None if stat is None else (stat.mzxid, stat.pzxid)

    return stamp

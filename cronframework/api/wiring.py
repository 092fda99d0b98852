"""Start the API beside a scheduler: a ZooKeeper replica (address published for forwarding) or the embedded mode.

A port that cannot be bound is logged loudly and the scheduler keeps scheduling: the API observes and accepts
operator requests, it is not on the launch path. A token misconfiguration is different and stops the start.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cronframework.abc import Clock, StateStore
from cronframework.adapters import BackendSet
from cronframework.cluster.config import ApiSection
from cronframework.cluster.replica import Replica
from cronframework.engine.leader import LeaderSession
from cronframework.errors import CronframeworkError
from cronframework.store.sqlite import SoleLeader

from .access import Api
from .auth import TokenAuth
from .cluster import Cluster, LocalCluster, ZkCluster
from .server import ApiServer
from .tls import ServerTls

log = logging.getLogger("cronframework.api")


@dataclass
class RunningApi:
    server: ApiServer
    cluster: Cluster
    backends: BackendSet

    def close(self) -> None:
        if isinstance(self.cluster, ZkCluster):
            self.cluster.close()
        self.server.close()
        self.backends.close()


def advertised_url(config: ApiSection, server: ApiServer) -> str:
    if config.advertise_url:
        return config.advertise_url.rstrip("/")
    host = server.host if server.host not in ("0.0.0.0", "::", "") else socket.getfqdn()
    return f"{server.url.split(':', 1)[0]}://{host}:{server.port}"


def _serve(
    config: ApiSection, store: StateStore, cluster: Cluster, clock: Clock, backends: BackendSet
) -> ApiServer | None:
    """Token and TLS misconfigurations stop the start (CronframeworkError): a server that refuses every write or
    every handshake is worse than none. A port that cannot be bound does not."""
    tls = ServerTls.from_config(config.tls)
    auth = TokenAuth(config.token(), config.read_auth)
    api = Api(store, cluster, auth, clock, backends, tls.client_context() if tls else None)
    try:
        return ApiServer(api, config.host, config.port, tls).start()
    except CronframeworkError as exc:
        log.error("API not started; the scheduler runs without it", extra={"error": str(exc)})
        return None


def session_fresh(session: LeaderSession | None, now: datetime, within: float) -> tuple[bool, str]:
    """A leader is ready while its loop ticks; a stalled loop (stuck store call) is not."""
    if session is None:
        return False, "leader session not running"
    tick = session.state.last_tick
    if tick is None or (now - tick).total_seconds() > within:
        return False, f"leader loop has not ticked for more than {within:.0f}s"
    return True, "leading"


def serve_replica(replica: Replica, store: Any, observed: StateStore) -> RunningApi | None:
    config = replica.config.api
    if not config.enabled:
        return None
    within = max(10.0, 5 * replica.config.scheduler.poll_interval)

    def ready() -> tuple[bool, str]:
        role = replica.state.role
        if role == "leader":
            return session_fresh(replica.session, replica.clock.now(), within)
        return (role == "follower"), role

    cluster = ZkCluster(
        store.client,
        replica.config.zookeeper.root,
        replica.replica_id,
        leading=lambda: replica.state.role == "leader",
        ready=ready,
        acl=getattr(store, "acl", None),
    )
    backends = BackendSet(replica.config.backends)  # the API's own: it only reads logs and results through it
    server = _serve(config, observed, cluster, replica.clock, backends)
    if server is None:
        return None
    cluster.publish(advertised_url(config, server))
    return RunningApi(server, cluster, backends)


def serve_embedded(
    config: ApiSection,
    store: StateStore,
    leadership: SoleLeader,
    session: Callable[[], LeaderSession | None],
    clock: Clock,
    poll_interval: float,
    backends: Mapping[str, Mapping[str, Any]] | None = None,
) -> RunningApi | None:
    """`backends`: the embedded scheduler's backend configs (cli/run.py passes them), for launch logs."""
    if not config.enabled:
        return None
    within = max(10.0, 5 * poll_interval)
    cluster = LocalCluster(
        leadership.replica,
        epoch=lambda: leadership.epoch,
        leading=lambda: leadership.active,
        ready=lambda: session_fresh(session(), clock.now(), within),
    )
    readers = BackendSet(backends)
    server = _serve(config, store, cluster, clock, readers)
    if server is None:
        return None
    cluster.url = advertised_url(config, server)
    return RunningApi(server, cluster, readers)

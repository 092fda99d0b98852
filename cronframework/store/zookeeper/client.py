"""Connecting to ZooKeeper and translating kazoo's errors at the boundary.

Every store call goes through `call`: it waits on kazoo's async result with a deadline (a request queued
while the connection is down would otherwise block until the session is re-established) and turns kazoo
exceptions into the project's error tree, so callers retry StateStoreUnavailable and nothing else."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import (
    AuthFailedError,
    ConnectionClosedError,
    ConnectionLoss,
    KazooException,
    NoAuthError,
    OperationTimeoutError,
    SessionExpiredError,
)
from kazoo.retry import KazooRetry
from kazoo.security import ACL, Id, Permissions, make_digest_acl

from cronframework.errors import StateStoreError, StateStoreUnavailable
from cronframework.store.zookeeper.poll import PollingHandler

Auth = tuple[str, str]

TRANSIENT = (ConnectionLoss, SessionExpiredError, ConnectionClosedError, OperationTimeoutError)


def connect_zk(
    hosts: str,
    *,
    timeout: float = 10.0,
    session_timeout: float = 10.0,
    auth: Auth | None = None,
    retries: int = 3,
) -> KazooClient:
    """A started client; StateStoreUnavailable (one line, no traceback) when the ensemble cannot be reached.

    `session_timeout` bounds how long a dead leader keeps its election znode, i.e. the takeover time.
    Once connected, kazoo reconnects forever (capped backoff), so a LOST session can be re-established.
    """
    for _ in range(max(1, retries)):
        client = _new_client(hosts, session_timeout, auth)
        try:
            client.start(timeout=timeout)
            return client
        except (client.handler.timeout_exception, KazooException, OSError):
            _discard(client)
    raise StateStoreUnavailable(f"cannot reach ZooKeeper at {hosts} after {max(1, retries)} tries")


def _new_client(hosts: str, session_timeout: float, auth: Auth | None) -> KazooClient:
    retry = KazooRetry(max_tries=-1, delay=0.1, backoff=2, max_delay=2.0, ignore_expire=False)
    auth_data = [("digest", f"{auth[0]}:{auth[1]}")] if auth else None
    return KazooClient(
        hosts=hosts,
        timeout=session_timeout,
        connection_retry=retry,
        auth_data=auth_data,
        handler=PollingHandler(),
        logger=logging.LoggerAdapter(logging.getLogger("kazoo.client"), {"zk_hosts": hosts}),
    )


def ensemble(client: KazooClient) -> str:
    """The client's connect string (without its chroot), for error messages: which ensemble was unreachable."""
    return ",".join(f"{host}:{port}" for host, port in client.hosts or ())


def _discard(client: KazooClient) -> None:
    with contextlib.suppress(Exception):
        client.stop()
        client.close()


def digest_acl(auth: Auth, *, world_read: bool = False) -> list[ACL]:
    """All permissions for the `auth` identity; nothing (or read-only) for everyone else."""
    acl = [make_digest_acl(auth[0], auth[1], all=True)]
    if world_read:
        acl.append(ACL(Permissions.READ, Id("world", "anyone")))
    return acl


@contextlib.contextmanager
def zk_errors(what: str, client: KazooClient | None = None) -> Iterator[None]:
    """Translate kazoo exceptions raised inside the block; `what` names the operation for the message, and
    `client` (when given) the ensemble an unavailable error is about."""
    try:
        yield
    except StateStoreError:
        raise
    except TRANSIENT as exc:
        where = f" at {ensemble(client)}" if client is not None else ""
        raise StateStoreUnavailable(f"ZooKeeper{where} unavailable during {what}: {type(exc).__name__}") from exc
    except (NoAuthError, AuthFailedError) as exc:
        raise StateStoreError(
            f"ZooKeeper refused {what}: not authorized (check the store's digest credentials and ACLs)"
        ) from exc
    except KazooException as exc:
        raise StateStoreError(f"ZooKeeper error during {what}: {type(exc).__name__}") from exc


def call(
    client: KazooClient,
    what: str,
    start: Callable[[], Any],
    timeout: float,
    *,
    none_on: tuple[type[Exception], ...] = (),
) -> Any:
    """Run one async kazoo request and wait for it with a deadline, translating errors.

    Errors listed in `none_on` (e.g. NoNodeError for an optional read) return None instead.
    """
    with zk_errors(what, client):
        try:
            return start().get(timeout=timeout)
        except client.handler.timeout_exception as exc:
            raise StateStoreUnavailable(
                f"ZooKeeper at {ensemble(client)} did not answer {what} within {timeout:.0f}s"
            ) from exc
        except none_on:
            return None


def gather(
    client: KazooClient,
    what: str,
    pending: Sequence[Any],
    timeout: float,
    *,
    none_on: tuple[type[Exception], ...] = (),
) -> list[Any]:
    """Wait for many pipelined async results (already issued), translating errors; results in order."""
    return [call(client, what, _already(p), timeout, none_on=none_on) for p in pending]


def _already(result: Any) -> Callable[[], Any]:
    return lambda: result

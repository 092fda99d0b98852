"""Connecting to ZooKeeper and translating kazoo's errors at the boundary.

Every store call goes through `call`: it waits on kazoo's async result with a deadline (a request queued
while the connection is down would otherwise block until the session is re-established) and turns kazoo
exceptions into the project's error tree, so callers retry StateStoreUnavailable and nothing else.

Over TLS (`TlsFiles`) the servers' certificates are always verified, against the given CA, and by default their
names too; a handshake the client refuses is a StateStoreError that says why, at once, not a retried outage."""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
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
from kazoo.hosts import collect_hosts
from kazoo.retry import KazooRetry
from kazoo.security import ACL, Id, Permissions, make_digest_acl

from cronframework.errors import StateStoreError, StateStoreUnavailable
from cronframework.store.zookeeper.poll import PollingHandler

Auth = tuple[str, str]

TRANSIENT = (ConnectionLoss, SessionExpiredError, ConnectionClosedError, OperationTimeoutError)


@dataclass(frozen=True)
class TlsFiles:
    """The client side of ZooKeeper's TLS (the servers' `secureClientPort`): the CA file their certificates must
    chain to, and this client's own certificate and key when the servers require one (`ssl.clientAuth=need`)."""

    ca: str
    cert: str | None = None
    key: str | None = None
    check_hostname: bool = True  # the server's certificate must name the host in the connect string

    def context(self) -> ssl.SSLContext:
        """The same checks kazoo makes (it loads the system CAs too), for the handshake that explains a refusal."""
        context = ssl.create_default_context(cafile=self.ca)
        context.check_hostname = self.check_hostname
        if self.cert and self.key:
            context.load_cert_chain(self.cert, self.key)
        return context


def connect_zk(
    hosts: str,
    *,
    timeout: float = 10.0,
    session_timeout: float = 10.0,
    auth: Auth | None = None,
    retries: int = 3,
    tls: TlsFiles | None = None,
) -> KazooClient:
    """A started client; StateStoreUnavailable (one line, no traceback) when the ensemble cannot be reached, and
    StateStoreError when it can but refuses TLS (or this client refuses its certificate).

    `session_timeout` bounds how long a dead leader keeps its election znode, i.e. the takeover time.
    Once connected, kazoo reconnects forever (capped backoff), so a LOST session can be re-established.
    """
    for _ in range(max(1, retries)):
        client = _new_client(hosts, session_timeout, auth, tls)
        try:
            client.start(timeout=timeout)
            return client
        except (client.handler.timeout_exception, KazooException, OSError):
            _discard(client)
            _explain_tls(hosts, tls, timeout)
    raise StateStoreUnavailable(f"cannot reach ZooKeeper at {hosts} after {max(1, retries)} tries")


def _new_client(hosts: str, session_timeout: float, auth: Auth | None, tls: TlsFiles | None) -> KazooClient:
    retry = KazooRetry(max_tries=-1, delay=0.1, backoff=2, max_delay=2.0, ignore_expire=False)
    auth_data = [("digest", f"{auth[0]}:{auth[1]}")] if auth else None
    return KazooClient(
        hosts=hosts,
        timeout=session_timeout,
        connection_retry=retry,
        auth_data=auth_data,
        handler=PollingHandler(),
        logger=Redacting(logging.getLogger("kazoo.client"), {"zk_hosts": hosts}, auth[1] if auth else None),
        **_tls_options(tls),
    )


class Redacting(logging.LoggerAdapter):  # type: ignore[type-arg]
    """kazoo logs every request it sends at debug level, and its Auth request carries the digest password: the
    password is replaced in whatever this logger is given, before any handler sees it."""

    def __init__(self, logger: logging.Logger, extra: dict[str, Any], secret: str | None) -> None:
        super().__init__(logger, extra)
        self._secret = secret

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        if self._secret and self.isEnabledFor(level):
            msg, args = self._redact(msg), tuple(self._redact(a) for a in args)
        super().log(level, msg, *args, **kwargs)

    def _redact(self, value: object) -> object:
        text = str(value)
        return text.replace(str(self._secret), "<redacted>") if str(self._secret) in text else value


def _tls_options(tls: TlsFiles | None) -> dict[str, Any]:
    if tls is None:
        return {}
    return {
        "use_ssl": True,
        "ca": tls.ca,
        "certfile": tls.cert,
        "keyfile": tls.key,
        "verify_certs": True,
        "check_hostname": tls.check_hostname,
    }


def _explain_tls(hosts: str, tls: TlsFiles | None, timeout: float) -> None:
    """After a failed start over TLS: a server that answers but whose handshake fails will fail every retry the
    same way, so say why now (StateStoreError). A server that does not answer at all is left to the retries."""
    if tls is None:
        return
    try:
        context = tls.context()
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError: a CA, cert or key file that is not one
        raise StateStoreError(f"ZooKeeper TLS files unusable: {_why(exc)}") from None
    for host, port in collect_hosts(hosts)[0]:
        why = _handshake(context, host, port, timeout)
        if why:
            raise StateStoreError(f"ZooKeeper at {host}:{port} refused over TLS: {why}")


def _handshake(context: ssl.SSLContext, host: str, port: int, timeout: float) -> str | None:
    """Why a TLS handshake with one server fails; None when it succeeds or the server is not there at all."""
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=host) as conn,
        ):
            conn.sendall(b"isro")  # a four-letter word: a server that wanted our certificate closes now
            conn.recv(16)
    except ssl.SSLError as exc:
        return _why(exc)
    except OSError:
        return None
    return None


def _why(exc: Exception) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate not trusted: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed: {exc.reason or exc}"
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.strerror or exc}: {exc.filename}"
    return str(exc)


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

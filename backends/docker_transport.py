"""The docker SDK's connections, guarded where a request's bytes leave the process.

The adapter checks leadership right before each irreversible call (`send_guard.before_send`), but the SDK's own work
comes after that check: building the request, the session's settings, the connection pool. A leader frozen there
(SIGSTOP, a stalled VM) and thawed after its session expired still created containers: four at one thaw in the
60-minute Docker run, where the interpreter's lock stretched that work under load (docs/reliability.md). Each
connection here calls `before_send` as it writes a piece of a request, so a freeze anywhere before the bytes leave
is caught by the same guard. Outside an armed submit (reads, tools, tests) the call is a no-op.
"""

from __future__ import annotations

from typing import Any

import requests.adapters
from docker.transport.unixconn import UnixHTTPAdapter, UnixHTTPConnection, UnixHTTPConnectionPool

from backends.guarded_connections import GUARDED_POOLS
from cronframework.send_guard import before_send


class _GuardedUnixConnection(UnixHTTPConnection):  # type: ignore[misc]
    def send(self, data: Any) -> None:
        before_send()
        super().send(data)


class _GuardedUnixPool(UnixHTTPConnectionPool):  # type: ignore[misc]
    def _new_conn(self) -> _GuardedUnixConnection:
        return _GuardedUnixConnection(self.base_url, self.socket_path, self.timeout)


class _GuardedUnixAdapter(UnixHTTPAdapter):  # type: ignore[misc]
    def get_connection(self, url: str, proxies: Any = None) -> _GuardedUnixPool:
        with self.pools.lock:
            pool = self.pools.get(url)
            if isinstance(pool, _GuardedUnixPool):
                return pool
            pool = _GuardedUnixPool(url, self.socket_path, self.timeout, maxsize=self.max_pool_size)
            self.pools[url] = pool
            return pool


def guard_sends(session: requests.Session) -> None:
    """Every connection `session` (a docker APIClient) opens from now on checks the send guard as it writes."""
    for prefix, adapter in list(session.adapters.items()):
        if isinstance(adapter, UnixHTTPAdapter) and not isinstance(adapter, _GuardedUnixAdapter):
            guarded = _GuardedUnixAdapter(adapter.socket_path, adapter.timeout, max_pool_size=adapter.max_pool_size)
            session.mount(prefix, guarded)
            if getattr(session, "_custom_adapter", None) is adapter:  # the SDK's fallback for its own schemes
                session._custom_adapter = guarded  # type: ignore[attr-defined]
            adapter.close()
        elif isinstance(adapter, requests.adapters.HTTPAdapter):
            adapter.poolmanager.clear()
            adapter.poolmanager.pool_classes_by_scheme = GUARDED_POOLS

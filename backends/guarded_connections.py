"""urllib3 connections that check the send guard as they write each piece of a request.

A check of leadership made before a library's own request work leaves that work unguarded: a leader frozen in it
(SIGSTOP, a stalled VM) and thawed after it was deposed still sent its request (docs/reliability.md). These
connections call `send_guard.before_send` as the bytes leave; outside an armed submit the call is a no-op.
"""

from __future__ import annotations

from typing import Any

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from cronframework.send_guard import before_send


class GuardedHTTPConnection(HTTPConnection):
    def send(self, data: Any) -> None:
        before_send()
        super().send(data)


class GuardedHTTPSConnection(HTTPSConnection):
    def send(self, data: Any) -> None:
        before_send()
        super().send(data)


class GuardedHTTPPool(HTTPConnectionPool):
    ConnectionCls = GuardedHTTPConnection


class GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = GuardedHTTPSConnection


# a urllib3 PoolManager's pool_classes_by_scheme
GUARDED_POOLS: dict[str, type[HTTPConnectionPool]] = {"http": GuardedHTTPPool, "https": GuardedHTTPSPool}

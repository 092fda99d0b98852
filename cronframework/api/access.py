"""What every route shares: the `Api` context (state, cluster view, auth, clock), and the access rule each route
declares -- open, read, token or write -- as a FastAPI dependency and as the operation's OpenAPI `security`.

Reads are answered by any replica from the replicated state. Writes are store writes any replica could make, but
they go through the leader so one place orders them with its loop: a follower forwards them (same method, body and
Authorization) to the leader's published address. A forwarded request is always handled where it lands, so nothing
loops. The token is checked where the request arrives, before anything is forwarded.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import Depends, Request
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from cronframework.abc import Clock, StateStore
from cronframework.adapters import BackendSet
from cronframework.errors import StateStoreError

from .auth import TokenAuth
from .cluster import Cluster
from .errors import ApiError, Relayed, error
from .forward import FORWARDED_HEADER, forward
from .selection import Problems, SpecView


@dataclass
class Api:
    store: StateStore
    cluster: Cluster
    auth: TokenAuth
    clock: Clock
    backends: BackendSet | None = None  # None: launch logs and backend results are not served
    client_tls: ssl.SSLContext | None = None  # how this replica reaches the others' APIs (forwarding)
    problems: Problems = field(default_factory=Problems)  # compile checks by spec version, for filtering
    specs: SpecView = field(init=False)  # the specs as of their last change, for the job list

    def __post_init__(self) -> None:
        self.specs = SpecView(self.store)

    def to_leader(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Response:
        try:
            url = self.cluster.leader_url()
        except StateStoreError as exc:
            return error(503, f"cannot find the leader: {exc}")
        if url is None:
            return error(503, "no leader (or its API address is not published yet); retry shortly")
        return forward(url, method, target, headers, body, via=self.cluster.replica_id, context=self.client_tls)


def api_of(request: Request) -> Api:
    api: Api = request.app.state.api
    return api


def _check(request: Request, *, write: bool) -> None:
    denied = api_of(request).auth.check(request.headers.get("authorization"), write=write)
    if denied is not None:
        raise ApiError(denied.status, denied.message, {"WWW-Authenticate": "Bearer"})


def _open() -> None:
    return None


def _read(request: Request) -> None:
    _check(request, write=False)


def _token(request: Request) -> None:
    """Whatever `read_auth` says: for what a job prints (its logs may hold what its task was given)."""
    _check(request, write=True)


async def _write(request: Request) -> None:
    _check(request, write=True)
    api = api_of(request)
    if api.cluster.is_leader() or request.headers.get(FORWARDED_HEADER):
        return
    body = await request.body()
    raw_path = request.scope.get("raw_path") or request.url.path.encode()
    query = request.scope.get("query_string") or b""
    target = raw_path.decode("latin-1") + (f"?{query.decode('latin-1')}" if query else "")
    raise Relayed(await run_in_threadpool(api.to_leader, request.method, target, dict(request.headers), body))


ACCESS: dict[str, Callable[..., Any]] = {"open": _open, "read": _read, "token": _token, "write": _write}

# an operation's OpenAPI security: `{}` first means the token is optional (reads need it only with read_auth)
SECURITY: dict[str, list[dict[str, list[str]]]] = {
    "open": [],
    "read": [{}, {"bearer": []}],
    "token": [{"bearer": []}],
    "write": [{"bearer": []}],
}


def _query_checked(request: Request) -> None:
    """Only the operation's own parameters, each once: the framework would silently ignore a misspelt one (a filter
    that does not filter) and keep one of several values (no parameter here takes a list). Checked after the access
    rule, so a caller without the token learns nothing of the query."""
    route = request.scope.get("route")
    known = _query_names(route) if isinstance(route, APIRoute) else None
    seen: set[str] = set()
    for name, _value in request.query_params.multi_items():
        if known is not None and name not in known:
            expected = f"; this operation takes {', '.join(sorted(known))}" if known else "; this operation takes none"
            raise ApiError(400, f"unknown query parameter {name!r}{expected}")
        if name in seen:
            raise ApiError(400, f"query parameter {name!r} given more than once")
        seen.add(name)


def _query_names(route: APIRoute) -> frozenset[str]:
    """The query parameters the route and its dependencies declare (by the name a caller uses): a walk of a few
    nodes per request."""
    names: set[str] = set()
    pending = [route.dependant]
    while pending:
        dependant = pending.pop()
        names.update(param.alias for param in dependant.query_params)
        pending.extend(dependant.dependencies)
    return frozenset(names)


def guarded(access: str) -> dict[str, Any]:
    """The route keywords of an access rule: its dependencies and its documented security."""
    dependencies = [Depends(ACCESS[access]), Depends(_query_checked)]
    return {"dependencies": dependencies, "openapi_extra": {"security": SECURITY[access]}}

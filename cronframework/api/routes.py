"""The API as a function from Request to Response: routing, auth, leader forwarding of writes, error mapping.

Socket-free, so unit tests drive it directly; `server.py` puts it behind ThreadingHTTPServer. Reads are answered by
any replica from the replicated state. Writes are store writes any replica could make, but they go through the
leader so one place orders them with its loop: a follower forwards them (same method, body and Authorization) to
the leader's published address. A forwarded request is always handled where it lands, so nothing loops.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

from cronframework import metrics
from cronframework.abc import Clock, StateStore
from cronframework.errors import CronframeworkError, StateStoreError

from . import page, views
from .auth import TokenAuth
from .cluster import Cluster
from .forward import FORWARDED_HEADER, forward
from .http import Request, Response, Route, Router, error, json_response
from .openapi import document

log = logging.getLogger("cronframework.api")


class BadRequest(ValueError):
    pass


class Api:
    def __init__(self, store: StateStore, cluster: Cluster, auth: TokenAuth, clock: Clock) -> None:
        self.store, self.cluster, self.auth, self.clock = store, cluster, auth, clock
        self.router = Router(self._routes())

    def _routes(self) -> list[Route]:
        return [
            Route("GET", "/healthz", self.healthz, "open"),
            Route("GET", "/readyz", self.readyz, "open"),
            Route("GET", "/openapi.json", self.openapi, "open"),
            Route("GET", "/metrics", self.metrics, "read"),
            Route("GET", "/", self.index_page, "read"),
            Route("GET", "/jobs/{job}", self.job_page, "read"),
            Route("GET", "/v1/jobs", self.jobs, "read"),
            Route("GET", "/v1/jobs/{job}", self.job, "read"),
            Route("GET", "/v1/jobs/{job}/history", self.history, "read"),
            Route("GET", "/v1/leader", self.leader, "read"),
            Route("GET", "/v1/replicas", self.replicas, "read"),
            Route("POST", "/v1/jobs/{job}/trigger", self.trigger, "write"),
            Route("POST", "/v1/jobs/{job}/pause", self.pause, "write"),
            Route("POST", "/v1/jobs/{job}/resume", self.resume, "write"),
        ]

    # -- dispatch ---------------------------------------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        route, params, other_method = self.router.match(request.method, request.path)
        if route is None:
            response = error(405, "method not allowed") if other_method else error(404, "no such route")
        else:
            response = self._dispatch(route, Request(**{**vars(request), "params": params}))
        metrics.API_REQUESTS.labels(route.template if route else "unmatched", str(response.status)).inc()
        return response

    def _dispatch(self, route: Route, request: Request) -> Response:
        if route.access != "open":
            denied = self.auth.check(request.header("Authorization"), write=route.access == "write")
            if denied is not None:
                return error(denied.status, denied.message, {"WWW-Authenticate": "Bearer"})
        if route.access == "write" and not self.cluster.is_leader() and not request.header(FORWARDED_HEADER):
            return self._to_leader(request)
        try:
            return route.handler(request)
        except views.NotFound as exc:
            return error(404, str(exc))
        except (BadRequest, json.JSONDecodeError) as exc:
            return error(400, f"bad request: {exc}")
        except StateStoreError as exc:
            log.warning("state store error while serving a request", extra={"route": route.template, "error": str(exc)})
            return error(503, f"state store unavailable: {exc}")
        except CronframeworkError as exc:
            return error(500, str(exc))

    def _to_leader(self, request: Request) -> Response:
        try:
            url = self.cluster.leader_url()
        except StateStoreError as exc:
            return error(503, f"cannot find the leader: {exc}")
        if url is None:
            return error(503, "no leader (or its API address is not published yet); retry shortly")
        return forward(url, request, via=self.cluster.replica_id)

    # -- probes and documents ---------------------------------------------------------------------------------
    def healthz(self, _request: Request) -> Response:
        return json_response({"status": "ok", "replica": self.cluster.replica_id})

    def readyz(self, _request: Request) -> Response:
        ready, why = self.cluster.readiness()
        body = {"ready": ready, "reason": why, "leader": self.cluster.is_leader(), "replica": self.cluster.replica_id}
        return json_response(body, 200 if ready else 503)

    def openapi(self, _request: Request) -> Response:
        return json_response(document())

    def metrics(self, _request: Request) -> Response:
        body, content_type = metrics.exposition()
        return Response(200, body, content_type)

    # -- reads ------------------------------------------------------------------------------------------------
    def jobs(self, _request: Request) -> Response:
        return json_response(views.status(self.store, self.cluster))

    def job(self, request: Request) -> Response:
        count = _int_query(request, "next", 5)
        return json_response(views.job_detail(self.store, request.params["job"], self.clock.now(), count))

    def history(self, request: Request) -> Response:
        limit = _int_query(request, "limit", 20)
        return json_response(views.history(self.store, request.params["job"], limit))

    def leader(self, _request: Request) -> Response:
        members = self.cluster.members()
        body = {"leader": members[0] if members else None, "takeover": self.store.read_takeover()}
        return json_response(body)

    def replicas(self, _request: Request) -> Response:
        return json_response({"replicas": self.cluster.members()})

    # -- writes -----------------------------------------------------------------------------------------------
    def trigger(self, request: Request) -> Response:
        job = self._known(request)
        force = _flag(request, "force")
        now = self.clock.now().replace(microsecond=0)
        made = self.store.request_trigger(job, force=force, now=now)
        log.info("trigger requested through the API", extra={"job": job, "trigger": made.id, "force": force})
        body = {"trigger": made.id, "job": job, "force": made.force, "requested_at": _iso(made.requested_at)}
        return json_response(body, 202)

    def pause(self, request: Request) -> Response:
        return self._set_paused(request, True)

    def resume(self, request: Request) -> Response:
        return self._set_paused(request, False)

    def _set_paused(self, request: Request, paused: bool) -> Response:
        job = self._known(request)
        self.store.set_paused(job, paused)
        log.info("job paused through the API" if paused else "job resumed through the API", extra={"job": job})
        return json_response({"job": job, "paused": paused})

    def _known(self, request: Request) -> str:
        job = request.params["job"]
        if job not in self.store.read_specs():
            raise views.NotFound(f"unknown job {job!r}")
        return job

    # -- pages ------------------------------------------------------------------------------------------------
    def index_page(self, _request: Request) -> Response:
        return page.html(page.index(views.status(self.store, self.cluster), self.clock.now()))

    def job_page(self, request: Request) -> Response:
        job = request.params["job"]
        detail = views.job_detail(self.store, job, self.clock.now(), 5)
        return page.html(page.job(detail, views.history(self.store, job, 50), self.clock.now()))


def _int_query(request: Request, name: str, default: int) -> int:
    raw = request.query(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer, got {raw!r}") from None
    if value < 0:
        raise BadRequest(f"{name} must not be negative")
    return value


def _flag(request: Request, name: str) -> bool:
    """From the JSON body ({"force": true}) or the query (?force=true)."""
    body: Any = request.json()
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    value = body.get(name, request.query(name))
    if isinstance(value, str):
        return value.lower() in ("1", "true", "yes")
    if value is not None and not isinstance(value, bool):
        raise BadRequest(f"{name} must be a boolean")
    return bool(value)


def _iso(value: datetime) -> str:
    return value.isoformat()

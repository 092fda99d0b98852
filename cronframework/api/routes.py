"""The routes: each declares its access rule, its response model and the errors it can answer, which is what the
OpenAPI document says of it. Handlers are plain functions (run in the server's thread pool): the store is blocking.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from cronframework import metrics

from . import models, page, views
from .access import Api, api_of, guarded
from .errors import BadRequest, NotFound, first_problem
from .selection import JobQuery, select

log = logging.getLogger("cronframework.api")

router = APIRouter()
Ctx = Annotated[Api, Depends(api_of)]
JobName = Annotated[str, Path(description="the job's name", examples=["nightly-report"])]

_ERRORS = {
    400: "Bad query or body",
    401: "Missing or invalid bearer token",
    403: "Writes disabled (no token configured)",
    404: "Unknown job",
    413: "Body larger than 64 KiB",
    502: "The leader's API (a follower forwarding a write), or the backend (logs), did not answer",
    503: "State store unavailable, or no leader to forward to",
}
READ_ERRORS, WRITE_ERRORS = (401, 503), (400, 401, 403, 404, 413, 502, 503)


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """JSON `{"error"}` bodies, also for routes whose success is HTML or text."""
    error_body = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    return {code: {"model": models.Error, "description": _ERRORS[code], "content": error_body} for code in codes}


def reply(model: type[BaseModel] | TypeAdapter[Any], data: Any, status: int = 200) -> Response:
    """The body as the model serialises it, after the model has checked it: keys a document lacks stay absent."""
    if isinstance(model, TypeAdapter):
        body = model.dump_json(model.validate_python(data), exclude_unset=True)
        return Response(body, status, media_type="application/json")
    return Response(
        model.model_validate(data).model_dump_json(exclude_unset=True), status, media_type="application/json"
    )


# -- probes and documents -----------------------------------------------------------------------------------------
@router.get("/healthz", response_model=models.Health, summary="The process is alive", **guarded("open"))
def healthz(api: Ctx) -> Response:
    return reply(models.Health, {"status": "ok", "replica": api.cluster.replica_id})


@router.get(
    "/readyz",
    response_model=models.Ready,
    summary="Connected to the store; leading, or following with fresh state",
    responses={503: {"model": models.Ready, "description": "Not ready (the body says why)"}},
    **guarded("open"),
)
def readyz(api: Ctx) -> Response:
    ready, why = api.cluster.readiness()
    body = {"ready": ready, "reason": why, "leader": api.cluster.is_leader(), "replica": api.cluster.replica_id}
    return reply(models.Ready, body, 200 if ready else 503)


@router.get("/openapi.json", response_model=dict[str, Any], summary="This document", **guarded("open"))
def openapi(request: Request) -> Response:
    return JSONResponse(request.app.openapi())


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    summary="Prometheus metrics (text exposition format)",
    responses=errors(401),
    **guarded("read"),
)
def prometheus() -> Response:
    body, content_type = metrics.exposition()
    return Response(body, media_type=content_type)


# -- reads --------------------------------------------------------------------------------------------------------
@router.get(
    "/v1/jobs",
    response_model=models.Status,
    summary="Leader, replicas, last takeover and the jobs (keys of `status --json`), filtered and paged",
    responses=errors(400, *READ_ERRORS),
    **guarded("read"),
)
def jobs(
    api: Ctx,
    prefix: Annotated[str, Query(description="only jobs whose name starts with this")] = "",
    state: Annotated[models.JobState | None, Query(description="only jobs in this state")] = None,
    result: Annotated[
        str | None,
        Query(
            description="only jobs whose last result is this: a backend state (succeeded, failed, running...) "
            "when known, else the launch outcome (submitted, skipped, failed_to_launch); none: never launched"
        ),
    ] = None,
    sort: Annotated[
        Literal["name", "next", "result"], Query(description="next: soonest first; result: failures first")
    ] = "name",
    after: Annotated[str | None, Query(description="the previous page's page.next_after (name order)")] = None,
    limit: Annotated[int | None, Query(ge=1, description="at most this many jobs (default: all)")] = None,
) -> Response:
    query = JobQuery(prefix, state, result, sort, after, 0, limit)
    selected = select(api.store, api.specs.read(), api.cluster.members(), query, api.problems, now=api.clock.now())
    return reply(models.Status, selected.document)


@router.get(
    "/v1/jobs/{job}",
    response_model=models.JobDetail,
    summary="One job with its next launches (keys of `plan --json`)",
    responses=errors(400, 404, *READ_ERRORS),
    **guarded("read"),
)
def job(
    api: Ctx,
    job: JobName,
    count: Annotated[int, Query(alias="next", ge=0, description="next launches to list (at most 100)")] = 5,
) -> Response:
    return reply(models.JobDetail, views.job_detail(api.store, job, api.clock.now(), count))


@router.get(
    "/v1/jobs/{job}/history",
    response_model=list[models.LaunchRecord],
    summary="Launch records, newest first (keys of `history --json`)",
    responses=errors(400, 404, *READ_ERRORS),
    **guarded("read"),
)
def history(
    api: Ctx, job: JobName, limit: Annotated[int, Query(ge=0, description="newest N records (at most 1000)")] = 20
) -> Response:
    return reply(models.History, views.history(api.store, job, limit))


LaunchName = Annotated[str, Path(description="the launch's name", examples=["nightly-report-20261125t013000z"])]


@router.get(
    "/v1/jobs/{job}/launches/{launch}",
    response_model=models.LaunchRecord,
    summary="One launch record; with `lookup` (what the backend says now) while its task's result is to come",
    responses=errors(404, *READ_ERRORS),
    **guarded("read"),
)
def launch(api: Ctx, job: JobName, launch: LaunchName) -> Response:
    return reply(models.LaunchRecord, views.launch(api.store, api.backends, job, launch))


@router.get(
    "/v1/jobs/{job}/launches/{launch}/logs",
    response_class=PlainTextResponse,
    summary="The launch's output as its backend keeps it (the token is always needed: output may hold secrets)",
    responses=errors(401, 403, 404, 502, 503),
    **guarded("token"),
)
def launch_logs(api: Ctx, job: JobName, launch: LaunchName) -> Response:
    return PlainTextResponse(views.logs(api.store, api.backends, job, launch))


@router.get(
    "/v1/leader",
    response_model=models.Leader,
    summary="The leader and the last takeover report",
    responses=errors(*READ_ERRORS),
    **guarded("read"),
)
def leader(api: Ctx) -> Response:
    members = api.cluster.members()
    return reply(models.Leader, {"leader": members[0] if members else None, "takeover": api.store.read_takeover()})


@router.get(
    "/v1/replicas",
    response_model=models.Replicas,
    summary="Every replica, the leader first",
    responses=errors(*READ_ERRORS),
    **guarded("read"),
)
def replicas(api: Ctx) -> Response:
    return reply(models.Replicas, {"replicas": api.cluster.members()})


# -- writes -------------------------------------------------------------------------------------------------------
_TRIGGER_BODY = {
    "requestBody": {
        "required": False,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TriggerBody"}}},
    }
}


@router.post(
    "/v1/jobs/{job}/trigger",
    response_model=models.TriggerAccepted,
    status_code=202,
    summary="Request a manual launch (a follower forwards it to the leader)",
    responses=errors(*WRITE_ERRORS),
    dependencies=guarded("write")["dependencies"],
    openapi_extra={**guarded("write")["openapi_extra"], **_TRIGGER_BODY},
)
async def trigger(request: Request, job: JobName, force: bool | None = None) -> Response:
    """The body is read here, after the access rule: a request without the token learns nothing about its body."""
    wanted = _force(await request.body(), force)
    result: Response = await run_in_threadpool(_trigger, api_of(request), job, wanted)
    return result


def _trigger(api: Api, job: str, force: bool) -> Response:
    _known(api, job)
    now = api.clock.now().replace(microsecond=0)
    made = api.store.request_trigger(job, force=force, now=now)
    log.info("trigger requested through the API", extra={"job": job, "trigger": made.id, "force": force})
    body = {"trigger": made.id, "job": job, "force": made.force, "requested_at": made.requested_at.isoformat()}
    return reply(models.TriggerAccepted, body, 202)


def _force(raw: bytes, query: bool | None) -> bool:
    """From the JSON body ({"force": true}) or the query (?force=true); the body wins. No body at all is no
    body; blanks are not JSON."""
    try:
        body = models.TriggerBody.model_validate_json(raw) if raw else models.TriggerBody()
    except ValidationError as exc:
        raise BadRequest(first_problem(exc.errors(include_url=False))) from None
    return bool(body.force if body.force is not None else query)


@router.post(
    "/v1/jobs/{job}/pause",
    response_model=models.PauseState,
    summary="Pause a job (due instants are recorded as skipped)",
    responses=errors(*WRITE_ERRORS),
    **guarded("write"),
)
def pause(api: Ctx, job: JobName) -> Response:
    return _set_paused(api, job, True)


@router.post(
    "/v1/jobs/{job}/resume",
    response_model=models.PauseState,
    summary="Resume a paused job",
    responses=errors(*WRITE_ERRORS),
    **guarded("write"),
)
def resume(api: Ctx, job: JobName) -> Response:
    return _set_paused(api, job, False)


def _set_paused(api: Api, job: str, paused: bool) -> Response:
    _known(api, job)
    api.store.set_paused(job, paused)
    log.info("job paused through the API" if paused else "job resumed through the API", extra={"job": job})
    return reply(models.PauseState, {"job": job, "paused": paused})


def _known(api: Api, job: str) -> None:
    if job not in api.store.read_specs():
        raise NotFound(f"unknown job {job!r}")


# -- pages --------------------------------------------------------------------------------------------------------
_PAGE_ERRORS = errors(400, 401, 404, 503)
STRIP = 10  # recent runs in a row's strip


@router.get(
    "/",
    response_class=HTMLResponse,
    summary="The status page: jobs with their next and last launch and result, searched, filtered and paged",
    responses=_PAGE_ERRORS,
    **guarded("read"),
)
def index_page(
    api: Ctx,
    q: Annotated[str, Query(description="job name prefix")] = "",
    state: Annotated[models.JobState | Literal[""], Query()] = "",
    result: Annotated[str, Query()] = "",
    sort: Annotated[Literal["name", "next", "result"], Query()] = "name",
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    query = JobQuery(q, state or None, result or None, sort, None, offset, page.PER_PAGE)
    selected = select(api.store, api.specs.read(), api.cluster.members(), query, api.problems, STRIP, api.clock.now())
    zones = {name: str(stored.document.get("timezone", "UTC")) for name, stored in selected.specs.items()}
    strips = {name: [r.to_dict() for r in records] for name, records in selected.recent.items()}
    return page.html(page.index(selected.document, zones, strips, query, api.clock.now()))


@router.get(
    "/jobs/{job}",
    response_class=HTMLResponse,
    summary="One job: next launches, recent launches with their result, and actions",
    responses=_PAGE_ERRORS,
    **guarded("read"),
)
def job_page(api: Ctx, job: JobName) -> Response:
    now = api.clock.now()
    detail = views.job_detail(api.store, job, now, 10)
    return page.html(page.job(detail, views.history(api.store, job, 50), now))


@router.get(
    "/jobs/{job}/launches/{launch}",
    response_class=HTMLResponse,
    summary="One launch: its record, result and (with the token) its output",
    responses=_PAGE_ERRORS,
    **guarded("read"),
)
def launch_page(api: Ctx, job: JobName, launch: LaunchName) -> Response:
    item = views.launch(api.store, api.backends, job, launch)
    return page.html(page.launch(item, views.timezone_of(api.store, job), api.clock.now()))

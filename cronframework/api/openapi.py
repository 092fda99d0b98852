"""The OpenAPI 3.1 document of the API, served at /openapi.json; tests check it against the routes and responses."""

from __future__ import annotations

from functools import cache
from typing import Any

from cronframework import __version__ as VERSION


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"oneOf": [schema, {"type": "null"}]}


def _object(required: dict[str, Any], optional: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"type": "object", "required": sorted(required), "properties": {**required, **(optional or {})}}


STR, INT, BOOL = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}
OPT_STR, OPT_INT = {"type": ["string", "null"]}, {"type": ["integer", "null"]}
OPT_NUMBER = {"type": ["number", "null"]}
RESULT = {"enum": ["succeeded", "failed", "timed_out", "lost"]}
OPT_RESULT = {"enum": ["succeeded", "failed", "timed_out", "lost", None]}
TIME = {"type": "string", "format": "date-time"}
OPT_TIME = {"type": ["string", "null"], "format": "date-time"}

SCHEMAS: dict[str, Any] = {
    "Error": _object({"error": STR}),
    "BackendView": _object({"state": STR, "exit_code": OPT_INT, "reason": OPT_STR}),
    "LastLaunch": _object(
        {
            "name": STR,
            "scheduled": TIME,
            "state": {"enum": ["begun", "finished"]},
            "outcome": OPT_STR,
            "reason": OPT_STR,
            "result": OPT_RESULT,
            "exit_code": OPT_INT,
            "result_reason": OPT_STR,
            "started_at": OPT_TIME,
            "ended_at": OPT_TIME,
            "duration": OPT_NUMBER,
            "task_attempt": INT,
        },
        {"lookup": _ref("BackendView")},
    ),
    "RecentRun": _object({"launch": STR, "result": RESULT, "ended_at": OPT_TIME, "duration": OPT_NUMBER}),
    "Job": _object(
        {
            "job": STR,
            "enabled": BOOL,
            "paused": BOOL,
            "state": {"enum": ["enabled", "disabled", "paused", "broken"]},
            "problem": OPT_STR,
            "next": OPT_TIME,
            "last_launch": _nullable(_ref("LastLaunch")),
            "last_success": OPT_TIME,
            "last_failure": OPT_TIME,
            "failures": INT,
            "recent": {"type": "array", "items": _ref("RecentRun")},
            "overdue_since": OPT_TIME,
            "suspended": OPT_STR,
        }
    ),
    "Undeliverable": _object(
        {
            "job": STR,
            "event": STR,
            "key": STR,
            "url": STR,
            "attempts": INT,
            "error": OPT_STR,
            "created_at": TIME,
        }
    ),
    "Notifications": _object(
        {
            "pending": INT,
            "undeliverable": INT,
            "recent_undeliverable": {"type": "array", "items": _ref("Undeliverable")},
        }
    ),
    "Replica": {
        **_object(
            {"replica": STR, "api": OPT_STR}, {"epoch": OPT_INT, "host": STR, "pid": INT, "started": STR, "node": STR}
        ),
        "additionalProperties": True,
    },
    "Status": _object(
        {
            "leader": _nullable(_ref("Replica")),
            "replicas": {"type": "array", "items": _ref("Replica")},
            "takeover": {"type": ["object", "null"]},
            "jobs": {"type": "array", "items": _ref("Job")},
            "notifications": _ref("Notifications"),
        }
    ),
    "PlannedLaunch": _object(
        {"job": STR, "scheduled": TIME, "utc": STR, "name": STR, "schedule": STR, "resolved": STR}
    ),
    "JobDetail": {
        "allOf": [
            _ref("Job"),
            _object(
                {
                    "schedule": STR,
                    "timezone": STR,
                    "backend": STR,
                    "concurrency": STR,
                    "resolved": STR,
                    "next_launches": {"type": "array", "items": _ref("PlannedLaunch")},
                }
            ),
        ]
    },
    "LaunchRecord": _object(
        {
            "name": STR,
            "job": STR,
            "scheduled": TIME,
            "state": {"enum": ["begun", "finished"]},
            "manual": BOOL,
            "outcome": OPT_STR,
            "reason": OPT_STR,
            "leader": STR,
            "epoch": INT,
            "attempt": INT,
            "begun_at": OPT_TIME,
            "finished_at": OPT_TIME,
            "backend_state": OPT_STR,
            "exit_code": OPT_INT,
            "result": OPT_RESULT,
            "result_reason": OPT_STR,
            "started_at": OPT_TIME,
            "ended_at": OPT_TIME,
            "duration": OPT_NUMBER,
            "task_attempt": INT,
            "retry_at": OPT_TIME,
        }
    ),
    "History": {"type": "array", "items": _ref("LaunchRecord")},
    "Leader": _object({"leader": _nullable(_ref("Replica")), "takeover": {"type": ["object", "null"]}}),
    "Replicas": _object({"replicas": {"type": "array", "items": _ref("Replica")}}),
    "TriggerAccepted": _object({"trigger": STR, "job": STR, "force": BOOL, "requested_at": TIME}),
    "PauseState": _object({"job": STR, "paused": BOOL}),
    "Health": _object({"status": {"const": "ok"}, "replica": STR}),
    "Ready": _object({"ready": BOOL, "reason": STR, "leader": BOOL, "replica": STR}),
    "TriggerBody": {"type": "object", "properties": {"force": BOOL}},
}

ERRORS = {
    "400": "Bad query or body",
    "401": "Missing or invalid bearer token",
    "403": "Writes disabled (no token configured)",
    "404": "Unknown job",
    "502": "The leader's API cannot be reached (follower forwarding a write)",
    "503": "State store unavailable, or no leader to forward to",
}


SECURITY: dict[str, list[dict[str, list[str]]]] = {
    "open": [],
    "read": [{}, {"bearer": []}],  # the token is needed for reads only when api.read_auth is on
    "write": [{"bearer": []}],
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _op(summary: str, ok: tuple[str, str, str], errors: str, access: str, **extra: Any) -> dict[str, Any]:
    status, schema, description = ok
    responses = {status: _json(_ref(schema), description)}
    responses |= {code: _json(_ref("Error"), ERRORS[code]) for code in errors.split()}
    security = SECURITY[access]
    return {"summary": summary, "security": security, "responses": responses, **extra}


JOB = {"name": "job", "in": "path", "required": True, "schema": {"type": "string"}}


def _query(name: str, default: int, maximum: int) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "schema": {"type": "integer", "minimum": 0, "maximum": maximum, "default": default},
    }


def _paths() -> dict[str, Any]:
    read_errors, write_errors = "401 503", "400 401 403 404 502 503"
    return {
        "/healthz": {"get": _op("The process is alive", ("200", "Health", "Alive"), "", "open")},
        "/readyz": {"get": _ready()},
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "security": [],
                "responses": {"200": _json({"type": "object"}, "The OpenAPI document")},
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics (text exposition format)",
                "security": [{}, {"bearer": []}],
                "responses": {
                    "200": {"description": "Metrics", "content": {"text/plain": {"schema": {"type": "string"}}}},
                    "401": _json(_ref("Error"), ERRORS["401"]),
                },
            }
        },
        "/": {"get": _page("The status page: jobs, next and last launch, outcome, leader")},
        "/jobs/{job}": {"get": {**_page("One job: next launches and history"), "parameters": [JOB]}},
        "/v1/jobs": {
            "get": _op(
                "Leader, replicas, last takeover and every job (keys of `status --json`)",
                ("200", "Status", "Status"),
                read_errors,
                "read",
            )
        },
        "/v1/jobs/{job}": {
            "get": _op(
                "One job with its next launches (keys of `plan --json`)",
                ("200", "JobDetail", "The job"),
                f"400 404 {read_errors}",
                "read",
                parameters=[JOB, _query("next", 5, 100)],
            )
        },
        "/v1/jobs/{job}/history": {
            "get": _op(
                "Launch records, newest first (keys of `history --json`)",
                ("200", "History", "Records"),
                f"400 404 {read_errors}",
                "read",
                parameters=[JOB, _query("limit", 20, 1000)],
            )
        },
        "/v1/leader": {
            "get": _op("The leader and the last takeover report", ("200", "Leader", "Leader"), read_errors, "read")
        },
        "/v1/replicas": {
            "get": _op("Every replica, the leader first", ("200", "Replicas", "Replicas"), read_errors, "read")
        },
        "/v1/jobs/{job}/trigger": {
            "post": _op(
                "Request a manual launch (a follower forwards it to the leader)",
                ("202", "TriggerAccepted", "Requested"),
                write_errors,
                "write",
                parameters=[JOB],
                requestBody={"required": False, "content": {"application/json": {"schema": _ref("TriggerBody")}}},
            )
        },
        "/v1/jobs/{job}/pause": {
            "post": _op(
                "Pause a job (due instants are recorded as skipped)",
                ("200", "PauseState", "Paused"),
                write_errors,
                "write",
                parameters=[JOB],
            )
        },
        "/v1/jobs/{job}/resume": {
            "post": _op(
                "Resume a paused job", ("200", "PauseState", "Resumed"), write_errors, "write", parameters=[JOB]
            )
        },
    }


def _ready() -> dict[str, Any]:
    op = _op("Connected to the store; leading, or following with fresh state", ("200", "Ready", "Ready"), "", "open")
    op["responses"]["503"] = _json(_ref("Ready"), "Not ready (the body says why)")
    return op


def _page(summary: str) -> dict[str, Any]:
    return {
        "summary": summary,
        "security": [{}, {"bearer": []}],
        "responses": {
            "200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}},
            "401": _json(_ref("Error"), ERRORS["401"]),
            "404": _json(_ref("Error"), ERRORS["404"]),
            "503": _json(_ref("Error"), ERRORS["503"]),
        },
    }


@cache
def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "cronframework",
            "version": VERSION,
            "description": "Every replica serves this API; reads come from the replicated state, writes are "
            "forwarded to the leader.",
        },
        "paths": _paths(),
        "components": {"schemas": SCHEMAS, "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }

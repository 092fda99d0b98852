"""Every failure answers `{"error": "..."}` with the status that says whose fault it is; nothing leaks a traceback.

Mapped here: the framework's own 404/405 and validation errors (400, not FastAPI's 422), an unknown job (404),
the state store down (503), a backend that cannot answer for a launch's logs (502), a refusal of the project's
tree (500 with its one-line message).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response

from cronframework.errors import BackendError, CronframeworkError, StateStoreError

from .models import Error

log = logging.getLogger("cronframework.api")


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, dict(headers or {})


class NotFound(LookupError):
    pass


class BadRequest(ValueError):
    pass


class Relayed(Exception):
    """Not a failure: the leader's answer to a forwarded write, to be sent as it is."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def error(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(Error(error=message).model_dump(), status, dict(headers or {}))


def first_problem(errors: Sequence[Mapping[str, Any]]) -> str:
    """ "limit: Input should be a valid integer": the first validation error, with where it is."""
    first = errors[0]
    where = ".".join(str(part) for part in first.get("loc", ()) if part not in ("query", "path", "body"))
    return f"{where}: {first.get('msg')}" if where else str(first.get("msg"))


_FRAMEWORK = {404: "no such route", 405: "method not allowed"}


async def _framework(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error(exc.status_code, _FRAMEWORK.get(exc.status_code, str(exc.detail)), exc.headers)


async def _api_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error(exc.status, exc.message, exc.headers)


async def _relayed(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Relayed)
    return exc.response


async def _invalid(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return error(400, f"bad request: {first_problem(exc.errors())}")


async def _bad_request(_request: Request, exc: Exception) -> Response:
    return error(400, f"bad request: {exc}")


async def _not_found(_request: Request, exc: Exception) -> Response:
    return error(404, str(exc))


async def _store_down(request: Request, exc: Exception) -> Response:
    log.warning("state store error while serving a request", extra={"route": request.url.path, "error": str(exc)})
    return error(503, f"state store unavailable: {exc}")


async def _backend_down(_request: Request, exc: Exception) -> Response:
    first = (str(exc).splitlines() or [type(exc).__name__])[0]
    return error(502, f"the backend did not answer: {first}")


async def _refused(_request: Request, exc: Exception) -> Response:
    return error(500, str(exc))


def install(app: FastAPI) -> None:
    """StateStoreError before CronframeworkError: Starlette picks the handler of the nearest class in the MRO."""
    app.add_exception_handler(HTTPException, _framework)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(Relayed, _relayed)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(BadRequest, _bad_request)
    app.add_exception_handler(NotFound, _not_found)
    app.add_exception_handler(StateStoreError, _store_down)
    app.add_exception_handler(BackendError, _backend_down)
    app.add_exception_handler(CronframeworkError, _refused)

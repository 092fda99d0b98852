"""The ASGI application: the routes, the error mapping, the guard, and the OpenAPI document generated from the
route declarations and the response models (no interactive docs page: it would load scripts from elsewhere)."""

from __future__ import annotations

from functools import partial
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from cronframework import __version__

from . import errors, models
from .access import Api
from .guard import Guard
from .routes import router

DESCRIPTION = (
    "Every replica serves this API; reads come from the replicated state, writes are forwarded to the leader. "
    'Errors are `{"error": "..."}`. The bearer token is needed for writes and launch logs, and for reads too '
    "when the server runs with `api.read_auth`."
)


def create_app(api: Api) -> FastAPI:
    app = FastAPI(
        title="cronframework",
        version=__version__,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        redirect_slashes=False,
    )
    app.state.api = api
    app.include_router(router)
    errors.install(app)
    app.add_middleware(Guard)
    app.openapi = partial(document, app)  # type: ignore[method-assign]
    return app


BAD_QUERY = {
    "description": "Bad query or body (a parameter unknown to the operation or given twice included)",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}


def document(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with this API's conventions: 400 (not 422) for a bad query, `{"error"}` bodies, and the
    bearer scheme the routes' `security` names."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=DESCRIPTION, routes=app.routes)
        for item in schema["paths"].values():
            for operation in item.values():
                _json_errors(operation["responses"])
                operation["responses"].setdefault("400", BAD_QUERY)  # any operation: an unknown or repeated parameter
        components = schema.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        schemas["TriggerBody"] = models.TriggerBody.model_json_schema()
        components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        app.openapi_schema = schema
    return app.openapi_schema


def _json_errors(responses: dict[str, Any]) -> None:
    """Errors are JSON whatever a route answers on success (FastAPI would list them under the HTML's media type)."""
    responses.pop("422", None)
    for code, response in responses.items():
        content = response.get("content", {})
        if code.startswith(("4", "5")) and "application/json" in content:
            response["content"] = {"application/json": content["application/json"]}

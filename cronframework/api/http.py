"""Request and response values, and the route table: path templates like /v1/jobs/{job} matched by regex."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit


@dataclass(frozen=True)
class Request:
    method: str
    target: str  # path and query as sent, for forwarding
    headers: Mapping[str, str]
    body: bytes = b""
    params: dict[str, str] = field(default_factory=dict)  # path parameters, filled by the router

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    def query(self, name: str) -> str | None:
        values = parse_qs(urlsplit(self.target).query).get(name)
        return values[-1] if values else None

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == lowered), None)

    def json(self) -> Any:
        return json.loads(self.body) if self.body.strip() else {}


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)


def json_response(value: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    body = json.dumps(value, indent=2, default=str).encode() + b"\n"
    return Response(status, body, "application/json", dict(headers or {}))


def error(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    return json_response({"error": message}, status, headers)


Handler = Callable[[Request], Response]


@dataclass(frozen=True)
class Route:
    method: str
    template: str  # OpenAPI-style path, also the metrics label
    handler: Handler
    access: str  # "open", "read" or "write"

    @property
    def pattern(self) -> re.Pattern[str]:
        return re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.template) + "$")


class Router:
    def __init__(self, routes: list[Route]) -> None:
        self.routes = routes
        self._compiled = [(route, route.pattern) for route in routes]

    def match(self, method: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
        """The route, its path parameters, and whether the path exists under another method (405 vs 404)."""
        other_method = False
        for route, pattern in self._compiled:
            found = pattern.match(path)
            if found is None:
                continue
            if route.method == method or (method == "HEAD" and route.method == "GET"):
                return route, {k: unquote(v) for k, v in found.groupdict().items()}, False
            other_method = True
        return None, {}, other_method

"""The ASGI layer around the routes: the body size limit, HEAD as GET, the request counter, and a last-resort 500.

Pure ASGI (no BaseHTTPMiddleware) so a response streams through untouched. A bug in a handler answers 500
`{"error": "internal error"}` and is logged with its traceback; the server keeps serving.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cronframework import metrics

log = logging.getLogger("cronframework.api")

MAX_BODY = 64 * 1024
NO_STORE = (b"cache-control", b"no-store")  # every answer is the state now: no cache keeps it


class BodyTooLarge(Exception):
    pass


class Guard:
    def __init__(self, app: ASGIApp, max_body: int = MAX_BODY) -> None:
        self.app, self.max_body = app, max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # the server keeps the original scope: for HEAD it still sends no body
        inner = {**scope, "method": "GET"} if scope["method"] == "HEAD" else scope
        status: list[int] = []

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
                message = {**message, "headers": [*message.get("headers", ()), NO_STORE]}
            await send(message)

        if self._declared_length(scope) > self.max_body:
            await _reply(sending, 413, "body too large")
        else:
            await self._serve(inner, self._limited(receive), sending, status)
        route = inner.get("route")
        template = str(getattr(route, "path", "unmatched"))
        metrics.API_REQUESTS.labels(template, str(status[0] if status else 500)).inc()

    async def _serve(self, scope: Scope, receive: Receive, send: Send, status: list[int]) -> None:
        try:
            await self.app(scope, receive, send)
        except BodyTooLarge:
            if not status:
                await _reply(send, 413, "body too large")
        except Exception:
            log.exception("API handler failed", extra={"method": scope["method"], "path": scope["path"]})
            if not status:
                await _reply(send, 500, "internal error")

    def _declared_length(self, scope: Scope) -> int:
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    return int(value)
                except ValueError:
                    return self.max_body + 1
        return 0

    def _limited(self, receive: Receive) -> Receive:
        """A chunked body has no declared length: count it as it arrives."""
        seen = 0

        async def receiving() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_body:
                raise BodyTooLarge
            return message

        return receiving


async def _reply(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    headers: list[Any] = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})

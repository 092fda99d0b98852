"""A follower hands a write to the leader's API and relays the answer, so clients need to know only one replica."""

from __future__ import annotations

import logging
import urllib.error
import urllib.request

from .http import Request, Response, error

log = logging.getLogger("cronframework.api")

FORWARDED_HEADER = "X-Cronframework-Forwarded-By"
PASSED_HEADERS = ("Authorization", "Content-Type")
TIMEOUT = 10.0
# replica to replica traffic never goes through an HTTP proxy from the environment
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def forward(leader_url: str, request: Request, *, via: str) -> Response:
    headers = {name: value for name in PASSED_HEADERS if (value := request.header(name)) is not None}
    headers[FORWARDED_HEADER] = via
    outgoing = urllib.request.Request(
        leader_url.rstrip("/") + request.target, data=request.body, headers=headers, method=request.method
    )
    try:
        with _OPENER.open(outgoing, timeout=TIMEOUT) as reply:
            return _relay(reply.status, reply.read(), reply.headers.get("Content-Type"), leader_url)
    except urllib.error.HTTPError as exc:  # the leader answered with an error status: relay it as is
        return _relay(exc.code, exc.read(), exc.headers.get("Content-Type"), leader_url)
    except (urllib.error.URLError, OSError) as exc:
        log.warning("cannot forward a write to the leader", extra={"leader_api": leader_url, "error": str(exc)})
        return error(502, f"cannot reach the leader's API at {leader_url}: {exc}")


def _relay(status: int, body: bytes, content_type: str | None, leader_url: str) -> Response:
    return Response(status, body, content_type or "application/json", {"X-Cronframework-Leader": leader_url})

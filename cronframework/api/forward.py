"""A follower hands a write to the leader's API and relays the answer, so clients need to know only one replica.

Over TLS the follower checks the leader's certificate against the configured CA and, where the leader requires
client certificates, presents its own (the same pair it serves with).
"""

from __future__ import annotations

import logging
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping

from starlette.responses import Response

from .errors import error

log = logging.getLogger("cronframework.api")

FORWARDED_HEADER = "X-Cronframework-Forwarded-By"
LEADER_HEADER = "X-Cronframework-Leader"
PASSED_HEADERS = ("authorization", "content-type")
TIMEOUT = 10.0


def opener(context: ssl.SSLContext | None = None) -> urllib.request.OpenerDirector:
    """Replica to replica traffic never goes through an HTTP proxy from the environment."""
    handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
    if context is not None:
        handlers.append(urllib.request.HTTPSHandler(context=context))
    return urllib.request.build_opener(*handlers)


def forward(
    leader_url: str,
    method: str,
    target: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    via: str,
    context: ssl.SSLContext | None = None,
) -> Response:
    passed = {name: value for name, value in headers.items() if name.lower() in PASSED_HEADERS}
    passed[FORWARDED_HEADER] = via
    outgoing = urllib.request.Request(leader_url.rstrip("/") + target, data=body, headers=passed, method=method)
    try:
        with opener(context).open(outgoing, timeout=TIMEOUT) as reply:
            return _relay(reply.status, reply.read(), reply.headers.get("Content-Type"), leader_url)
    except urllib.error.HTTPError as exc:  # the leader answered with an error status: relay it as is
        return _relay(exc.code, exc.read(), exc.headers.get("Content-Type"), leader_url)
    except (urllib.error.URLError, OSError) as exc:
        log.warning("cannot forward a write to the leader", extra={"leader_api": leader_url, "error": str(exc)})
        return error(502, f"cannot reach the leader's API at {leader_url}: {exc}")


def _relay(status: int, body: bytes, content_type: str | None, leader_url: str) -> Response:
    return Response(body, status, {LEADER_HEADER: leader_url}, media_type=content_type or "application/json")

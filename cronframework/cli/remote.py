"""The command line through a replica's HTTP API (--addr or $CRONFRAMEWORK_ADDR): the same answers as from the
store, for an operator who has the token but no ZooKeeper access. Any replica will do: followers forward writes.

An error answer becomes one `error:` line naming the API and what it said; a replica that cannot be reached, one
line with the reason. No proxy from the environment is used (as between replicas).
"""

from __future__ import annotations

import argparse
import json
import ssl
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote, urlencode

from cronframework.api.forward import opener
from cronframework.api.tls import client_context
from cronframework.errors import CronframeworkError

from .common import api_token, remote_addr, tls_files

TIMEOUT = 30.0


class RemoteApi:
    def __init__(self, url: str, token: str | None = None, context: ssl.SSLContext | None = None) -> None:
        self.url, self._token, self._context = url.rstrip("/"), token, context

    def get(self, path: str, **query: Any) -> Any:
        return json.loads(self._send("GET", path, query))

    def text(self, path: str) -> str:
        return self._send("GET", path, {}).decode(errors="replace")

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return json.loads(self._send("POST", path, {}, json.dumps(body or {}).encode()))

    def _send(self, method: str, path: str, query: dict[str, Any], data: bytes | None = None) -> bytes:
        given = {k: v for k, v in query.items() if v is not None}
        target = self.url + path + (f"?{urlencode(given)}" if given else "")
        headers = {"Content-Type": "application/json"} if data is not None else {}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        request = urllib.request.Request(target, data=data, headers=headers, method=method)
        try:
            with opener(self._context).open(request, timeout=TIMEOUT) as reply:
                body: bytes = reply.read()
                return body
        except urllib.error.HTTPError as exc:
            raise CronframeworkError(f"{self.url}: {exc.code}: {_message(exc.read())}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise CronframeworkError(f"cannot reach the API at {self.url}: {reason}") from None


def _message(body: bytes) -> str:
    try:
        return str(json.loads(body)["error"])
    except (ValueError, KeyError, TypeError):
        return body.decode(errors="replace").strip()[:200] or "no message"


def job_path(job: str, *rest: str) -> str:
    return "/v1/jobs/" + "/".join(quote(part, safe="") for part in (job, *rest))


def connect(args: argparse.Namespace) -> RemoteApi | None:
    """The API this command goes through, or None when it reads the store itself."""
    url = remote_addr(args)
    if url is None:
        return None
    ca, cert, key = tls_files(args)
    context = client_context(ca, cert, key) if url.startswith("https:") or cert else None
    return RemoteApi(url, api_token(args), context)

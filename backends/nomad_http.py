"""A launch's two requests to Nomad, the create-only registration and the read of the job's summary that checks it,
sent on connections of their own with the body encoded once: to a plain-HTTP agent as whole requests on kept
connections (`http_wire.py`), to an HTTPS agent on a urllib3 pool.

Why: a herd is bound by the leader's CPU, and these two requests are most of what it spends per launch. Through
python-nomad and requests each one costs about 1.0-1.3 ms of Python CPU (settings merged, hooks, cookies, the URL
parsed anew), on urllib3 0.3-0.6 ms, on the wire path about a third of that (issue 18; docs/backends.md, "Two
paths to the agent"). Every other call stays on python-nomad. Over TLS, certificates are requests' business: the
pool takes its settings from requests' adapter.

What is sent does not change: the settings are read from python-nomad's own requester (address, namespace, region,
token, timeout, verify, cert, after its environment fallbacks) and the TLS pool settings from requests' adapter, so
both paths send the same method, path, query, body and X-Nomad-Token header and verify the agent the same way.
Where requests would add something from the environment that this path does not (a proxy, .netrc credentials),
`LaunchRequests.over` returns None and both requests stay on python-nomad.

Neither path retries: a kept connection found closed before sending is replaced (nothing was sent); any failure
after that is raised, so a refused connection still proves nothing landed and anything later stays in doubt (the
adapter's `retries` decides about another try, as for every call).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.utils import get_netrc_auth, requote_uri, select_proxy

from backends.guarded_connections import GUARDED_POOLS
from backends.http_wire import WireConnections
from cronframework.send_guard import before_send


class Refused(Exception):
    """Nomad answered with an error status. Its text is kept apart from the message: it may echo the token."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(status)
        self.status = status
        self.text = text


class Unanswered(Exception):
    """No HTTP answer was read, or none that is JSON, or the body was not JSON to send (NaN: requests refuses it too).
    The cause is urllib3's or json's error, which tells whether the request was ever sent (`errors.transient_kind`)
    or a certificate was refused (`errors.tls_refusal`)."""


class LaunchRequests:
    """The register and summary requests of one adapter; thread-safe (the pool hands each thread a connection)."""

    def __init__(self, session: requests.Session, requester: Any, settings: dict[str, Any], connections: int) -> None:
        """`settings`: requests' for the address, environment merged (`Session.merge_environment_settings`)."""
        url = str(requester.address)
        adapter = session.get_adapter(url)
        if not isinstance(adapter, HTTPAdapter):
            raise TypeError(f"the session's adapter for {url} is not requests' HTTPAdapter")
        self._url, self._adapter = url, adapter
        self._verify, self._cert = settings["verify"], settings["cert"]
        prepared = requests.Request("POST", f"{url}/v1/job/").prepare()
        host, tls = adapter.build_connection_pool_key_attributes(prepared, self._verify, self._cert)
        self._pool = urllib3.PoolManager(maxsize=max(1, connections)).connection_from_host(**host, pool_kwargs=tls)
        self._pool.ConnectionCls = GUARDED_POOLS[self._pool.scheme].ConnectionCls  # the send guard as bytes leave
        self._jobs = prepared.path_url  # the address's own path, then /v1/job/
        params = {"namespace": requester.namespace, "region": requester.region}  # python-nomad's order
        query = urlencode({key: value for key, value in params.items() if value})
        self._query = f"?{query}" if query else ""
        self._headers = {"X-Nomad-Token": requester.token} if requester.token else {}
        self._json_headers = {**self._headers, "Content-Type": "application/json"}
        self._timeout = urllib3.Timeout(connect=requester.timeout, read=requester.timeout)
        self._wire: WireConnections | None = None
        if prepared.url is not None and urlsplit(prepared.url).scheme == "http" and _plain(self._headers):
            port = host["port"] or 80
            self._wire = WireConnections(host["host"], port, requester.timeout, connections, before_send)
            fields = {"Host": _netloc(host["host"], port), **self._headers}
            self._wire_fields = "".join(f"{k}: {v}\r\n" for k, v in fields.items()).encode("latin-1")

    @classmethod
    def over(cls, session: requests.Session, requester: Any, connections: int) -> LaunchRequests | None:
        """The lean path for python-nomad's `requester` (its `job` endpoint), or None where requests would send
        these requests differently: through a proxy, with .netrc credentials, or not at all (an address it refuses,
        which python-nomad then reports at each call). The environment is read once, here."""
        url = str(requester.address)
        try:
            settings = session.merge_environment_settings(url, {}, None, requester.verify, requester.cert)
            if select_proxy(url, settings["proxies"]) or (session.trust_env and get_netrc_auth(url)):
                return None
            return cls(session, requester, settings, connections)
        except requests.RequestException:
            return None

    def register(self, name: str, body: Any) -> Any:
        """POST /v1/job/<name> with `body` as JSON: python-nomad's `job.register_job`."""
        return self.register_encoded(name, self.encode(body))

    def register_encoded(self, name: str, data: bytes) -> Any:
        """`register` with the body already encoded (`encode`)."""
        return self._send("POST", name, data, self._json_headers)

    @staticmethod
    def encode(body: Any) -> bytes:
        """`body` as JSON, as requests encodes `json=`."""
        try:
            return json.dumps(body, allow_nan=False).encode()
        except ValueError as error:  # NaN or infinity, which requests refuses to send too
            raise Unanswered(str(error)) from error

    def summary(self, name: str) -> Any:
        """GET /v1/job/<name>/summary: python-nomad's `job.get_summary`."""
        return self._send("GET", f"{name}/summary", None, self._headers)

    def close(self) -> None:
        """Closes the kept connections; nothing is sent on them after."""
        self._pool.close()
        if self._wire is not None:
            self._wire.close()

    def _send(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Any:
        target = requote_uri(self._jobs + path + self._query)
        if self._wire is not None:
            status, data = self._exchange(method, target, body)
        else:
            status, data = self._urlopen(method, target, body, headers)
        if status >= 400:
            raise Refused(status, data.decode(errors="replace"))
        try:
            return json.loads(data)
        except ValueError as error:
            raise Unanswered(type(error).__name__) from error

    def _exchange(self, method: str, target: str, body: bytes | None) -> tuple[int, bytes]:
        assert self._wire is not None
        head = [f"{method} {target} HTTP/1.1\r\n".encode("latin-1"), self._wire_fields]
        if body is not None:
            head.append(b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body))
        head.append(b"\r\n")
        try:
            return self._wire.exchange(b"".join(head) + (body or b""))
        except OSError as error:
            raise Unanswered(str(error) or type(error).__name__) from error

    def _urlopen(self, method: str, target: str, body: bytes | None, headers: dict[str, str]) -> tuple[int, bytes]:
        # as requests before each request: the CA and key files must exist, and verify=True means its CA bundle
        self._adapter.cert_verify(self._pool, self._url, self._verify, self._cert)
        try:
            answer = self._pool.urlopen(
                method,
                target,
                body=body,
                headers=headers,
                retries=False,
                redirect=False,
                assert_same_host=False,
                timeout=self._timeout,
            )
        except urllib3.exceptions.HTTPError as error:
            raise Unanswered(str(error) or type(error).__name__) from error
        return answer.status, answer.data


def _netloc(host: str, port: int) -> str:
    """The Host header's value as requests and urllib3 send it: the port unless it is HTTP's own."""
    shown = f"[{host}]" if ":" in host else host
    return shown if port == 80 else f"{shown}:{port}"


def _plain(headers: dict[str, str]) -> bool:
    """Header values the wire path may write as they are (latin-1, no line breaks); any other goes through
    urllib3, which refuses them as requests would."""
    text = "".join(headers.values())
    return all(ord(c) < 256 and c not in "\r\n\0" for c in text)

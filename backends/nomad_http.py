"""A launch's two requests to Nomad, the create-only registration and the read of the job's summary that checks it,
sent on a urllib3 connection pool of their own with the body encoded once.

Why: a herd is bound by the leader's CPU, and these two requests are most of what it spends per launch. Through
python-nomad and requests each one costs about 1.0-1.3 ms of Python CPU (settings merged, hooks, cookies, the URL
parsed anew), here 0.3-0.5 ms (issue 18; docs/backends.md, "Two paths to the agent"). Every other call stays on
python-nomad.

What is sent does not change: the settings are read from python-nomad's own requester (address, namespace, region,
token, timeout, verify, cert, after its environment fallbacks) and the TLS pool settings from requests' adapter, so
both paths send the same method, path, query, body and X-Nomad-Token header and verify the agent the same way.
Where requests would add something from the environment that this path does not (a proxy, .netrc credentials),
`LaunchRequests.over` returns None and both requests stay on python-nomad.

urllib3 retries nothing here: a pooled connection found closed before sending is replaced (nothing was sent); any
failure after that is raised, so a refused connection still proves nothing landed and anything later stays in
doubt (the adapter's `retries` decides about another try, as for every call).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.utils import get_netrc_auth, requote_uri, select_proxy


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
        self._jobs = prepared.path_url  # the address's own path, then /v1/job/
        params = {"namespace": requester.namespace, "region": requester.region}  # python-nomad's order
        query = urlencode({key: value for key, value in params.items() if value})
        self._query = f"?{query}" if query else ""
        self._headers = {"X-Nomad-Token": requester.token} if requester.token else {}
        self._json_headers = {**self._headers, "Content-Type": "application/json"}
        self._timeout = urllib3.Timeout(connect=requester.timeout, read=requester.timeout)

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
        try:
            data = json.dumps(body, allow_nan=False).encode()  # as requests encodes `json=`
        except ValueError as error:  # NaN or infinity, which requests refuses to send too
            raise Unanswered(str(error)) from error
        return self._send("POST", name, data, self._json_headers)

    def summary(self, name: str) -> Any:
        """GET /v1/job/<name>/summary: python-nomad's `job.get_summary`."""
        return self._send("GET", f"{name}/summary", None, self._headers)

    def close(self) -> None:
        """Closes the pool's connections; nothing is sent on it after."""
        self._pool.close()

    def _send(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Any:
        # as requests before each request: the CA and key files must exist, and verify=True means its CA bundle
        self._adapter.cert_verify(self._pool, self._url, self._verify, self._cert)
        try:
            answer = self._pool.urlopen(
                method,
                requote_uri(self._jobs + path + self._query),
                body=body,
                headers=headers,
                retries=False,
                redirect=False,
                assert_same_host=False,
                timeout=self._timeout,
            )
        except urllib3.exceptions.HTTPError as error:
            raise Unanswered(str(error) or type(error).__name__) from error
        if answer.status >= 400:
            raise Refused(answer.status, answer.data.decode(errors="replace"))
        try:
            return json.loads(answer.data)
        except ValueError as error:
            raise Unanswered(type(error).__name__) from error

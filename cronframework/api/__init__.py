"""The HTTP API, Prometheus metrics endpoint and status page that every scheduler process serves.

Layout: `http` (request/response values, route table), `auth` (bearer token), `routes` (the `Api`), `views` (JSON
bodies), `page` (HTML), `forward` (follower -> leader), `cluster` (who leads, where the APIs are), `openapi`,
`server` (ThreadingHTTPServer), `wiring` (start it beside a replica or the embedded scheduler).
"""

from __future__ import annotations

from .auth import TokenAuth
from .cluster import LocalCluster, ZkCluster
from .routes import Api
from .server import ApiServer

__all__ = ["Api", "ApiServer", "LocalCluster", "TokenAuth", "ZkCluster"]

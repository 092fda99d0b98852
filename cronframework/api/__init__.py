"""The HTTP API, Prometheus metrics endpoint and status page that every scheduler process serves.

Layout: `models` (the bodies, and so the OpenAPI document), `access` (the `Api` context and each route's access
rule: auth and leader forwarding), `routes`, `views` (the documents, from the replicated state), `page` (HTML),
`errors`, `guard` (body limit, HEAD, request counter), `app` (FastAPI), `server` (uvicorn in a thread), `tls`,
`forward` (follower -> leader), `cluster` (who leads, where the APIs are), `wiring` (start it beside a replica or
the embedded scheduler).
"""

from __future__ import annotations

from .access import Api
from .app import create_app
from .auth import TokenAuth
from .cluster import LocalCluster, ZkCluster
from .server import ApiServer

__all__ = ["Api", "ApiServer", "LocalCluster", "TokenAuth", "ZkCluster", "create_app"]

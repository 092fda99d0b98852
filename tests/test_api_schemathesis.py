"""The API tested from its own OpenAPI document (schemathesis): generated reads and writes, valid and invalid, with
and without the token, on a leader, on a leader with `read_auth`, and on a follower whose leader is gone.

Every answer must be documented for its operation (status, media type, headers) and valid against the schema, and
never a 500; schemathesis also checks that invalid input is refused and that the token is not ignored.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from cronframework.api import Api, ApiServer, LocalCluster, TokenAuth, create_app
from cronframework.records import LaunchRecord, Outcome, RecordState
from tests.leader_harness import T0, Cluster, job

TOKEN = "schemathesis-token"
EXAMPLES = 30


def _state() -> Cluster:
    """Jobs the document's examples name (nightly-report), a paused one, a broken-free mix of launches."""
    cluster = Cluster()
    cluster.apply(job("nightly-report", "30 2 * * *", timezone="Europe/Paris"), job("beat"), job("slow", "@hourly"))
    session, _ = cluster.leader()
    session.promote()
    cluster.run_for(session, 120)
    cluster.store.set_paused("slow", True)
    skipped = LaunchRecord(
        "nightly-report-20261125t013000z",
        "nightly-report",
        T0 - timedelta(hours=4, minutes=30),
        RecordState.FINISHED,
        outcome=Outcome.SKIPPED,
        reason="paused",
    )
    cluster.store.records[skipped.name] = skipped
    return cluster


def _api(read_auth: bool = False, **view: Any) -> Api:
    cluster = _state()
    local = LocalCluster("r1", url="http://127.0.0.1:1", epoch=lambda: 1, **view)
    return Api(cluster.store, local, TokenAuth(TOKEN, read_auth), cluster.clock)


LEADER = [{"replica": "r0", "epoch": 7, "api": None}]  # the follower's view; the address is known once it listens
SCHEMAS = {
    "leader": schemathesis.openapi.from_asgi("/openapi.json", create_app(_api())),
    "read_auth": schemathesis.openapi.from_asgi("/openapi.json", create_app(_api(read_auth=True))),
    # reads are served by the follower, writes forwarded to a real leader's server
    "follower": schemathesis.openapi.from_asgi("/openapi.json", create_app(_api(leading=lambda: False, others=LEADER))),
}


@pytest.fixture(scope="module", autouse=True)
def leader_server() -> Iterator[None]:
    server = ApiServer(_api()).start()
    LEADER[0]["api"] = server.url
    yield
    server.close()


CASES = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))


@schemathesis.pytest.parametrize(**SCHEMAS)
@CASES
def test_with_the_token(case: Any) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"})


@schemathesis.pytest.parametrize(**SCHEMAS)
@CASES
def test_without_a_token(case: Any) -> None:
    response = case.call_and_validate()
    security = case.operation.definition.raw.get("security")
    if security == [{"bearer": []}]:
        assert response.status_code in (401, 404, 405), response.text  # 404/405: the framework's, before any route

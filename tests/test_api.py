"""The HTTP API on fakes: routes, JSON keys against the CLI's, auth, follower forwarding, metrics, OpenAPI, alerts.

Every response a test obtains through `call` is validated against the OpenAPI document's schema for its status.
"""

from __future__ import annotations

import json
import logging
import re
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.routing import APIRoute
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_spec
from starlette.testclient import TestClient

from cronframework import metrics
from cronframework.api import Api, ApiServer, LocalCluster, TokenAuth, create_app
from cronframework.api.routes import router
from cronframework.cli.status import collect
from cronframework.cluster.config import ApiSection, load_config
from cronframework.errors import CronframeworkError, LeadershipLost, TransientBackendError
from cronframework.launch import BackendStatus, LaunchState
from cronframework.naming import launch_name
from cronframework.records import LaunchRecord, Outcome, RecordState
from cronframework.testing import FakeBackend, FakeFence
from tests.leader_harness import T0, Cluster, job

TOKEN = "s3cret-token-value"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def cluster() -> Cluster:
    c = Cluster()
    c.apply(job("report", "*/5 * * * *"), job("beat", "* * * * *"))
    return c


def make_api(c: Cluster, token: str | None = TOKEN, read_auth: bool = False, **cluster: Any) -> Api:
    view = LocalCluster("r1", url="http://127.0.0.1:1", epoch=lambda: 1, **cluster)
    return Api(c.store, view, TokenAuth(token, read_auth), c.clock)


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str
    headers: Mapping[str, str]


def call(api: Api, method: str, target: str, body: Any = None, token: str | None = None) -> Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    raw = json.dumps(body).encode() if body is not None else b""
    with TestClient(create_app(api), raise_server_exceptions=False) as client:
        got = client.request(method, target, headers=headers, content=raw)
    response = Response(got.status_code, got.content, got.headers.get("content-type", ""), got.headers)
    _check_documented(api, method, target, response)
    return response


@cache
def document() -> dict[str, Any]:
    """The generated document does not depend on the state: one app's is every app's."""
    return create_app(make_api(Cluster())).openapi()


def body(response: Response) -> Any:
    return json.loads(response.body)


# -- the OpenAPI document and the server agree ------------------------------------------------------------------
def _operation(method: str, path: str) -> tuple[str, dict[str, Any]] | None:
    for template, item in document()["paths"].items():
        pattern = "^" + re.sub(r"\{\w+\}", "[^/]+", template) + "$"
        if re.match(pattern, path) and method.lower() in item:
            return template, item[method.lower()]
    return None


def _check_documented(api: Api, method: str, target: str, response: Response) -> None:
    found = _operation(method, target.split("?")[0])
    if found is None:
        assert response.status in (404, 405), f"{method} {target} answered {response.status} but is not documented"
        return
    documented = found[1]["responses"]
    assert str(response.status) in documented, f"{method} {target}: status {response.status} not documented"
    content = documented[str(response.status)]["content"]
    media = response.content_type.split(";")[0]
    assert media in content, f"{method} {target}: {media} not documented for {response.status}"
    if media == "application/json":
        schema = {**content[media]["schema"], "components": document()["components"]}
        errors = list(Draft202012Validator(schema).iter_errors(json.loads(response.body)))
        assert not errors, f"{method} {target} -> {response.status}: {errors[0].message}"


def test_openapi_document_is_valid_and_lists_exactly_the_server_routes(cluster: Cluster) -> None:
    validate_spec(document())
    served = {(m.lower(), r.path) for r in router.routes if isinstance(r, APIRoute) for m in r.methods}
    documented = {(m, path) for path, item in document()["paths"].items() for m in item}
    assert served == documented


def test_openapi_json_is_served(cluster: Cluster) -> None:
    response = call(make_api(cluster), "GET", "/openapi.json")
    assert body(response)["openapi"].startswith("3.")


# -- reads ------------------------------------------------------------------------------------------------------
def test_jobs_have_the_keys_and_values_of_status_json(cluster: Cluster) -> None:
    session, _ = cluster.leader()
    session.promote()
    cluster.run_for(session, 120)
    got = body(call(make_api(cluster), "GET", "/v1/jobs"))
    assert got["jobs"] == json.loads(json.dumps(collect(cluster.store, [])["jobs"], default=str))
    beat = next(j for j in got["jobs"] if j["job"] == "beat")
    assert beat["last_launch"]["name"] == launch_name("beat", T0 + timedelta(minutes=2))
    assert got["leader"]["replica"] == "r1" and got["replicas"][0]["api"] == "http://127.0.0.1:1"


def test_a_task_s_result_is_in_the_jobs_the_job_and_its_history(cluster: Cluster) -> None:
    """The keys the status page shows: the last launch's result and duration, the last success, the last runs."""
    session, _ = cluster.leader()
    session.promote()
    cluster.run_for(session, 60)
    name = launch_name("beat", T0 + timedelta(minutes=1))
    now = cluster.clock.now()
    cluster.backend.launches[name] = BackendStatus(LaunchState.SUCCEEDED, 0, None, now - timedelta(seconds=4), now)
    cluster.run_for(session, 2)
    api = make_api(cluster)
    beat = next(j for j in body(call(api, "GET", "/v1/jobs"))["jobs"] if j["job"] == "beat")
    detail = body(call(api, "GET", "/v1/jobs/beat"))
    for item in (beat, detail):
        assert (item["last_launch"]["result"], item["last_launch"]["duration"]) == ("succeeded", 4.0)
        assert item["last_success"] == now.isoformat() and item["failures"] == 0
        assert item["recent"] == [{"launch": name, "result": "succeeded", "ended_at": now.isoformat(), "duration": 4.0}]
    [row] = [r for r in body(call(api, "GET", "/v1/jobs/beat/history")) if r["name"] == name]
    assert (row["result"], row["exit_code"], row["ended_at"]) == ("succeeded", 0, now.isoformat())


def test_results_are_counted_timed_and_stamp_each_job_s_last_success_and_failure(cluster: Cluster) -> None:
    session, _ = cluster.leader()
    session.promote()
    cluster.run_for(session, 120)
    first, second = (launch_name("beat", T0 + timedelta(minutes=m)) for m in (1, 2))
    before = _sample("cronframework_task_results_total", job="beat", result="failed")
    durations = _sample("cronframework_task_duration_seconds_count")
    now = cluster.clock.now()
    cluster.backend.launches[first] = BackendStatus(LaunchState.SUCCEEDED, 0, None, now - timedelta(seconds=9), now)
    cluster.backend.launches[second] = BackendStatus(LaunchState.FAILED, 2, "exit code 2", now, now)
    cluster.run_for(session, 2)
    assert _sample("cronframework_task_results_total", job="beat", result="failed") == before + 1
    assert _sample("cronframework_task_duration_seconds_count") == durations + 2
    assert _sample("cronframework_job_last_success_timestamp_seconds", job="beat") == now.timestamp()
    assert _sample("cronframework_job_last_failure_timestamp_seconds", job="beat") == now.timestamp()


def test_job_detail_lists_the_next_launches_by_name_and_never_the_task(cluster: Cluster) -> None:
    got = body(call(make_api(cluster), "GET", "/v1/jobs/report?next=3"))
    expected = [launch_name("report", T0 + timedelta(minutes=m)) for m in (5, 10, 15)]
    assert [n["name"] for n in got["next_launches"]] == expected
    assert got["schedule"] == "*/5 * * * *" and got["paused"] is False
    assert "task" not in got and "/bin/true" not in json.dumps(got)


def test_history_is_history_json_newest_first_with_limit(cluster: Cluster) -> None:
    session, _ = cluster.leader()
    session.promote()
    cluster.run_for(session, 180)
    got = body(call(make_api(cluster), "GET", "/v1/jobs/beat/history?limit=2"))
    assert got == json.loads(json.dumps([r.to_dict() for r in cluster.store.history("beat", limit=2)]))
    assert len(got) == 2 and got[0]["scheduled"] > got[1]["scheduled"]


@pytest.mark.parametrize(
    ("target", "status"),
    [
        ("/v1/jobs/nope", 404),
        ("/v1/jobs/nope/history", 404),
        ("/v1/jobs/beat/history?limit=ten", 400),
        ("/v1/jobs/beat/history?limit=-1", 400),
        ("/v1/nothing", 404),
    ],
)
def test_bad_reads_are_client_errors(cluster: Cluster, target: str, status: int) -> None:
    response = call(make_api(cluster), "GET", target)
    assert response.status == status and "error" in body(response)


def test_wrong_method_is_405(cluster: Cluster) -> None:
    assert call(make_api(cluster), "GET", "/v1/jobs/beat/trigger").status == 405


def test_leader_replicas_and_probes(cluster: Cluster) -> None:
    api = make_api(cluster, ready=lambda: (False, "leader loop has not ticked"))
    assert body(call(api, "GET", "/v1/leader"))["leader"]["replica"] == "r1"
    assert [r["replica"] for r in body(call(api, "GET", "/v1/replicas"))["replicas"]] == ["r1"]
    assert call(api, "GET", "/healthz").status == 200
    ready = call(api, "GET", "/readyz")
    assert ready.status == 503 and body(ready)["reason"] == "leader loop has not ticked"
    assert call(make_api(cluster), "GET", "/readyz").status == 200


# -- writes and auth --------------------------------------------------------------------------------------------
def test_trigger_needs_the_token_and_the_leader_then_launches_it(cluster: Cluster) -> None:
    api = make_api(cluster)
    assert call(api, "POST", "/v1/jobs/beat/trigger").status == 401
    assert call(api, "POST", "/v1/jobs/beat/trigger", token="wrong").status == 401
    assert not cluster.store.pending_triggers()
    accepted = call(api, "POST", "/v1/jobs/beat/trigger", {"force": True}, token=TOKEN)
    assert accepted.status == 202 and body(accepted)["force"] is True
    session, _ = cluster.leader()
    records = session.promote()  # promotion's first tick takes pending triggers
    assert [r.name for r in records if r.manual] == [launch_name("beat", T0, manual=True)]


def test_writes_are_refused_when_no_token_is_configured(cluster: Cluster) -> None:
    response = call(make_api(cluster, token=None), "POST", "/v1/jobs/beat/pause", token="anything")
    assert response.status == 403
    assert cluster.store.read_paused() == set()


def test_pause_and_resume(cluster: Cluster) -> None:
    api = make_api(cluster)
    assert body(call(api, "POST", "/v1/jobs/beat/pause", token=TOKEN)) == {"job": "beat", "paused": True}
    assert cluster.store.read_paused() == {"beat"}
    assert body(call(api, "GET", "/v1/jobs/beat"))["paused"] is True
    call(api, "POST", "/v1/jobs/beat/resume", token=TOKEN)
    assert cluster.store.read_paused() == set()
    assert call(api, "POST", "/v1/jobs/nope/pause", token=TOKEN).status == 404


def test_read_auth_guards_reads_page_and_metrics_but_not_probes(cluster: Cluster) -> None:
    api = make_api(cluster, read_auth=True)
    for target in ("/v1/jobs", "/", "/metrics", "/v1/jobs/beat/history"):
        assert call(api, "GET", target).status == 401, target
        assert call(api, "GET", target, token=TOKEN).status == 200, target
    assert call(api, "GET", "/healthz").status == 200 and call(api, "GET", "/readyz").status == 200


def test_read_auth_without_a_token_is_a_startup_error() -> None:
    with pytest.raises(CronframeworkError, match="read_auth"):
        TokenAuth(None, read_auth=True)


def test_the_token_is_never_logged_nor_echoed(cluster: Cluster, caplog: pytest.LogCaptureFixture) -> None:
    api = make_api(cluster)
    caplog.set_level(logging.DEBUG)
    wrong = call(api, "POST", "/v1/jobs/beat/trigger", token="guess-" + TOKEN[:4])
    right = call(api, "POST", "/v1/jobs/beat/trigger", token=TOKEN)
    assert right.status == 202
    text = caplog.text + repr([r.__dict__ for r in caplog.records]) + repr(api.auth)
    assert TOKEN not in text and "guess-" not in wrong.body.decode() and TOKEN not in right.body.decode()


def test_api_config_defaults_to_loopback_and_reads_the_token_from_a_file(tmp_path: Path) -> None:
    assert ApiSection().host == "127.0.0.1" and ApiSection().read_auth is False
    secret = tmp_path / "token"
    secret.write_text(TOKEN + "\n")
    config = load_config(None, {"api": {"token_file": str(secret), "token_env": "CF_TEST_UNSET_TOKEN_ENV"}})
    assert config.api.host == "127.0.0.1"
    assert config.api.token() == TOKEN
    assert TOKEN not in repr(config)


# -- a follower forwards writes to the leader (two real servers on loopback) -----------------------------------
@pytest.fixture
def leader_and_follower() -> Iterator[tuple[Cluster, Cluster, ApiServer, ApiServer]]:
    leader_side, follower_side = Cluster(), Cluster()
    for side in (leader_side, follower_side):
        side.apply(job("beat"))
    leader = ApiServer(make_api(leader_side)).start()
    others = [{"replica": "r0", "epoch": 7, "api": leader.url}]
    follower = ApiServer(make_api(follower_side, leading=lambda: False, others=others)).start()
    yield leader_side, follower_side, leader, follower
    follower.close()
    leader.close()


def _http(url: str, method: str = "GET", token: str | None = None, data: bytes | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(urllib.request.Request(url, data=data, headers=headers, method=method), timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_a_follower_forwards_a_trigger_to_the_leader(leader_and_follower: Any) -> None:
    leader_side, follower_side, _leader, follower = leader_and_follower
    status, got = _http(f"{follower.url}/v1/jobs/beat/trigger", "POST", TOKEN, b'{"force": true}')
    assert status == 202 and got["force"] is True
    assert [t.job for t in leader_side.store.pending_triggers()] == ["beat"]
    assert follower_side.store.pending_triggers() == []  # the leader handled it, not the follower
    assert _http(f"{follower.url}/v1/jobs/beat/trigger", "POST", "wrong")[0] == 401


def test_a_follower_answers_reads_itself(leader_and_follower: Any) -> None:
    _leader_side, follower_side, _leader, follower = leader_and_follower
    follower_side.store.set_paused("beat", True)
    status, got = _http(f"{follower.url}/v1/jobs/beat")
    assert status == 200 and got["paused"] is True
    assert _http(f"{follower.url}/v1/leader")[1]["leader"]["replica"] == "r0"


def test_a_follower_without_a_reachable_leader_says_so(cluster: Cluster) -> None:
    nobody = call(make_api(cluster, leading=lambda: False), "POST", "/v1/jobs/beat/pause", token=TOKEN)
    assert nobody.status == 503
    dead = [{"replica": "r0", "api": "http://127.0.0.1:9"}]
    gone = call(make_api(cluster, leading=lambda: False, others=dead), "POST", "/v1/jobs/beat/pause", token=TOKEN)
    assert gone.status == 502 and cluster.store.read_paused() == set()


# -- metrics ----------------------------------------------------------------------------------------------------
def _sample(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def test_launches_lag_and_open_gauge_are_counted_by_the_launcher(cluster: Cluster) -> None:
    before = _sample("cronframework_launches_total", job="beat", outcome="submitted")
    lag_before = _sample("cronframework_launch_lag_seconds_count")
    open_before = _sample("cronframework_open_launches")  # the gauge is per process; other tests may leave some
    session, _ = cluster.leader()
    session.promote()
    cluster.run_for(session, 60)
    submitted = sum(r.outcome is Outcome.SUBMITTED for r in cluster.store.history("beat", 100))
    assert _sample("cronframework_launches_total", job="beat", outcome="submitted") - before == submitted > 0
    assert _sample("cronframework_launch_lag_seconds_count") - lag_before >= submitted
    assert _sample("cronframework_open_launches") == open_before


def test_skipped_launches_are_counted_by_reason_class(cluster: Cluster) -> None:
    before = _sample("cronframework_skipped_launches_total", job="beat", reason="paused")
    cluster.store.set_paused("beat", True)
    session, _ = cluster.leader()
    session.promote()
    cluster.run_for(session, 180)
    assert _sample("cronframework_skipped_launches_total", job="beat", reason="paused") - before == 3


@pytest.mark.parametrize(
    ("reason", "label"),
    [
        ("paused", "paused"),
        ("missed: superseded by beat-20261125t060200z (catchup: latest)", "missed"),
        ("missed: instants from a to b are older than the catch-up window (1h) and were not replayed", "stale"),
        ("uncertain (lookup failed: boom); on_uncertain: skip", "uncertain"),
        ("skipped: previous launch beat-x is still running (concurrency: forbid)", "concurrency"),
        ("skipped: superseded by a later instant in the same tick (concurrency: forbid)", "superseded"),
        (None, "other"),
    ],
)
def test_reason_classes(reason: str | None, label: str) -> None:
    assert metrics.reason_class(reason) == label


def test_store_and_backend_wrappers_record_latency_and_errors() -> None:
    cluster = Cluster()
    store = metrics.instrument_store(cluster.store)
    calls = _sample("cronframework_store_call_seconds_count", op="read_specs")
    store.read_specs()
    assert _sample("cronframework_store_call_seconds_count", op="read_specs") == calls + 1
    errors = _sample("cronframework_store_errors_total", op="put_job_states")
    with pytest.raises(LeadershipLost):
        store.put_job_states(FakeFence(valid=False), [])
    assert _sample("cronframework_store_errors_total", op="put_job_states") == errors + 1
    backend = metrics.observe_backend("fake", FakeBackend(fail={"lookup": TransientBackendError("down")}))
    transient = _sample("cronframework_backend_errors_total", backend="fake", method="lookup", kind="transient")
    with pytest.raises(TransientBackendError):
        backend.lookup("beat-20261125t060000z")
    assert _sample("cronframework_backend_errors_total", backend="fake", method="lookup", kind="transient") == (
        transient + 1
    )


def test_recovery_conclusions_are_counted() -> None:
    cluster = Cluster()
    cluster.apply(job("beat"))
    record = LaunchRecord("beat-20261125t055900z", "beat", T0 - timedelta(minutes=1), RecordState.BEGUN, epoch=1)
    cluster.store.records[record.name] = record
    cluster.backend.launches[record.name] = cluster.backend.launches.get(record.name) or _running()
    before = _sample("cronframework_launches_total", job="beat", outcome="already_existed")
    session, _ = cluster.leader()
    session.promote()
    assert _sample("cronframework_launches_total", job="beat", outcome="already_existed") == before + 1


def _running() -> Any:
    return BackendStatus(LaunchState.RUNNING)


def test_metrics_endpoint_exports_every_metric_the_alert_rules_name(cluster: Cluster) -> None:
    metrics.launches_finished([])  # nothing; the families exist from import time
    response = call(make_api(cluster), "GET", "/metrics")
    exported = set(re.findall(r"^([a-z_:]+)(?:\{| )", response.body.decode(), re.MULTILINE))
    rules = yaml.safe_load((ROOT / "docs" / "alerts.yml").read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    named = {m for expr in exprs for m in re.findall(r"\bcronframework_[a-z_]+", expr)}
    assert {
        "CronframeworkNoLeader",
        "CronframeworkLaunchesFailing",
        "CronframeworkLaunchLagHigh",
        "CronframeworkLaunchesSkipped",
        "CronframeworkJobFailing",
        "CronframeworkJobOverdue",
        "CronframeworkNotificationsUndeliverable",
    } <= {r["alert"] for g in rules["groups"] for r in g["rules"]}
    assert named and named <= exported | _families_without_samples(response.body.decode()), named - exported


def _families_without_samples(text: str) -> set[str]:
    """Labelled counters export no sample until first use; their # TYPE line proves the family is exported."""
    out = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE):
        out |= {name, f"{name}_total"} if kind == "counter" else {name, f"{name}_bucket", f"{name}_count"}
    return out


# -- the status page --------------------------------------------------------------------------------------------
def test_status_page_shows_jobs_last_launch_and_leader(cluster: Cluster) -> None:
    session, _ = cluster.leader()
    session.promote()
    cluster.run_for(session, 60)
    page = call(make_api(cluster), "GET", "/")
    html = page.body.decode()
    assert page.content_type.startswith("text/html")
    assert 'data-job="beat"' in html and 'data-job="report"' in html
    assert launch_name("beat", T0 + timedelta(minutes=1)) in html and "submitted" in html
    assert '<b id="leader">r1</b>' in html and 'href="/jobs/beat"' in html


def test_job_page_shows_history_with_escaped_reasons(cluster: Cluster) -> None:
    record = LaunchRecord(
        "beat-20261125t055900z",
        "beat",
        T0 - timedelta(minutes=1),
        RecordState.FINISHED,
        outcome=Outcome.SKIPPED,
        reason="<script>alert(1)</script>",
    )
    cluster.store.records[record.name] = record
    html = call(make_api(cluster), "GET", "/jobs/beat").body.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert(1)" not in html
    assert launch_name("beat", T0 + timedelta(minutes=1)) in html  # next launches
    assert call(make_api(cluster), "GET", "/jobs/nope").status == 404


# -- structured logs --------------------------------------------------------------------------------------------
def test_every_launch_decision_log_line_carries_job_launch_and_epoch(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    record = LaunchRecord("beat-20261125t055900z", "beat", T0 - timedelta(minutes=1), RecordState.BEGUN, epoch=1)
    cluster.store.records[record.name] = record  # left open by a previous leader: recovery concludes it
    cluster.store.set_paused("report", True)
    session, _ = cluster.leader()
    session.promote()
    cluster.run_for(session, 600)
    decisions = [r for r in caplog.records if r.name in ("cronframework.launcher", "cronframework.recovery")]
    decisions = [r for r in decisions if r.getMessage() != "open launches concluded"]  # a count, not a decision
    events = {r.getMessage() for r in decisions}
    assert {"launch outcome recorded", "launch skipped", "open launch concluded"} <= events
    for line in decisions:
        assert {"job", "launch", "epoch"} <= set(line.__dict__), line.getMessage()


# -- the framework's edges: limits, HEAD, a handler's bug -------------------------------------------------------
def test_a_body_over_64_kib_is_refused_whether_declared_or_chunked(cluster: Cluster) -> None:
    big = b'{"force": true, "pad": "' + b"x" * (64 * 1024) + b'"}'
    with TestClient(create_app(make_api(cluster))) as client:
        declared = client.post("/v1/jobs/beat/trigger", content=big, headers={"Authorization": f"Bearer {TOKEN}"})
        chunked = client.post(
            "/v1/jobs/beat/trigger",
            content=iter([big[:40_000], big[40_000:]]),
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
    assert (declared.status_code, declared.json()) == (413, {"error": "body too large"})
    assert chunked.status_code == 413
    assert cluster.store.pending_triggers() == []


def test_head_answers_like_get_without_a_body(cluster: Cluster) -> None:
    with TestClient(create_app(make_api(cluster))) as client:
        head, get = client.head("/v1/jobs/beat"), client.get("/v1/jobs/beat")
    assert head.status_code == 200 and head.content == b"" and get.content
    assert head.headers["content-type"] == get.headers["content-type"] == "application/json"


def test_a_handler_bug_answers_500_without_details_and_the_server_keeps_serving(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> None:
        raise RuntimeError("secret internals")

    api = make_api(cluster)
    monkeypatch.setattr(cluster.store, "read_takeover", broken)
    with TestClient(create_app(api), raise_server_exceptions=False) as client:
        failed = client.get("/v1/leader")
        assert client.get("/healthz").status_code == 200
    assert (failed.status_code, failed.json()) == (500, {"error": "internal error"})
    assert "secret internals" in caplog.text  # logged with its traceback, never sent


def test_a_bad_query_is_400_with_the_parameter_named(cluster: Cluster) -> None:
    response = call(make_api(cluster), "GET", "/v1/jobs/beat?next=soon")
    assert response.status == 400 and "next" in body(response)["error"]


def test_a_query_parameter_given_twice_is_400_not_one_of_its_values_picked(cluster: Cluster) -> None:
    """Found by schemathesis: `?limit=5&limit=0` answered 200 with the last value, so which one counted was the
    framework's choice, not the caller's."""
    api = make_api(cluster)
    for path in ("/v1/jobs/beat/history?limit=5&limit=0", "/v1/jobs/beat?next=1&next=2", "/?q=b&q="):
        response = call(api, "GET", path)
        assert response.status == 400 and "given more than once" in body(response)["error"], path
    assert call(api, "GET", "/v1/jobs/beat/history?limit=5").status == 200


def test_an_unknown_query_parameter_is_400_not_ignored(cluster: Cluster) -> None:
    """Found by schemathesis (at random, now and then): `POST /v1/jobs/nightly-report/trigger?=0` was accepted, and so
    was any misspelt parameter (`?limt=5` answered every job: a filter that does not filter)."""
    api = make_api(cluster)
    for method, path in (("POST", "/v1/jobs/beat/trigger?=0"), ("GET", "/v1/jobs?limt=5"), ("GET", "/v1/leader?x=1")):
        response = call(api, method, path, token=TOKEN)
        assert response.status == 400 and "unknown query parameter" in body(response)["error"], path
    assert call(api, "GET", "/v1/jobs?limit=5&prefix=b").status == 200
    assert call(api, "POST", "/v1/jobs/beat/trigger?force=true", token=TOKEN).status == 202


def test_a_trigger_body_of_blanks_is_not_json_and_is_refused(cluster: Cluster) -> None:
    """Found by schemathesis: a body of "\\n" was read as no body and the trigger accepted. No body at all still
    means the query's word (or none)."""
    api = make_api(cluster, token=TOKEN)
    with TestClient(create_app(api), raise_server_exceptions=False) as client:
        blank = client.post(
            "/v1/jobs/beat/trigger?force=true",
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
            content=b"\n",
        )
        assert blank.status_code == 400
        assert not cluster.store.pending_triggers()
        empty = client.post("/v1/jobs/beat/trigger", headers={"Authorization": f"Bearer {TOKEN}"}, content=b"")
        assert empty.status_code == 202

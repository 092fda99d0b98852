"""A launch's two Nomad requests on the lean path (backends/nomad_http.py), against a scripted socket server: it
sends what python-nomad sends, verifies the agent as requests does, and each failure means what it meant on
python-nomad: refused at the door = never landed, read but unanswered = in doubt, and nothing is sent twice."""

from __future__ import annotations

import dataclasses
import json
import ssl
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from backends import nomad as nomad_backend
from backends.nomad import NomadBackend
from backends.nomad_http import LaunchRequests
from cronframework import send_guard
from cronframework.errors import (
    BackendError,
    BackendTimeout,
    BackendUnreachable,
    LeadershipLost,
    PermanentBackendError,
    TransientBackendError,
)
from cronframework.launch import Launch, SubmitOutcome
from tests import test_api_tls
from tests.backend_conformance import conformance_launch
from tests.fake_nomad import Answer, FakeNomad, Step, closed_port
from tests.test_api_tls import Pki

pki = test_api_tls.pki  # its certificates (a module fixture): a CA, a stranger's, an expired one, a client's

TOKEN = "5ec7e75e-0000-4000-8000-70c3e70c3e70"


def _backend(address: str, **config: Any) -> NomadBackend:
    return NomadBackend({"address": address, "token": TOKEN, "timeout": 2, **config})


def _lean(backend: NomadBackend) -> LaunchRequests:
    assert backend._launch_requests is not None, "the launch's requests are not on the lean path"
    return backend._launch_requests


def _launch() -> Launch:
    return conformance_launch("lean", ["/bin/true"], backend="nomad")


def _submit_error(backend: NomadBackend, launch: Launch) -> BackendError:
    with pytest.raises(BackendError) as caught:
        backend.submit(launch.name, launch)
    assert TOKEN not in str(caught.value) and TOKEN not in repr(backend)
    return caught.value


@pytest.mark.parametrize("prefix", ["", "/nomad"])
def test_it_sends_what_python_nomad_sends(prefix: str) -> None:
    launch = _launch()
    body = {"Job": {"ID": launch.name, "Meta": {"note": "café ü"}}, "EnforceIndex": True, "JobModifyIndex": 0}
    with FakeNomad() as agent:
        backend = _backend(agent.address + prefix, namespace="ops", region="eu-west")
        lean = _lean(backend)
        lean.register(launch.name, body)
        backend._client.job.register_job(launch.name, body)
        lean.summary(launch.name)
        backend._client.job.get_summary(launch.name)
    ours, theirs = agent.seen[0::2], agent.seen[1::2]
    for mine, nomads in zip(ours, theirs, strict=True):
        assert (mine.method, mine.target, mine.body) == (nomads.method, nomads.target, nomads.body)
        for header in ("host", "x-nomad-token", "content-type", "content-length"):
            assert mine.headers.get(header) == nomads.headers.get(header), header
    query = "?namespace=ops&region=eu-west"
    assert [(s.method, s.target) for s in ours] == [
        ("POST", f"{prefix}/v1/job/{launch.name}{query}"),
        ("GET", f"{prefix}/v1/job/{launch.name}/summary{query}"),
    ]
    assert ours[0].headers["x-nomad-token"] == TOKEN


@pytest.mark.parametrize(("created_by", "outcome"), [(9, SubmitOutcome.SUBMITTED), (8, SubmitOutcome.ALREADY_EXISTED)])
def test_a_submit_is_the_write_then_its_check(created_by: int, outcome: SubmitOutcome) -> None:
    launch = _launch()
    with FakeNomad(Answer(body='{"JobModifyIndex": 9}'), Answer(body=f'{{"CreateIndex": {created_by}}}')) as agent:
        assert _backend(agent.address).submit(launch.name, launch) is outcome
    assert [s.method for s in agent.seen] == ["POST", "GET"] and agent.connections == 1


def test_a_register_refused_at_the_door_never_landed() -> None:
    launch = _launch()
    error = _submit_error(_backend(f"http://127.0.0.1:{closed_port()}", retries=1), launch)
    assert isinstance(error, BackendUnreachable)


@pytest.mark.parametrize("retries", [0, 1])
def test_a_register_read_but_not_answered_is_in_doubt_and_sent_once_a_try(retries: int) -> None:
    """The agent read the registration and closed the connection: it may have registered the job. urllib3 does not
    send it again; the adapter's `retries` alone decides about another try."""
    with FakeNomad("close", "close") as agent:
        error = _submit_error(_backend(agent.address, retries=retries), _launch())
    assert type(error) is TransientBackendError
    assert [s.method for s in agent.seen] == ["POST"] * (retries + 1)


@pytest.mark.parametrize("retries", [0, 1])
def test_a_check_read_but_not_answered_is_in_doubt_and_sent_once_a_try(retries: int) -> None:
    with FakeNomad(Answer(body='{"JobModifyIndex": 3}'), "close", "close") as agent:
        error = _submit_error(_backend(agent.address, retries=retries), _launch())
    assert type(error) is TransientBackendError
    assert [s.method for s in agent.seen] == ["POST"] + ["GET"] * (retries + 1)


def test_a_register_not_answered_in_time_is_a_timeout() -> None:
    with FakeNomad("hang") as agent:
        error = _submit_error(_backend(agent.address, timeout=0.5), _launch())
    assert isinstance(error, BackendTimeout) and len(agent.seen) == 1


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        (Answer(403, f"Permission denied for {TOKEN}"), PermanentBackendError),
        (Answer(400, "bad json"), PermanentBackendError),
        (Answer(500, "No cluster leader"), TransientBackendError),
        (Answer(503, "overloaded"), TransientBackendError),
        (Answer(500, "1 error occurred:\n\t* Task group validation failed"), PermanentBackendError),
        (Answer(200, "<html>a proxy's page</html>"), TransientBackendError),
    ],
)
def test_an_answer_refusing_the_register_is_translated_as_before(step: Answer, expected: type[BackendError]) -> None:
    with FakeNomad(step) as agent:
        error = _submit_error(_backend(agent.address), _launch())
    assert type(error) is expected and len(agent.seen) == 1
    assert str(step.status) in str(error) or step.status == 200


@pytest.mark.parametrize(
    ("steps", "outcome"),
    [
        ((Answer(500, "Enforcing job modify index 0: job already exists"),), SubmitOutcome.ALREADY_EXISTED),
        ((Answer(body='{"JobModifyIndex": 4}'), Answer(404, "job not found")), SubmitOutcome.SUBMITTED),
    ],
)
def test_answers_that_are_outcomes(steps: tuple[Step, ...], outcome: SubmitOutcome) -> None:
    launch = _launch()
    with FakeNomad(*steps) as agent:
        assert _backend(agent.address).submit(launch.name, launch) is outcome
    assert len(agent.seen) == len(steps)


def test_a_kept_connection_the_agent_closed_is_replaced_before_sending() -> None:
    launch = _launch()
    with FakeNomad(Answer(body='{"JobModifyIndex": 5}', then_close=True), Answer(body='{"CreateIndex": 5}')) as agent:
        backend = _backend(agent.address)
        check = backend.register(launch.name, launch)
        assert agent.hung_up.acquire(timeout=5)
        assert check() is SubmitOutcome.SUBMITTED
    assert [s.method for s in agent.seen] == ["POST", "GET"] and agent.connections == 2


def test_close_closes_the_lean_connections() -> None:
    with FakeNomad() as agent:
        backend = _backend(agent.address)
        _lean(backend).summary("kept-20260101t000000z")
        backend.close()
        assert agent.closed.acquire(timeout=5)


def test_a_proxy_from_the_environment_keeps_both_requests_on_python_nomad(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:3128")
    backend = _backend("http://nomad.example:4646")
    assert backend._launch_requests is None
    assert backend._register_job == backend._client.job.register_job
    assert backend._job_summary == backend._client.job.get_summary


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_a_leader_frozen_after_its_check_and_before_its_registration_leaves_sends_nothing(
    pki: Pki, monkeypatch: pytest.MonkeyPatch, tls: bool
) -> None:
    """The 60-minute Nomad run at a40a4b7: a job registered 160 ms after a leader's thaw, 4.3 s after it was
    deposed. Its check had passed before the freeze, which came in the request's own work (the body encoded here).
    The connections check again as the request's bytes leave."""
    import backends.nomad_http as lean_module

    launch = _launch()
    now = [0.0]
    encode = lean_module.json.dumps

    def frozen_while_encoding(*args: Any, **kwargs: Any) -> str:
        now[0] += 30.0
        return encode(*args, **kwargs)

    def deposed() -> None:
        raise LeadershipLost("the session expired while the process was frozen")

    with FakeNomad(tls=_server(pki.server) if tls else None) as agent:
        backend = _backend(agent.address, **({"ca_cert": str(pki.ca.path)} if tls else {}))
        _lean(backend).summary("warm-20260101t000000z")  # a kept connection: nothing left to do before the send
        monkeypatch.setattr(lean_module.json, "dumps", frozen_while_encoding)
        with send_guard.armed(deposed, lambda: now[0]), pytest.raises(LeadershipLost):
            backend.submit(launch.name, launch)
        assert [s.method for s in agent.seen] == ["GET"], "the registration never reached the agent"


# -- TLS: the same verdicts as requests gives python-nomad ------------------------------------------------------


def _server(cert: tuple[str, str], clients_from: Path | None = None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*cert)
    if clients_from is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(clients_from)
    return context


def _tls_case(case: str, pki: Pki, env: pytest.MonkeyPatch) -> tuple[ssl.SSLContext, dict[str, Any], str | None]:
    """The agent's TLS, the adapter's config, and the refusal expected (None: trusted)."""
    ours = {"ca_cert": str(pki.ca.path)}
    if case == "client certificate":
        client = {"client_cert": pki.client[0], "client_key": pki.client[1]}
        return _server(pki.server, pki.ca.path), {**ours, **client}, None
    if case == "REQUESTS_CA_BUNDLE":
        env.setenv("REQUESTS_CA_BUNDLE", str(pki.ca.path))
        return _server(pki.server), {}, None
    if case == "verify off":
        return _server(pki.server), {"verify": False}, None
    if case == "another CA":
        return _server(pki.server), {"ca_cert": str(pki.stranger.path)}, "certificate not trusted"
    assert case == "expired agent certificate"
    return _server(pki.expired), ours, "certificate not trusted: certificate has expired"


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")  # "verify off", on both paths
@pytest.mark.parametrize(
    "case", ["client certificate", "REQUESTS_CA_BUNDLE", "verify off", "another CA", "expired agent certificate"]
)
def test_tls_verdicts_are_those_of_python_nomad(pki: Pki, monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    tls, config, refusal = _tls_case(case, pki, monkeypatch)
    name = "tls-20260101t000000z"
    with FakeNomad(tls=tls) as agent:
        backend = _backend(agent.address, **config)
        verdicts = []
        for call in (_lean(backend).summary, backend._client.job.get_summary):
            try:
                verdicts.append(backend._call("read job summary", lambda call=call: call(name)))
            except BackendError as error:
                assert TOKEN not in str(error) and "PRIVATE KEY" not in str(error)
                verdicts.append(error)
    if refusal is None:
        assert verdicts == [{}, {}] and len(agent.seen) == 2
    else:
        assert all(isinstance(v, PermanentBackendError) and refusal in str(v) for v in verdicts), verdicts
        assert agent.seen == [], "nothing may be sent to an agent that is not trusted"


def test_a_missing_ca_file_fails_each_call_as_on_python_nomad(tmp_path: Path) -> None:
    backend = _backend(f"https://127.0.0.1:{closed_port()}", ca_cert=str(tmp_path / "gone.pem"))
    for call in (_lean(backend).summary, backend._client.job.get_summary):
        with pytest.raises(OSError, match="invalid path"):
            backend._call("read job summary", lambda call=call: call("x-20260101t000000z"))


def _bodies(agent: FakeNomad) -> list[bytes]:
    return [seen.body for seen in agent.seen if seen.method == "POST"]


def test_a_prepared_registration_sends_the_same_bytes_it_would_have_built() -> None:
    launch = _launch()
    with FakeNomad() as agent:
        backend = _backend(agent.address)
        backend.prepare([launch])
        assert launch.name in backend._prepared
        backend.register(launch.name, launch)
        assert backend._prepared == {}  # used once
        _backend(agent.address).register(launch.name, launch)  # built at the write
    prepared, built = _bodies(agent)
    assert prepared == built and json.loads(prepared)["Job"]["ID"] == launch.name


def test_a_launch_unlike_the_prepared_one_is_built_anew() -> None:
    launch = _launch()
    again = dataclasses.replace(launch, attempt=2)
    with FakeNomad() as agent:
        backend = _backend(agent.address)
        backend.prepare([launch])
        backend.register(again.name, again)
    (sent,) = _bodies(agent)
    assert json.loads(sent)["Job"]["TaskGroups"][0]["Tasks"][0]["Env"]["CRONFRAMEWORK_ATTEMPT"] == "2"


def test_a_launch_that_cannot_be_built_is_not_prepared_and_its_write_refuses_it() -> None:
    unbuildable = conformance_launch("lean", ["/bin/true"], backend="nomad", spec={"nomad": {"driver": "docker"}})
    with FakeNomad() as agent:
        backend = _backend(agent.address)
        backend.prepare([unbuildable, _launch()])  # does not raise
        assert list(backend._prepared) == [_launch().name]
        with pytest.raises(PermanentBackendError, match=r"needs task\.image"):
            backend.register(unbuildable.name, unbuildable)
    assert agent.seen == []


def test_prepared_writes_are_bounded_and_make_room_by_dropping_earlier_instants(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(nomad_backend, "PREPARED_MAX", 3)
    first, later = datetime(2026, 12, 6, 4, 0, tzinfo=UTC), datetime(2026, 12, 6, 4, 1, tzinfo=UTC)
    with FakeNomad() as agent:
        backend = _backend(agent.address)
        backend.prepare(
            [conformance_launch(f"j{i}", ["/bin/true"], backend="nomad", scheduled=first) for i in range(5)]
        )
        assert len(backend._prepared) == 3  # the first three: they go out first
        backend.prepare(
            [conformance_launch(f"k{i}", ["/bin/true"], backend="nomad", scheduled=later) for i in range(2)]
        )
    assert sorted(backend._prepared) == [f"k{i}-20261206t040100z" for i in range(2)]

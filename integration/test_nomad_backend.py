"""The Nomad adapter against real Nomad dev agents (built from source by scripts/nomad.sh, cached).

Agents: one shared plain agent for the conformance suite and most tests, one with ACLs enabled, and one
per restart test (stopping the shared agent would disturb the others). An agent that cannot be built or
started fails the tests with the reason; nothing here is skipped.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
import urllib.error
from collections.abc import Callable, Iterator
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import requests
from nomad.api import exceptions as nomad_errors

from backends.nomad import NomadBackend, create
from backends.nomad_spec import RERUN_EXIT, job_payload
from backends.nomad_status import job_status
from cronframework.errors import BackendError, BackendUnreachable, PermanentBackendError, TransientBackendError
from cronframework.launch import Launch, LaunchState, SubmitOutcome
from integration.certs import CertAuthority, Issued
from integration.nomad_agent import NomadAgent, NomadAgentError
from tests.backend_conformance import BackendConformance, conformance_launch, finished, unique_job, wait_for

pytestmark = pytest.mark.nomad

TIMEOUT = 60.0


def _start(workdir: Path, *, acl: bool = False) -> NomadAgent:
    agent = NomadAgent(workdir, acl=acl)
    try:
        return agent.start()
    except NomadAgentError as error:
        agent.stop()
        pytest.fail(f"cannot start a Nomad agent (scripts/nomad.sh): {error}")


@pytest.fixture(scope="session")
def nomad_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NomadAgent]:
    agent = _start(tmp_path_factory.mktemp("nomad"))
    yield agent
    agent.stop()


@pytest.fixture(scope="session")
def acl_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NomadAgent]:
    agent = _start(tmp_path_factory.mktemp("nomad-acl"), acl=True)
    yield agent
    agent.stop()


@pytest.fixture
def nomad_launch() -> Callable[..., Launch]:
    def make(job: str, argv: list[str], **task: Any) -> Launch:
        return conformance_launch(job, argv, backend="nomad", **task)

    return make


def _adapter(agent: NomadAgent, **config: Any) -> Iterator[NomadBackend]:
    backend = create({"address": agent.address, **config})
    yield backend
    backend.close()


@pytest.fixture
def nomad_backend(nomad_agent: NomadAgent) -> Iterator[NomadBackend]:
    yield from _adapter(nomad_agent)


class TestNomadConformance(BackendConformance):
    timeout = TIMEOUT

    @pytest.fixture
    def backend(self, nomad_agent: NomadAgent) -> Iterator[NomadBackend]:
        yield from _adapter(nomad_agent)

    @pytest.fixture
    def make_launch(self, nomad_launch: Callable[..., Launch]) -> Callable[..., Launch]:
        return nomad_launch


def _status(backend: NomadBackend, launch: Launch) -> Any:
    return wait_for(lambda: backend.lookup(launch.name), finished, TIMEOUT)


def _race(submits: list[Callable[[], SubmitOutcome]]) -> list[SubmitOutcome]:
    outcomes: list[SubmitOutcome] = []
    threads = [threading.Thread(target=lambda s=s: outcomes.append(s())) for s in submits]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(outcomes)


ONE_WINNER = sorted([SubmitOutcome.SUBMITTED, SubmitOutcome.ALREADY_EXISTED, SubmitOutcome.ALREADY_EXISTED])


def test_concurrent_submits_through_one_adapter_register_once(
    nomad_backend: NomadBackend, nomad_agent: NomadAgent, nomad_launch: Callable[..., Launch]
) -> None:
    launch = nomad_launch(unique_job("dup"), ["/bin/sh", "-c", "sleep 1"])
    assert _race([lambda: nomad_backend.submit(launch.name, launch)] * 3) == ONE_WINNER
    job = nomad_agent.api("GET", f"/v1/job/{launch.name}")
    assert job["Version"] == 0, "a repeated submit must not register a new version"
    # placed a moment after the registration: wait for an allocation, then count them
    allocations = wait_for(lambda: nomad_agent.api("GET", f"/v1/job/{launch.name}/allocations"), bool, TIMEOUT)
    assert len(allocations) == 1


def test_racing_adapters_see_one_winner_and_one_run(
    nomad_agent: NomadAgent, nomad_launch: Callable[..., Launch]
) -> None:
    """Separate adapters (as two replicas would be) race at Nomad itself, where create-only is not atomic:
    repeated a few times because the losing writes only sometimes get through."""
    adapters = [create({"address": nomad_agent.address}) for _ in range(3)]
    for _ in range(5):
        launch = nomad_launch(unique_job("race"), ["/bin/true"])
        assert _race([partial(a.submit, launch.name, launch) for a in adapters]) == ONE_WINNER
        status = wait_for(partial(adapters[0].lookup, launch.name), finished, TIMEOUT)
        assert status is not None and status.state is LaunchState.SUCCEEDED
        assert len(nomad_agent.api("GET", f"/v1/job/{launch.name}/allocations")) == 1


def _racing_writes(adapters: list[NomadBackend], launch: Launch) -> list[Callable[[], SubmitOutcome]]:
    """Each adapter's write of `launch`, all at once; their checks, none of them made yet."""
    checks: list[Callable[[], SubmitOutcome]] = []
    threads = [threading.Thread(target=lambda a=a: checks.append(a.register(launch.name, launch))) for a in adapters]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return checks


def test_racing_writes_checked_after_all_of_them_see_one_winner_and_one_run(
    nomad_agent: NomadAgent, nomad_launch: Callable[..., Launch]
) -> None:
    """A herd's two passes (`abc.Confirming`): separate adapters' writes race, and the checks are made only once
    every write has returned; they still name exactly one creator."""
    adapters = [create({"address": nomad_agent.address}) for _ in range(3)]
    for _ in range(5):
        launch = nomad_launch(unique_job("race2"), ["/bin/true"])
        assert sorted(check() for check in _racing_writes(adapters, launch)) == ONE_WINNER
        status = wait_for(partial(adapters[0].lookup, launch.name), finished, TIMEOUT)
        assert status is not None and status.state is LaunchState.SUCCEEDED
        assert len(nomad_agent.api("GET", f"/v1/job/{launch.name}/allocations")) == 1


def test_failing_task_reports_exit_code_and_reason(
    nomad_backend: NomadBackend, nomad_launch: Callable[..., Launch]
) -> None:
    launch = nomad_launch(unique_job("fail"), ["/bin/sh", "-c", "echo boom >&2; exit 7"])
    nomad_backend.submit(launch.name, launch)
    status = _status(nomad_backend, launch)
    assert status.state is LaunchState.FAILED
    assert status.exit_code == 7
    assert status.reason == "exited with code 7"
    assert status.started_at is not None and status.finished_at is not None
    assert "boom" in nomad_backend.logs(launch.name)


def test_unstartable_command_is_failed_with_the_driver_message(
    nomad_backend: NomadBackend, nomad_launch: Callable[..., Launch]
) -> None:
    launch = nomad_launch(unique_job("nocmd"), ["/nonexistent/cronframework-binary"])
    nomad_backend.submit(launch.name, launch)
    status = _status(nomad_backend, launch)
    # raw_exec starts the at-most-once guard (a shell), which fails to exec the command as a shell does
    assert (status.state, status.exit_code) == (LaunchState.FAILED, 127), status
    assert "/nonexistent/cronframework-binary" in nomad_backend.logs(launch.name)


def test_stopped_job_is_failed_stopped(nomad_backend: NomadBackend, nomad_launch: Callable[..., Launch]) -> None:
    launch = nomad_launch(unique_job("stop"), ["/bin/sh", "-c", "sleep 120"])
    nomad_backend.submit(launch.name, launch)
    wait_for(lambda: nomad_backend.lookup(launch.name), lambda s: s is not None and s.state.active, TIMEOUT)
    nomad_backend.stop(launch.name)
    status = wait_for(lambda: nomad_backend.lookup(launch.name), finished, TIMEOUT)
    assert status is not None and (status.state, status.reason) == (LaunchState.FAILED, "stopped")
    # the stopped job still exists, so the name stays taken: a resubmit must not start a second run
    assert nomad_backend.submit(launch.name, launch) is SubmitOutcome.ALREADY_EXISTED


def test_nomad_block_is_merged_into_the_registered_job(
    nomad_backend: NomadBackend, nomad_agent: NomadAgent, nomad_launch: Callable[..., Launch]
) -> None:
    block = {
        "priority": 73,
        "datacenters": ["dc1"],
        "meta": {"team.name": "infra", "cronframework.job": "spoofed"},
        "constraints": [{"attribute": "${attr.kernel.name}", "value": "linux"}],
        "task": {"KillTimeout": 3_000_000_000},
    }
    job_name = unique_job("merge")
    launch = nomad_launch(job_name, ["/bin/sh", "-c", "true"], spec={"nomad": block})
    nomad_backend.submit(launch.name, launch)
    job = nomad_agent.api("GET", f"/v1/job/{launch.name}")
    assert job["Priority"] == 73 and job["Datacenters"] == ["dc1"]
    assert job["Meta"]["team_name"] == "infra"
    assert job["Meta"]["cronframework_job"] == job_name, "the identity meta must win over the block"
    assert job["Meta"]["cronframework_launch"] == launch.name
    assert {"LTarget": "${attr.kernel.name}", "RTarget": "linux"}.items() <= job["Constraints"][0].items()
    task = job["TaskGroups"][0]["Tasks"][0]
    assert task["KillTimeout"] == 3_000_000_000 and task["Driver"] == "raw_exec"
    assert job["TaskGroups"][0]["ReschedulePolicy"]["Attempts"] == 0
    assert _status(nomad_backend, launch).state is LaunchState.SUCCEEDED


def test_resources_and_env_reach_the_task(
    nomad_backend: NomadBackend, nomad_agent: NomadAgent, nomad_launch: Callable[..., Launch]
) -> None:
    argv = ["/bin/sh", "-c", 'echo "greeting=$GREETING pwd=$(pwd)"']
    launch = nomad_launch(
        unique_job("res"), argv, env={"GREETING": "hi"}, workdir="/tmp", resources={"cpu": 0.25, "memory": 64}
    )
    nomad_backend.submit(launch.name, launch)
    resources = nomad_agent.api("GET", f"/v1/job/{launch.name}")["TaskGroups"][0]["Tasks"][0]["Resources"]
    assert (resources["CPU"], resources["MemoryMB"]) == (250, 64)
    assert _status(nomad_backend, launch).state is LaunchState.SUCCEEDED
    assert "greeting=hi pwd=/tmp" in nomad_backend.logs(launch.name)


def test_spec_refused_by_nomad_is_permanent(nomad_backend: NomadBackend, nomad_launch: Callable[..., Launch]) -> None:
    launch = nomad_launch(unique_job("bad"), ["/bin/true"], spec={"nomad": {"priority": 100_000}})
    with pytest.raises(PermanentBackendError, match=r"(?i)priority"):
        nomad_backend.submit(launch.name, launch)
    assert nomad_backend.lookup(launch.name) is None


def test_foreign_namespace_is_refused_before_registering(
    nomad_backend: NomadBackend, nomad_launch: Callable[..., Launch]
) -> None:
    launch = nomad_launch(unique_job("ns"), ["/bin/true"], spec={"nomad": {"namespace": "elsewhere"}})
    with pytest.raises(PermanentBackendError, match="namespace"):
        nomad_backend.submit(launch.name, launch)
    assert nomad_backend.lookup(launch.name) is None


def test_list_ignores_jobs_of_a_longer_name_with_the_same_prefix(
    nomad_backend: NomadBackend, nomad_launch: Callable[..., Launch]
) -> None:
    job = unique_job("pre")
    mine = nomad_launch(job, ["/bin/true"])
    other = nomad_launch(f"{job}-x", ["/bin/true"])
    for launch in (mine, other):
        nomad_backend.submit(launch.name, launch)
    assert nomad_backend.list(job) == [mine.name]


def test_reads_ask_the_agent_for_uncompressed_answers(
    nomad_backend: NomadBackend, nomad_launch: Callable[..., Launch]
) -> None:
    """A gzipped answer costs the agent a fresh compressor per response: 0.7-1.2 ms of its CPU against 0.15-0.22 ms
    uncompressed, for answers of a few KB (docs/backends.md, "Nomad"). Every read the adapter makes -- lookups, the
    list, the watch of ended jobs -- comes back uncompressed from the real agent."""
    answers: list[requests.Response] = []
    nomad_backend._session.hooks["response"].append(lambda response, **_: answers.append(response))
    job = unique_job("plain")
    launch = nomad_launch(job, ["/bin/true"])
    assert nomad_backend.submit(launch.name, launch) is SubmitOutcome.SUBMITTED
    _status(nomad_backend, launch)
    assert nomad_backend.list(job) == [launch.name]
    nomad_backend.ended({launch.name}, timeout=0.1)
    paths = {response.request.path_url.split("?")[0] for response in answers}
    assert {f"/v1/job/{launch.name}", f"/v1/job/{launch.name}/allocations", "/v1/jobs"} <= paths
    encoded = [(r.request.path_url, r.headers["Content-Encoding"]) for r in answers if "Content-Encoding" in r.headers]
    assert encoded == []


def test_retention_horizon_defaults_to_nomad_job_gc_threshold(nomad_agent: NomadAgent) -> None:
    assert create({"address": nomad_agent.address}).retention_horizon() == timedelta(hours=4)
    assert create({"address": nomad_agent.address, "gc_horizon": "90m"}).retention_horizon() == timedelta(minutes=90)


# -- ACLs -------------------------------------------------------------------------------------------------


def test_acl_agent_with_management_token(acl_agent: NomadAgent, nomad_launch: Callable[..., Launch]) -> None:
    backend = create({"address": acl_agent.address, "token": acl_agent.management_token})
    launch = nomad_launch(unique_job("acl"), ["/bin/sh", "-c", "echo acl-ok"])
    assert backend.submit(launch.name, launch) is SubmitOutcome.SUBMITTED
    assert _status(backend, launch).state is LaunchState.SUCCEEDED


def test_acl_agent_without_token_is_permanent_403(
    acl_agent: NomadAgent, nomad_launch: Callable[..., Launch], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOMAD_TOKEN", raising=False)
    backend = create({"address": acl_agent.address})
    launch = nomad_launch(unique_job("noacl"), ["/bin/true"])
    with pytest.raises(PermanentBackendError, match="403"):
        backend.submit(launch.name, launch)
    with pytest.raises(PermanentBackendError, match="403"):
        backend.lookup(launch.name)


def test_wrong_token_never_appears_in_errors_or_repr(
    acl_agent: NomadAgent, nomad_launch: Callable[..., Launch], tmp_path: Path
) -> None:
    secret = "0b9f5a6e-0000-4000-8000-5ec7e75ec7e7"
    token_file = tmp_path / "token"
    token_file.write_text(secret + "\n")
    backend = create({"address": acl_agent.address, "token_file": str(token_file)})
    launch = nomad_launch(unique_job("tok"), ["/bin/true"])
    with pytest.raises(PermanentBackendError, match="403") as caught:
        backend.submit(launch.name, launch)
    assert secret not in str(caught.value) and secret not in repr(backend)


# -- TLS: an agent whose HTTP API and RPC are TLS only, client certificates required, ACLs on -----------------
@pytest.fixture(scope="module")
def tls_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NomadAgent]:
    agent = NomadAgent(tmp_path_factory.mktemp("nomad-tls"), acl=True, tls=True)
    try:
        agent.start()
    except NomadAgentError as error:
        agent.stop()
        pytest.fail(f"cannot start a Nomad agent with TLS: {error}")
    yield agent
    agent.stop()


def _tls_config(agent: NomadAgent, ca: Path, cert: Issued | None) -> dict[str, Any]:
    client = {"client_cert": str(cert.cert), "client_key": str(cert.key)} if cert else {}
    return {"address": agent.address, "token": agent.management_token, "ca_cert": str(ca), **client}


def test_a_launch_runs_over_tls_with_a_client_certificate(
    tls_agent: NomadAgent, nomad_launch: Callable[..., Launch], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The agent's CA from the config, even where the environment names a CA bundle for requests (the system's,
    which does not hold the test CA)."""
    assert tls_agent.ca is not None
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    backend = create(_tls_config(tls_agent, tls_agent.ca.cert, tls_agent.client))
    assert backend._launch_requests is not None, "a launch's two requests go on the lean path (nomad_http)"
    launch = nomad_launch(unique_job("tls"), ["/bin/sh", "-c", "echo over-tls"])
    assert backend.submit(launch.name, launch) is SubmitOutcome.SUBMITTED
    assert _status(backend, launch).state is LaunchState.SUCCEEDED


def test_a_wrong_ca_fails_closed_saying_why_and_no_certificate_fails_closed_and_no_secret_shows(
    tls_agent: NomadAgent, nomad_launch: Callable[..., Launch], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Trusting another CA is a permanent error that says so. Without a client certificate the agent refuses the
    handshake: mostly with an alert (permanent, said so), sometimes as a bare close that races our request (TLS 1.3
    sends its verdict after the client's first flight), which reads as an outage. Either way no job is registered,
    and the ACL token and key material appear in no error and no log line."""
    assert tls_agent.ca is not None and tls_agent.management_token
    other = CertAuthority(tmp_path / "other", "another CA")
    caplog.set_level(logging.DEBUG)
    cases = {
        "certificate not trusted": (_tls_config(tls_agent, other.cert, other.issue("client")), PermanentBackendError),
        "refused this client's certificate": (_tls_config(tls_agent, tls_agent.ca.cert, None), BackendError),
    }
    for why, (config, kind) in cases.items():
        backend = create(config)
        assert backend._launch_requests is not None
        launch = nomad_launch(unique_job("tls-refused"), ["/bin/true"])
        errors = []
        for call in (partial(backend.submit, launch.name, launch), partial(backend.lookup, launch.name)):
            with pytest.raises(kind) as caught:
                call()
            errors.append(caught.value)
        assert all(why in str(e) for e in errors if isinstance(e, PermanentBackendError)), errors
        with pytest.raises(urllib.error.HTTPError, match="404"):
            tls_agent.api("GET", f"/v1/job/{launch.name}")
        said = " ".join([*map(str, errors), *(r.getMessage() for r in caplog.records), repr(backend)])
        assert tls_agent.management_token not in said
        assert "PRIVATE KEY" not in said


# -- the docker driver -----------------------------------------------------------------------------------------

TEST_IMAGE = "cronframework-test:latest"  # built from busybox-static by the Docker side (scripts/test-image.sh)
# Nomad's docker driver pulls every `:latest` image, even one present locally; a pinned tag is used as is.
NOMAD_IMAGE = "cronframework-test:nomad"


def _tag_test_image() -> None:
    import docker  # the Docker SDK, only to give the local test image a tag Nomad will not try to pull

    try:
        client = docker.from_env()
        client.images.get(TEST_IMAGE).tag("cronframework-test", "nomad")
        client.close()
    except docker.errors.DockerException as error:
        pytest.fail(f"{TEST_IMAGE} is not available (scripts/dockerd.sh start, then build the test image): {error}")


def test_image_task_runs_on_the_docker_driver(
    nomad_backend: NomadBackend, nomad_agent: NomadAgent, nomad_launch: Callable[..., Launch]
) -> None:
    """Needs dockerd (scripts/dockerd.sh start) and the test image before the agent starts; fails otherwise."""
    if not _eventually(lambda: nomad_agent.any_driver_healthy("docker"), 40):
        pytest.fail(
            "the Nomad agent's docker driver is not healthy: start dockerd (scripts/dockerd.sh start) and build "
            f"{TEST_IMAGE} before the tests\n{nomad_agent.log_tail(1500)}"
        )
    _tag_test_image()
    # Nomad's docker driver stops its log collector as soon as the container exits, so the output of a container
    # that exits before the collector attached is lost for good (hashicorp/nomad#6931): 2 of 20 instant tasks beside
    # two busy loops kept no output, 0 of 20 that slept 2 s after printing. The task outlives that window.
    argv = ["/bin/sh", "-c", 'echo "docker-ok $CRONFRAMEWORK_LAUNCH"; sleep 5']
    launch = nomad_launch(unique_job("dock"), argv, image=NOMAD_IMAGE, network="none")
    nomad_backend.submit(launch.name, launch)
    task = nomad_agent.api("GET", f"/v1/job/{launch.name}")["TaskGroups"][0]["Tasks"][0]
    assert (task["Driver"], task["Config"]["image"]) == ("docker", NOMAD_IMAGE)
    status = _status(nomad_backend, launch)
    assert status.state is LaunchState.SUCCEEDED, status
    # the collector ships the output to Nomad's log files asynchronously: they can lag the allocation's completion
    expected = f"docker-ok {launch.name}"
    assert _eventually(lambda: expected in nomad_backend.logs(launch.name), 60), nomad_backend.logs(launch.name)


def _eventually(probe: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            return False
        time.sleep(1)
    return True


# -- the agent going away ----------------------------------------------------------------------------------


def test_agent_down_is_transient_and_recovers_after_restart(
    tmp_path: Path, nomad_launch: Callable[..., Launch]
) -> None:
    agent = _start(tmp_path / "agent")
    try:
        backend = create({"address": agent.address, "timeout": 3})
        running = nomad_launch(unique_job("mid"), ["/bin/sh", "-c", "sleep 30"])
        backend.submit(running.name, running)
        wait_for(lambda: backend.lookup(running.name), lambda s: s is not None and s.state.active, TIMEOUT)
        agent.stop()
        later = nomad_launch(unique_job("down"), ["/bin/sh", "-c", "echo back"])
        with pytest.raises(TransientBackendError):
            backend.submit(later.name, later)
        with pytest.raises(TransientBackendError):
            backend.lookup(running.name)
        agent.restart()
        assert backend.submit(later.name, later) is SubmitOutcome.SUBMITTED
        assert _status(backend, later).state is LaunchState.SUCCEEDED
    finally:
        agent.stop()


def test_an_agent_gone_between_the_write_and_its_check_leaves_the_launch_to_a_lookup(
    tmp_path: Path, nomad_launch: Callable[..., Launch]
) -> None:
    """The write landed, the agent stopped before the check's read: the error must not say "never reached the
    agent" (the scheduler would record failed_to_launch for a job that runs). Once back, the job is found by name
    and a second submit finds it too: one run."""
    agent = NomadAgent(tmp_path / "agent", persistent=True)  # keeps its jobs across the stop
    try:
        agent.start()
        backend = create({"address": agent.address, "timeout": 5})
        launch = nomad_launch(unique_job("halfway"), ["/bin/sh", "-c", "echo once"])
        check = backend.register(launch.name, launch)
        agent.stop()
        with pytest.raises(TransientBackendError) as caught:
            check()
        assert not isinstance(caught.value, BackendUnreachable)
        agent.start()
        assert backend.lookup(launch.name) is not None
        assert backend.submit(launch.name, launch) is SubmitOutcome.ALREADY_EXISTED
    finally:
        agent.shutdown()


def _kill_executors_under(data_dir: Path) -> int:
    """SIGKILL the executors of `data_dir`'s allocations (found by their log file's path in their command line), as
    a node crash takes them with the agent: the next agent cannot reattach to their tasks."""
    killed = 0
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
        except (OSError, ValueError):
            continue
        if proc.name.isdigit() and " executor " in cmdline.replace("\0", " ") and str(data_dir) in cmdline:
            os.kill(int(proc.name), signal.SIGKILL)
            killed += 1
    return killed


def test_a_task_nomad_cannot_reattach_after_a_crash_is_not_run_again(
    tmp_path: Path, nomad_launch: Callable[..., Launch]
) -> None:
    """Nomad starts such a task again once the restarted agent reaches its server; the guard refuses that start."""
    agent = NomadAgent(tmp_path / "agent", persistent=True)
    ran = tmp_path / "ran.txt"
    try:
        agent.start()
        backend = create({"address": agent.address, "timeout": 5})
        launch = nomad_launch(unique_job("crash"), ["/bin/sh", "-c", f"echo start >> {ran}; sleep 2"])
        backend.submit(launch.name, launch)
        assert _eventually(ran.exists, TIMEOUT), "the task never started"
        agent.stop(kill=True)
        assert _kill_executors_under(agent.workdir / "data") >= 1
        agent.start()
        status = _status(backend, launch)
        assert ran.read_text().splitlines() == ["start"], "the task ran again after the agent's restart"
        assert status.exit_code == RERUN_EXIT or status.state is LaunchState.LOST
    finally:
        agent.shutdown()


def test_submit_name_must_match_the_launch(nomad_backend: NomadBackend, nomad_launch: Callable[..., Launch]) -> None:
    launch = nomad_launch(unique_job("name"), ["/bin/true"])
    with pytest.raises(PermanentBackendError):
        nomad_backend.submit(f"{launch.name}-other", launch)


# -- mapping rules without an agent (cases a dev agent cannot easily produce) -----------------------------


def _alloc(client: str, desired: str = "run", events: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    state = {"Failed": client == "failed", "Events": events or [], "StartedAt": "2026-01-01T00:00:01.5Z"}
    return {
        "ID": "a1",
        "CreateIndex": 10,
        "ClientStatus": client,
        "DesiredStatus": desired,
        "TaskStates": {"task": state},
    }


@pytest.mark.parametrize(
    ("job", "allocs", "expected"),
    [
        ({"Status": "pending"}, [], (LaunchState.PENDING, None, "waiting for placement")),
        ({"Stop": True}, [_alloc("complete", "stop")], (LaunchState.FAILED, None, "stopped")),
        ({"Stop": True}, [_alloc("running", "stop")], (LaunchState.RUNNING, None, "stopping")),
        (
            {"Stop": True},
            [_alloc("complete", "run", [{"Type": "Terminated", "ExitCode": 0}])],
            (LaunchState.SUCCEEDED, 0, None),
        ),
        ({}, [_alloc("lost")], (LaunchState.LOST, None, "allocation lost (node down)")),
        ({}, [_alloc("unknown")], (LaunchState.RUNNING, None, "node disconnected")),
        (
            {},
            [_alloc("failed", events=[{"Type": "Driver Failure", "DisplayMessage": "no such image"}])],
            (LaunchState.FAILED, None, "Driver Failure: no such image"),
        ),
        (
            {},
            [_alloc("failed", events=[{"Type": "Terminated", "ExitCode": 137, "Signal": 9}])],
            (LaunchState.FAILED, 137, "exited with code 137 (signal 9)"),
        ),
    ],
)
def test_status_mapping(job: dict[str, Any], allocs: list[dict[str, Any]], expected: tuple[Any, ...]) -> None:
    status = job_status(job, allocs)
    assert (status.state, status.exit_code, status.reason) == expected


def test_newest_allocation_decides() -> None:
    old = {**_alloc("lost"), "CreateIndex": 5}
    new = {**_alloc("running"), "CreateIndex": 9}
    assert job_status({}, [new, old]).state is LaunchState.RUNNING


def test_docker_mapping_and_refusals() -> None:
    launch = conformance_launch(
        "img", ["/bin/echo", "a"], backend="nomad", image="busybox:1", args=["b"], network="none"
    )
    task = job_payload(launch)["TaskGroups"][0]["Tasks"][0]
    assert task["Driver"] == "docker"
    assert task["Config"] == {
        "image": "busybox:1",
        "command": "/bin/echo",
        "args": ["a", "b"],
        "network_mode": "none",
    }
    mounted = conformance_launch("m", ["/bin/true"], backend="nomad", mounts=[{"source": "/a", "target": "/b"}])
    with pytest.raises(PermanentBackendError, match="docker"):
        job_payload(mounted)
    exec_on_image = conformance_launch("e", ["x"], backend="nomad", image="i", spec={"nomad": {"driver": "exec"}})
    with pytest.raises(PermanentBackendError, match="docker"):
        job_payload(exec_on_image)


def _response(code: int, text: str) -> requests.Response:
    response = requests.Response()
    response.status_code, response._content = code, text.encode()
    return response


@pytest.mark.parametrize(
    ("code", "text", "expected"),
    [
        (500, "No cluster leader", TransientBackendError),
        (503, "overloaded", TransientBackendError),
        (500, "1 error occurred:\n\t* Task group validation failed", PermanentBackendError),
        (400, "bad json", PermanentBackendError),
        (403, "Permission denied", PermanentBackendError),
    ],
)
def test_error_classification(code: int, text: str, expected: type[Exception]) -> None:
    backend = create({"address": "http://127.0.0.1:9", "token": "tok-123"})
    error = backend._translate("register", nomad_errors.BaseNomadException(_response(code, f"{text} tok-123")))
    assert type(error) is expected and str(code) in str(error)
    assert "tok-123" not in str(error) and "<redacted>" in str(error)


def test_unreachable_agent_is_transient() -> None:
    backend = create({"address": "http://127.0.0.1:9", "timeout": 2, "retries": 1})
    with pytest.raises(TransientBackendError, match=r"127\.0\.0\.1:9"):
        backend.lookup("x-20260101t000000z")

"""The Docker adapter against a real Docker daemon (scripts/dockerd.sh) and a registry-free busybox image
(scripts/test-image.sh). A daemon that cannot be started fails every test here with the reason; nothing skips.
The daemon restart test stops a daemon of its own (PrivateDockerDaemon), never the machine's shared one."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import docker
import pytest
import requests

from backends.docker import DockerBackend, create
from backends.docker_spec import Placement, plan_container
from backends.docker_status import parse_time, status_from_inspect
from cronframework import send_guard
from cronframework.errors import (
    BackendError,
    BackendUnreachable,
    LeadershipLost,
    PermanentBackendError,
    TransientBackendError,
)
from cronframework.launch import Launch, LaunchState, SubmitOutcome
from integration.certs import CertAuthority, Issued
from integration.docker_daemon import (
    START_TIMEOUT,
    TEST_IMAGE,
    DockerDaemonError,
    PrivateDockerDaemon,
    TlsDockerDaemon,
    ensure_ready,
    remove_labelled,
    sdk_client,
)
from tests.backend_conformance import BackendConformance, conformance_launch, finished, unique_job, wait_for

pytestmark = pytest.mark.docker

TIMEOUT = 60.0
CLUSTER_LABEL = "cronframework.cluster=/cf-conformance"
CONFIG: dict[str, Any] = {"stop_grace": 1, "default_network": "none"}


@pytest.fixture(scope="session")
def docker_api() -> Iterator[docker.APIClient]:
    try:
        ensure_ready()
    except DockerDaemonError as exc:
        pytest.fail(f"cannot start a real Docker daemon or build {TEST_IMAGE}: {exc}", pytrace=False)
    api = sdk_client()
    yield api
    remove_labelled(api, CLUSTER_LABEL)
    api.close()


@pytest.fixture
def docker_launch() -> Callable[..., Launch]:
    def make(job: str, argv: list[str], **task: Any) -> Launch:
        task.setdefault("image", TEST_IMAGE)
        return conformance_launch(job, argv, backend="docker", **task)

    return make


@pytest.fixture
def docker_backend(docker_api: docker.APIClient) -> Iterator[DockerBackend]:
    backend = create(CONFIG)
    yield backend
    backend.close()


def _containers_of(api: docker.APIClient, launch: Launch) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = api.containers(all=True, filters={"label": f"cronframework.launch={launch.name}"})
    return found


def _wait_finished(backend: DockerBackend, name: str) -> Any:
    status = wait_for(lambda: backend.lookup(name), finished, TIMEOUT)
    assert status is not None
    return status


def _wait_running(backend: DockerBackend, name: str) -> Any:
    return wait_for(lambda: backend.lookup(name), lambda s: s is not None and s.state is LaunchState.RUNNING, TIMEOUT)


class TestDockerConformance(BackendConformance):
    timeout = TIMEOUT

    @pytest.fixture
    def backend(self, docker_backend: DockerBackend) -> DockerBackend:
        return docker_backend

    @pytest.fixture
    def make_launch(self, docker_launch: Callable[..., Launch]) -> Callable[..., Launch]:
        return docker_launch


def test_double_submit_leaves_one_container(docker_backend: DockerBackend, docker_launch: Any, docker_api: Any) -> None:
    launch = docker_launch(unique_job("dbl"), ["/bin/sh", "-c", "echo once"])
    outcomes = [docker_backend.submit(launch.name, launch) for _ in range(3)]
    assert outcomes == [SubmitOutcome.SUBMITTED, SubmitOutcome.ALREADY_EXISTED, SubmitOutcome.ALREADY_EXISTED]
    assert _wait_finished(docker_backend, launch.name).state is LaunchState.SUCCEEDED
    assert docker_backend.submit(launch.name, launch) is SubmitOutcome.ALREADY_EXISTED  # exited: not rerun
    assert len(_containers_of(docker_api, launch)) == 1
    assert docker_backend.logs(launch.name).count("once") == 1


def test_crash_between_create_and_start_is_started_by_next_submit(
    docker_backend: DockerBackend, docker_launch: Any, docker_api: Any
) -> None:
    launch = docker_launch(unique_job("crash"), ["/bin/sh", "-c", "echo resumed"])
    plan = plan_container(launch.name, launch, Placement(default_network="none"))
    # What a leader that died right after create left behind: a container that was never started.
    docker_api.create_container(host_config=docker_api.create_host_config(**plan.host), **plan.create)
    assert docker_backend.lookup(launch.name).state is LaunchState.PENDING  # type: ignore[union-attr]
    assert docker_backend.submit(launch.name, launch) is SubmitOutcome.SUBMITTED
    assert _wait_finished(docker_backend, launch.name).state is LaunchState.SUCCEEDED
    assert "resumed" in docker_backend.logs(launch.name)
    assert docker_backend.submit(launch.name, launch) is SubmitOutcome.ALREADY_EXISTED
    assert len(_containers_of(docker_api, launch)) == 1


def test_a_leader_frozen_between_create_and_start_never_starts_the_container_again(
    docker_backend: DockerBackend, docker_launch: Any, docker_api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The zombie double run the 5-minute Docker fault run found: a leader created the container and was frozen
    (SIGSTOP) before its start; the next leader found it created and never started, started it, and it ran to
    its end; then the old leader thawed and its start restarted the exited container, a second run. Docker has
    no compare-and-start, so the start after a create is preceded by a check that nobody started it since."""
    launch = docker_launch(unique_job("thaw"), ["/bin/sh", "-c", "echo ran"])
    frozen = create(CONFIG)
    thawed: list[SubmitOutcome] = []

    def next_leader_runs_it_first(name: str) -> None:
        assert docker_backend.submit(name, launch) is SubmitOutcome.SUBMITTED  # the next leader's resume
        _wait_finished(docker_backend, name)
        thawed.append(SubmitOutcome.SUBMITTED)
        original(name)

    original = frozen._start_created
    monkeypatch.setattr(frozen, "_start_created", next_leader_runs_it_first)
    try:
        frozen.submit(launch.name, launch)
    finally:
        frozen.close()
    assert thawed  # the freeze happened between create and start
    time.sleep(1.0)  # a restarted container would have run `echo` again by now
    _wait_finished(docker_backend, launch.name)
    assert docker_backend.logs(launch.name).count("ran") == 1


def submitted_frozen_inside_the_sdk(backend: DockerBackend, launch: Launch, monkeypatch: pytest.MonkeyPatch) -> None:
    """A submit by a leader deposed while frozen (SIGSTOP) in the docker SDK's own work, after the adapter's last
    step and before the request leaves: the request's preparation moves the guard's clock 30 s on. It must raise
    LeadershipLost."""
    now = [0.0]
    api = backend._api()
    prepare = api.prepare_request

    def frozen_then_prepared(request: Any) -> Any:
        if request.method == "POST":
            now[0] += 30.0
        return prepare(request)

    def deposed() -> None:
        raise LeadershipLost("the session expired while the process was frozen")

    monkeypatch.setattr(api, "prepare_request", frozen_then_prepared)
    with send_guard.armed(deposed, lambda: now[0]), pytest.raises(LeadershipLost):
        backend.submit(launch.name, launch)
    monkeypatch.undo()


def test_a_leader_frozen_inside_the_sdk_before_its_create_leaves_sends_nothing(
    docker_backend: DockerBackend, docker_launch: Any, docker_api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The 60-minute Docker run at c9b739e: four containers created at one thaw by a deposed leader. The check
    right before the SDK call had passed; the freeze came inside the SDK's work, which the interpreter's lock can
    stretch under load. The transport checks again as the request's bytes leave."""
    launch = docker_launch(unique_job("sdk"), ["/bin/sh", "-c", "true"])
    submitted_frozen_inside_the_sdk(docker_backend, launch, monkeypatch)
    assert _containers_of(docker_api, launch) == []
    assert docker_backend.submit(launch.name, launch) is SubmitOutcome.SUBMITTED, "the connection is usable again"


def test_a_second_start_of_one_container_does_not_run_the_task_again(
    docker_backend: DockerBackend, docker_launch: Any, docker_api: Any
) -> None:
    """The 60-minute Docker run's double runs (third-...183131z and four more): two leaders each saw the container
    created and never started, and both started it; the task ended in milliseconds, so the later start ran the
    exited container again. No check before the start closes that window; the container itself refuses a second
    run, by a mark it keeps in its own filesystem, which outlives a stop and a start."""
    launch = docker_launch(unique_job("twice"), ["/bin/sh", "-c", "echo ran"])
    plan = plan_container(launch.name, launch, Placement(default_network="none"))
    docker_api.create_container(host_config=docker_api.create_host_config(**plan.host), **plan.create)
    docker_api.start(launch.name)  # one leader's start
    _wait_finished(docker_backend, launch.name)
    docker_api.start(launch.name)  # the other's, checked before the first one began
    time.sleep(1.0)
    _wait_finished(docker_backend, launch.name)
    assert docker_backend.logs(launch.name).count("ran") == 1


def test_daemon_gone_between_create_and_start_is_ambiguous_not_unreachable(
    docker_backend: DockerBackend, docker_launch: Any, docker_api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon took the create, then refused the start (it was stopping). The container exists, so the error
    must not claim that nothing landed; the next submit starts it, exactly once."""
    launch = docker_launch(unique_job("halfway"), ["/bin/sh", "-c", "echo late"])
    api = docker_backend._api()

    def refused(*_args: object, **_kwargs: object) -> None:
        raise requests.exceptions.ConnectionError(ConnectionRefusedError(111, "Connection refused"))

    with monkeypatch.context() as patch:
        patch.setattr(api, "start", refused)
        with pytest.raises(TransientBackendError) as caught:
            docker_backend.submit(launch.name, launch)
    assert not isinstance(caught.value, BackendUnreachable)
    assert docker_backend.lookup(launch.name).state is LaunchState.PENDING  # type: ignore[union-attr]
    assert docker_backend.submit(launch.name, launch) is SubmitOutcome.SUBMITTED
    assert _wait_finished(docker_backend, launch.name).state is LaunchState.SUCCEEDED
    assert len(_containers_of(docker_api, launch)) == 1


def test_container_of_another_launch_under_the_name_is_refused(
    docker_backend: DockerBackend, docker_launch: Any, docker_api: Any
) -> None:
    launch = docker_launch(unique_job("squat"), ["/bin/sh", "-c", "true"])
    docker_api.create_container(TEST_IMAGE, name=launch.name, labels={"cronframework.cluster": "/cf-conformance"})
    with pytest.raises(PermanentBackendError, match="not this launch"):
        docker_backend.submit(launch.name, launch)


def test_stop_past_timeout_is_failed_timed_out(docker_backend: DockerBackend, docker_launch: Any) -> None:
    launch = docker_launch(unique_job("limit"), ["/bin/sh", "-c", "sleep 30"], timeout="1s")
    docker_backend.submit(launch.name, launch)
    running = _wait_running(docker_backend, launch.name)
    while datetime.now(UTC) < running.started_at + timedelta(seconds=1.2):  # the scheduler's limit check
        time.sleep(0.1)
    docker_backend.stop(launch.name)
    status = _wait_finished(docker_backend, launch.name)
    assert status.state is LaunchState.FAILED
    assert "timed out" in status.reason, status
    assert status.exit_code in (137, 143)


def test_stop_before_timeout_is_not_reported_timed_out(docker_backend: DockerBackend, docker_launch: Any) -> None:
    launch = docker_launch(unique_job("early"), ["/bin/sh", "-c", "sleep 30"], timeout="1h")
    docker_backend.submit(launch.name, launch)
    _wait_running(docker_backend, launch.name)
    docker_backend.stop(launch.name)
    status = _wait_finished(docker_backend, launch.name)
    assert status.state is LaunchState.FAILED
    assert "timed out" not in status.reason and "exit code 143" in status.reason, status


def test_memory_limit_overrun_is_oom_killed(docker_backend: DockerBackend, docker_launch: Any, docker_api: Any) -> None:
    # busybox tail keeps a newline-free input in memory: 64 MiB through an 8 MiB limit (swap capped too).
    argv = ["/bin/sh", "-c", "head -c 64m /dev/zero | tail > /dev/null"]
    launch = docker_launch(unique_job("oom"), argv, resources={"memory": 8, "cpu": 0.5})
    docker_backend.submit(launch.name, launch)
    status = _wait_finished(docker_backend, launch.name)
    assert status.state is LaunchState.FAILED
    assert "OOM-killed" in status.reason and status.exit_code == 137, status
    host = docker_api.inspect_container(launch.name)["HostConfig"]
    assert (host["Memory"], host["MemorySwap"], host["NanoCpus"]) == (8 << 20, 8 << 20, 500_000_000)


def test_missing_image_is_permanent_and_creates_nothing(docker_backend: DockerBackend, docker_launch: Any) -> None:
    launch = docker_launch(unique_job("noimg"), ["/bin/sh", "-c", "true"], image="cronframework-absent:never")
    with pytest.raises(PermanentBackendError, match="image not found: cronframework-absent:never"):
        docker_backend.submit(launch.name, launch)
    assert docker_backend.lookup(launch.name) is None


def test_task_without_image_is_permanent(docker_backend: DockerBackend) -> None:
    launch = conformance_launch(unique_job("bare"), ["/bin/true"], backend="docker")
    with pytest.raises(PermanentBackendError, match=r"docker backend needs task\.image"):
        docker_backend.submit(launch.name, launch)


def test_unstartable_command_without_init_is_permanent_then_failed(docker_launch: Any) -> None:
    backend = create({**CONFIG, "init": False, "rerun_guard": False})  # the guard's shell would start, then fail 127
    launch = docker_launch(unique_job("noexec"), ["/no/such/binary"])
    with pytest.raises(PermanentBackendError, match="no/such/binary"):
        backend.submit(launch.name, launch)
    status = backend.lookup(launch.name)
    assert status is not None and status.state is LaunchState.FAILED
    assert status.reason and status.reason.startswith("failed to start"), status


def test_unstartable_command_under_init_fails_with_127(docker_backend: DockerBackend, docker_launch: Any) -> None:
    # docker-init starts fine and then cannot exec the command: the launch runs and fails, it is not refused.
    launch = docker_launch(unique_job("noexec"), ["/no/such/binary"])
    assert docker_backend.submit(launch.name, launch) is SubmitOutcome.SUBMITTED
    status = _wait_finished(docker_backend, launch.name)
    assert (status.state, status.exit_code) == (LaunchState.FAILED, 127), status


def test_user_workdir_env_and_docker_block_reach_the_container(
    docker_backend: DockerBackend, docker_launch: Any, docker_api: Any
) -> None:
    script = 'echo "uid=$(id -u) pwd=$(pwd) greet=$GREETING"; touch /x 2>/dev/null || echo ro-root'
    launch = docker_launch(
        unique_job("ctx"),
        ["/bin/sh", "-c", script],
        user="nobody",
        workdir="/tmp",
        env={"GREETING": "hi"},
        spec={"docker": {"labels": {"team": "data"}, "read_only": True, "cap_drop": ["ALL"]}},
    )
    docker_backend.submit(launch.name, launch)
    assert _wait_finished(docker_backend, launch.name).state is LaunchState.SUCCEEDED
    logs = docker_backend.logs(launch.name)
    assert "uid=65534 pwd=/tmp greet=hi" in logs and "ro-root" in logs, logs
    labels = docker_api.inspect_container(launch.name)["Config"]["Labels"]
    assert labels["team"] == "data" and labels["cronframework.job"] == launch.identity.job


def test_disallowed_docker_option_is_permanent(docker_backend: DockerBackend, docker_launch: Any) -> None:
    launch = docker_launch(unique_job("priv"), ["/bin/true"], spec={"docker": {"privileged": True}})
    with pytest.raises(PermanentBackendError, match="privileged not allowed"):
        docker_backend.submit(launch.name, launch)
    assert docker_backend.lookup(launch.name) is None


def test_mounts_only_under_allowed_prefixes(docker_api: Any, docker_launch: Any, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "input.txt").write_text("mounted-data\n")
    backend = create({**CONFIG, "allowed_mounts": [str(shared)]})
    outside = docker_launch(unique_job("mnt"), ["/bin/true"], mounts=[{"source": f"{shared}/../", "target": "/d"}])
    with pytest.raises(PermanentBackendError, match="not under allowed_mounts"):
        backend.submit(outside.name, outside)
    inside = docker_launch(
        unique_job("mnt"), ["/bin/cat", "/data/input.txt"], mounts=[{"source": str(shared), "target": "/data"}]
    )
    backend.submit(inside.name, inside)
    assert _wait_finished(backend, inside.name).state is LaunchState.SUCCEEDED
    assert "mounted-data" in backend.logs(inside.name)


def test_remove_refuses_running_and_ignores_missing(docker_backend: DockerBackend, docker_launch: Any) -> None:
    launch = docker_launch(unique_job("rm"), ["/bin/sh", "-c", "sleep 300"])
    docker_backend.submit(launch.name, launch)
    _wait_running(docker_backend, launch.name)
    with pytest.raises(PermanentBackendError, match="still running"):
        docker_backend.remove(launch.name)
    docker_backend.stop(launch.name)
    docker_backend.remove(launch.name)
    docker_backend.remove(launch.name)  # already gone: fine
    assert docker_backend.lookup(launch.name) is None
    assert docker_backend.logs(launch.name) == ""


def test_cleanup_keeps_newest_and_open_launches(docker_backend: DockerBackend, docker_launch: Any) -> None:
    job = unique_job("gc")
    days = [datetime(2026, 1, day, tzinfo=UTC) for day in range(1, 7)]
    launches = [docker_launch(job, ["/bin/sh", "-c", "true"], scheduled=day) for day in days]
    launches[0] = docker_launch(job, ["/bin/sh", "-c", "sleep 300"], scheduled=days[0])  # oldest, still running
    for launch in launches:
        docker_backend.submit(launch.name, launch)
    for launch in launches[1:]:
        _wait_finished(docker_backend, launch.name)
    _wait_running(docker_backend, launches[0].name)
    protected = {launches[2].name}  # an open launch in the scheduler's records
    removed = docker_backend.cleanup(job, keep=2, protect=protected)
    assert removed == [launches[1].name, launches[3].name]
    assert docker_backend.list(job) == sorted([launches[0].name, launches[2].name, launches[4].name, launches[5].name])
    assert docker_backend.retention_horizon() is None


def test_unreachable_daemon_is_transient(docker_launch: Any, tmp_path: Path) -> None:
    backend = create({"base_url": f"unix://{tmp_path}/absent.sock", "timeout": 2})
    launch = docker_launch(unique_job("down"), ["/bin/true"])
    with pytest.raises(TransientBackendError):
        backend.submit(launch.name, launch)
    with pytest.raises(TransientBackendError):
        backend.lookup(launch.name)


def test_status_mapping_without_a_daemon() -> None:
    def state(**fields: Any) -> dict[str, Any]:
        base = {"Status": "exited", "ExitCode": 0, "OOMKilled": False, "Error": ""}
        return {"State": {**base, **fields}, "Config": {"Labels": {"cronframework.timeout": "5"}}}

    t0, t9 = "2026-01-01T00:00:00.123456789Z", "2026-01-01T00:00:09Z"
    assert status_from_inspect(state(Status="created")).state is LaunchState.PENDING
    assert status_from_inspect(state(Status="paused")).state is LaunchState.RUNNING
    assert status_from_inspect(state(Status="dead")).state is LaunchState.LOST
    assert status_from_inspect(state(ExitCode=3)).reason == "exit code 3"
    timed = status_from_inspect(state(ExitCode=137, StartedAt=t0, FinishedAt=t9))
    assert timed.reason == "timed out after 5s (exit code 137)"
    assert status_from_inspect(state(ExitCode=137, OOMKilled=True)).reason == "OOM-killed (exit code 137)"
    assert parse_time(t0) == datetime(2026, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)
    assert parse_time("0001-01-01T00:00:00Z") is None


# -- TLS: a daemon of the tests' own whose API is TLS only, client certificates required -------------------------
@pytest.fixture(scope="module")
def tls_daemon(docker_api: docker.APIClient) -> Iterator[TlsDockerDaemon]:
    daemon = TlsDockerDaemon()
    try:
        daemon.start()
    except DockerDaemonError as exc:
        pytest.fail(f"cannot start a Docker daemon with TLS: {exc}", pytrace=False)
    yield daemon
    daemon.stop()


def _tls_backend(daemon: TlsDockerDaemon, ca: Path, cert: Issued | None) -> DockerBackend:
    tls = {"ca_cert": str(ca), **({"client_cert": str(cert.cert), "client_key": str(cert.key)} if cert else {})}
    return create({**CONFIG, "base_url": daemon.address, "tls": tls, "timeout": 30})


def test_a_launch_runs_over_tls_with_a_client_certificate(
    tls_daemon: TlsDockerDaemon, docker_launch: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon's CA from the config, even where the environment names a CA bundle for requests (the system's
    here, which does not hold the test CA): requests used to let the environment win."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    backend = _tls_backend(tls_daemon, tls_daemon.ca.cert, tls_daemon.client)
    try:
        launch = docker_launch(unique_job("tls"), ["/bin/sh", "-c", "echo over tls"])
        assert backend.submit(launch.name, launch) is SubmitOutcome.SUBMITTED
        assert _wait_finished(backend, launch.name).state is LaunchState.SUCCEEDED
        assert [c["Names"] for c in _containers_of(tls_daemon.behind(), launch)] == [[f"/{launch.name}"]]
    finally:
        backend.close()


def test_a_leader_frozen_inside_the_sdk_sends_nothing_over_tls_either(
    tls_daemon: TlsDockerDaemon, docker_launch: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same freeze as over the local socket, through the TCP + TLS connections the SDK opens."""
    backend = _tls_backend(tls_daemon, tls_daemon.ca.cert, tls_daemon.client)
    try:
        launch = docker_launch(unique_job("sdktls"), ["/bin/sh", "-c", "true"])
        submitted_frozen_inside_the_sdk(backend, launch, monkeypatch)
        assert _containers_of(tls_daemon.behind(), launch) == []
    finally:
        backend.close()


def _refusals(backend: DockerBackend, launch: Launch, kind: type[BackendError]) -> list[BackendError]:
    found = []
    for call in (lambda: backend.submit(launch.name, launch), lambda: backend.lookup(launch.name)):
        with pytest.raises(kind) as caught:
            call()
        found.append(caught.value)
    return found


def test_a_wrong_ca_fails_closed_saying_why_and_no_certificate_fails_closed_and_no_secret_shows(
    tls_daemon: TlsDockerDaemon, docker_launch: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Trusting another CA is a permanent error (retrying cannot fix a configuration) that says so. Without a client
    certificate the daemon refuses the handshake: mostly with an alert (permanent, said so), sometimes as a bare
    close racing our request (TLS 1.3), which reads as an outage. Either way nothing is created behind the port,
    and no key material is in any error or log."""
    other = CertAuthority(tmp_path / "other", "another CA")
    caplog.set_level(logging.DEBUG)
    cases: dict[str, tuple[DockerBackend, type[BackendError]]] = {
        "certificate not trusted": (_tls_backend(tls_daemon, other.cert, other.issue("client")), PermanentBackendError),
        "refused this client's certificate": (_tls_backend(tls_daemon, tls_daemon.ca.cert, None), BackendError),
    }
    for why, (backend, kind) in cases.items():
        launch = docker_launch(unique_job("tls-refused"), ["true"])
        try:
            errors = _refusals(backend, launch, kind)
        finally:
            backend.close()
        assert all(why in str(e) for e in errors if isinstance(e, PermanentBackendError)), [str(e) for e in errors]
        assert _containers_of(tls_daemon.behind(), launch) == []
        said = " ".join([*(str(e) for e in errors), *(r.getMessage() for r in caplog.records)])
        for key in (tls_daemon.client.key, *other.folder.glob("*.key")):
            assert _key_body(key) not in said and "PRIVATE KEY" not in said


def _key_body(path: Path) -> str:
    return "".join(line for line in path.read_text().splitlines() if "-----" not in line)[:40]


def test_daemon_restart_mid_run(docker_launch: Any, tmp_path: Path) -> None:
    """Without live-restore, dockerd stops its containers on shutdown, so a launch running across the restart is
    seen FAILED (SIGTERM via docker-init, exit 143) afterwards. The daemon restarted is one of the test's own."""
    daemon = PrivateDockerDaemon(tmp_path / "dockerd")
    try:
        daemon.ready()
        backend = create({**CONFIG, "base_url": daemon.address})
    except DockerDaemonError as exc:
        daemon.close()
        pytest.fail(f"cannot start a private Docker daemon: {exc}", pytrace=False)
    try:
        _restart_mid_run(backend, daemon, docker_launch)
    finally:
        backend.close()
        daemon.close()


def _restart_mid_run(backend: DockerBackend, daemon: PrivateDockerDaemon, docker_launch: Any) -> None:
    running = docker_launch(unique_job("restart"), ["/bin/sh", "-c", "sleep 300"])
    backend.submit(running.name, running)
    _wait_running(backend, running.name)
    during = docker_launch(unique_job("restart"), ["/bin/sh", "-c", "echo after-restart"])
    try:
        daemon.stop()
        with pytest.raises(TransientBackendError):
            backend.submit(during.name, during)
        with pytest.raises(TransientBackendError):
            backend.lookup(running.name)
    finally:
        daemon.start()
    assert backend.submit(during.name, during) is SubmitOutcome.SUBMITTED
    assert _wait_finished(backend, during.name).state is LaunchState.SUCCEEDED
    survivor = backend.lookup(running.name)
    assert survivor is not None and survivor.state is LaunchState.FAILED and survivor.exit_code == 143, survivor


def test_a_private_daemon_is_given_as_long_to_start_as_the_script_waits() -> None:
    """A daemon restarted with thousands of containers cleans up their sandboxes before it answers: the caller
    had cut dockerd.sh off at 120 s while the script itself waits up to SLOW_WAIT for such a start."""
    script = (Path(__file__).resolve().parent.parent / "scripts" / "dockerd.sh").read_text()
    slow_wait = re.search(r"SLOW_WAIT=\$\{CRONFRAMEWORK_DOCKERD_SLOW_WAIT:-(\d+)\}", script)
    assert slow_wait is not None
    assert int(slow_wait.group(1)) < START_TIMEOUT

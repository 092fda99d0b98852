"""Which transient errors prove a request never reached its backend (so a submit certainly did not land)."""

from __future__ import annotations

import socket

import docker
import pytest
import requests

from cronframework.errors import (
    BackendTimeout,
    BackendUnreachable,
    TransientBackendError,
    never_connected,
    timed_out,
    transient_kind,
)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_connection_refused_over_http_never_connected() -> None:
    with pytest.raises(requests.RequestException) as caught:
        requests.get(f"http://127.0.0.1:{_closed_port()}/v1/jobs", timeout=5)
    assert never_connected(caught.value)


def test_missing_docker_socket_never_connected(tmp_path: object) -> None:
    with pytest.raises(docker.errors.DockerException) as caught:
        docker.APIClient(base_url=f"unix://{tmp_path}/no-such.sock", timeout=5).version()
    assert never_connected(caught.value)


def test_a_timeout_or_reset_may_have_landed() -> None:
    assert not never_connected(TimeoutError("read timed out"))
    assert not never_connected(requests.exceptions.ReadTimeout("read timed out"))
    assert not never_connected(ConnectionResetError("reset by peer"))


def test_a_real_read_timeout_over_http_is_in_doubt() -> None:
    """A server that accepts and never answers: the request was sent, so it may still take effect later."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        with pytest.raises(requests.RequestException) as caught:
            requests.post(f"http://127.0.0.1:{port}/v1/jobs", data=b"{}", timeout=(2, 0.3))
    assert timed_out(caught.value) and not never_connected(caught.value)
    assert transient_kind(caught.value) is BackendTimeout


def test_refused_and_reset_are_not_timeouts() -> None:
    with pytest.raises(requests.RequestException) as caught:
        requests.get(f"http://127.0.0.1:{_closed_port()}/v1/jobs", timeout=5)
    assert transient_kind(caught.value) is BackendUnreachable
    assert transient_kind(ConnectionResetError("reset by peer")) is TransientBackendError

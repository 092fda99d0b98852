"""Which transient errors prove a request never reached its backend (so a submit certainly did not land)."""

from __future__ import annotations

import socket

import docker
import pytest
import requests

from cronframework.errors import never_connected


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

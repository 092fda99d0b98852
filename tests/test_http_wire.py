"""The wire path's reading of answers (backends/http_wire.py) against a socket server that sends exact bytes: the
framings a Go agent may use, when a connection is reused, and what counts as "in doubt"."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from backends.http_wire import Disconnected, WireConnections
from tests.fake_nomad import closed_port

REQUEST = b"GET /v1/job/x/summary HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


@contextmanager
def answering(*answers: bytes) -> Iterator[tuple[WireConnections, list[int]]]:
    """A server that meets each request with the next of `answers` (raw bytes; b"" closes without one), and a
    client for it. Yields the client and, per request read, the number of the connection it came on."""
    listener = socket.create_server(("127.0.0.1", 0))
    seen: list[int] = []
    todo = list(answers)

    def serve() -> None:
        number = 0
        while todo:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            number += 1
            with conn:
                while todo:
                    if not conn.recv(65536):
                        break
                    seen.append(number)
                    answer = todo.pop(0)
                    if not answer:
                        break
                    conn.sendall(answer)

    threading.Thread(target=serve, daemon=True).start()
    wire = WireConnections("127.0.0.1", listener.getsockname()[1], timeout=2.0, size=4)
    try:
        yield wire, seen
    finally:
        wire.close()
        listener.close()


def test_length_chunked_and_close_delimited_answers_are_read_whole() -> None:
    chunks = b'4\r\n{"a"\r\n3;x=1\r\n: 1\r\n1\r\n}\r\n0\r\nT: v\r\n\r\n'  # an extension and a trailer
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks
    with answering(
        b'HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n{"a": 1}',
        b"HTTP/1.1 100 Continue\r\n\r\n" + chunked,
        b"HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\njob not found",
    ) as (wire, seen):
        assert wire.exchange(REQUEST) == (200, b'{"a": 1}')
        assert wire.exchange(REQUEST) == (200, b'{"a": 1}')
        assert wire.exchange(REQUEST) == (404, b"job not found")
    assert seen == [1, 1, 1], "kept alive until the server asked to close"


def test_a_connection_the_server_asked_to_close_is_not_used_again() -> None:
    with answering(
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}",
        b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
    ) as (wire, seen):
        for _ in range(3):
            assert wire.exchange(REQUEST) == (200, b"{}")
    assert seen == [1, 2, 3]


@pytest.mark.parametrize(
    "answer",
    [b"", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}", b"SSH-2.0-OpenSSH\r\n\r\n", b"HTTP/1.1 2xx OK\r\n\r\n"],
    ids=["closed", "cut short", "not HTTP", "bad status"],
)
def test_an_answer_cut_short_or_not_http_is_in_doubt(answer: bytes) -> None:
    with answering(answer) as (wire, seen), pytest.raises(Disconnected):
        wire.exchange(REQUEST)
    assert seen == [1], "sent once, never again"


def test_a_refused_connect_is_the_connect_s_own_error() -> None:
    wire = WireConnections("127.0.0.1", closed_port(), timeout=2.0, size=1)
    with pytest.raises(ConnectionRefusedError):
        wire.exchange(REQUEST)

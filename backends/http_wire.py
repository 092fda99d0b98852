"""Keep-alive HTTP/1.1 exchanges with one plain-HTTP server, for small requests whose answers are small JSON.

Why: at a herd's instant the leader's CPU per request bounds how fast a thousand Nomad registrations go out, and a
general client spends most of it on generality (a urllib3 request, 0.3-0.6 ms; here about a third of that, issue 18,
docs/benchmarks.md). What it keeps of urllib3's care: a kept connection the server has closed is found before
anything is sent on it (then a new one is opened), nothing is ever sent twice, and an error says whether anything
was sent: the connect's own error (a refusal proves nothing landed), or anything after it (in doubt). A connection
is reused only after a whole answer was read from it and the server did not ask to close it.
"""

from __future__ import annotations

import select
import socket
import threading
from collections.abc import Callable
from io import BufferedReader

MAX_LINE = 65_536  # a status or header line longer than this is not an answer from the agent
MAX_HEADERS = 100


class Disconnected(ConnectionError):
    """The server closed the connection, or sent something that is not an HTTP answer, after the request was sent:
    it may have acted on it."""


class _Connection:
    __slots__ = ("reader", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = sock.makefile("rb")

    def dropped(self) -> bool:
        """Readable while idle: the server closed it (or sent what nobody asked for). Either way not reusable."""
        poll = select.poll()
        poll.register(self.sock, select.POLLIN)
        return bool(poll.poll(0))

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


class WireConnections:
    """Up to `size` idle connections to `host`:`port` kept for reuse; thread-safe (each exchange holds its own).
    `before_send` is called right before each request's bytes are written (the send guard): what it raises is
    raised, with nothing sent."""

    def __init__(
        self, host: str, port: int, timeout: float | None, size: int, before_send: Callable[[], None] = lambda: None
    ) -> None:
        self._address, self._timeout, self._size = (host, port), timeout, max(1, size)
        self._before_send = before_send
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()
        self._closed = False

    def exchange(self, request: bytes) -> tuple[int, bytes]:
        """Send `request` (a whole HTTP/1.1 request) and return the answer's status and body. Raises the connect's
        OSError when no connection could be made (nothing sent), else an OSError for what happened after."""
        connection = self._take()
        try:
            self._before_send()
            connection.sock.sendall(request)
            status, body, keep = _read_answer(connection.reader)
        except BaseException:
            connection.close()
            raise
        if keep:
            self._give(connection)
        else:
            connection.close()
        return status, body

    def close(self) -> None:
        """Closes the idle connections, and each busy one as its exchange ends."""
        with self._lock:
            self._closed, idle, self._idle = True, self._idle, []
        for connection in idle:
            connection.close()

    def _take(self) -> _Connection:
        while True:
            with self._lock:
                connection = self._idle.pop() if self._idle else None
            if connection is None:
                sock = socket.create_connection(self._address, timeout=self._timeout)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                return _Connection(sock)
            if not connection.dropped():
                return connection
            connection.close()

    def _give(self, connection: _Connection) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < self._size:
                self._idle.append(connection)
                return
        connection.close()


def _read_answer(reader: BufferedReader) -> tuple[int, bytes, bool]:
    """(status, body, whether the connection may be reused) of the next answer; informational answers skipped."""
    while True:
        version, status = _status_line(_line(reader))
        fields = _header_fields(reader)
        if 100 <= status < 200:
            continue
        keep = version == b"HTTP/1.1" and b"close" not in fields.get(b"connection", b"").lower()
        if status in (204, 304):
            return status, b"", keep
        if b"chunked" in fields.get(b"transfer-encoding", b"").lower():
            return status, _chunked(reader), keep
        if (length := fields.get(b"content-length")) is not None:
            return status, _exactly(reader, _number(length, 10)), keep
        return status, reader.read(), False  # delimited by the server's close


def _line(reader: BufferedReader) -> bytes:
    line = reader.readline(MAX_LINE + 1)
    if not line.endswith(b"\n") or len(line) > MAX_LINE:
        raise Disconnected("the connection closed before a whole answer was read" if not line else "line too long")
    return line


def _status_line(line: bytes) -> tuple[bytes, int]:
    version, _, rest = line.partition(b" ")
    if not version.startswith(b"HTTP/1."):
        raise Disconnected(f"not an HTTP answer: {line[:40]!r}")
    return version, _number(rest[:3], 10)


def _header_fields(reader: BufferedReader) -> dict[bytes, bytes]:
    fields: dict[bytes, bytes] = {}
    for _ in range(MAX_HEADERS):
        line = _line(reader)
        if line in (b"\r\n", b"\n"):
            return fields
        name, _, value = line.partition(b":")
        fields[name.strip().lower()] = value.strip()
    raise Disconnected("too many header fields")


def _chunked(reader: BufferedReader) -> bytes:
    parts = []
    while size := _number(_line(reader).split(b";", 1)[0].strip(), 16):
        parts.append(_exactly(reader, size))
        _line(reader)  # the chunk's CRLF
    while _line(reader) not in (b"\r\n", b"\n"):  # trailer fields
        pass
    return b"".join(parts)


def _exactly(reader: BufferedReader, size: int) -> bytes:
    data = reader.read(size)
    if len(data) != size:
        raise Disconnected("the connection closed in the middle of an answer")
    return data


def _number(text: bytes, base: int) -> int:
    try:
        value = int(text, base)
    except ValueError:
        raise Disconnected(f"not an HTTP answer: {text[:40]!r}") from None
    if value < 0:
        raise Disconnected(f"not an HTTP answer: {text[:40]!r}")
    return value

"""A stand-in for a Nomad agent's HTTP port that answers by a script, for tests of what reaches the wire: each
request it reads is recorded and met by the next step (an answer, a close without one, or silence)."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from dataclasses import dataclass
from typing import BinaryIO, Literal


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: str = "{}"
    then_close: bool = False  # close the connection right after answering (it was kept alive for the client)


Step = Answer | Literal["close", "hang"]  # close the connection without answering, or never answer


@dataclass(frozen=True)
class Seen:
    method: str
    target: str
    headers: dict[str, str]  # names lowercased
    body: bytes


class FakeNomad:
    """Listens on a loopback port (TLS with `tls`); `steps` are used in order, then every request gets 200 `{}`."""

    def __init__(self, *steps: Step, tls: ssl.SSLContext | None = None) -> None:
        self._steps = list(steps)
        self._tls = tls
        self.seen: list[Seen] = []
        self.connections = 0
        self.closed = threading.Semaphore(0)  # released when a client closes its end of a connection
        self.hung_up = threading.Semaphore(0)  # released when this server closed a connection after an answer
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sockets: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.address = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        threading.Thread(target=self._accept, daemon=True).start()

    def __enter__(self) -> FakeNomad:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self._sockets.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            if self._tls is not None:
                conn = self._tls.wrap_socket(conn, server_side=True)
            with conn, conn.makefile("rb") as reader:
                while (seen := _read(reader)) is not None:
                    with self._lock:
                        self.seen.append(seen)
                        step = self._steps.pop(0) if self._steps else Answer()
                    if step == "hang":
                        self._stop.wait()
                    if not isinstance(step, Answer):
                        return
                    body = step.body.encode()
                    head = f"HTTP/1.1 {step.status} X\r\nContent-Type: application/json\r\nContent-Length: {len(body)}"
                    conn.sendall(f"{head}\r\n\r\n".encode() + body)
                    if step.then_close:
                        reader.close()
                        conn.close()
                        self.hung_up.release()
                        return
                self.closed.release()
        except OSError:
            conn.close()  # a refused handshake, or the client went away


def _read(reader: BinaryIO) -> Seen | None:
    """One request off the connection; None at its end."""
    line = reader.readline()
    if not line:
        return None
    method, target, _ = line.decode().split(" ", 2)
    headers: dict[str, str] = {}
    while (field := reader.readline().decode().strip()) != "":
        name, value = field.split(":", 1)
        headers[name.strip().lower()] = value.strip()
    body = reader.read(int(headers.get("content-length", 0)))
    return Seen(method, target, headers, body)


def closed_port() -> int:
    """A loopback port nothing listens on (it was just free)."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        return int(sock.getsockname()[1])

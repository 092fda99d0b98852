"""A per-replica TCP gate in front of every ZooKeeper node, so the fault suite can cut one replica off.

Each replica connects to ZooKeeper through its own gate (one loopback port per ZooKeeper node). `cut()` turns the
gate into a black hole: bytes in both directions are read and dropped, new connections are accepted and then
ignored -- from the replica's side the network went silent, as in a partition where packets are lost (no reset,
no error, only timeouts). `heal()` closes every connection that lived through the cut, so the client reconnects
on a clean stream. The other replicas and the ensemble itself keep talking to each other.

The fault suite partitions through network namespaces where the machine allows it (integration/chaos_netns.py);
the gate is the fallback there (`--network gate`). Everything on loopback shares one address, so without
namespaces a packet filter cannot single one replica out.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass, field


@dataclass
class _Pipe:
    client: socket.socket
    upstream: socket.socket | None
    cut_during: bool = False

    def close(self) -> None:
        """Shut down before closing: another thread is blocked reading these sockets, and a bare close() there sends
        no FIN, so the peer would learn of it only at its next request."""
        for sock in (self.client, self.upstream):
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    sock.close()


@dataclass
class ZkGate:
    """Listens on one port per upstream address and bind address; `connect_string` (on the first bind address) is
    what a replica uses. Replicas in network namespaces reach it on their host-side addresses (`address_on`)."""

    upstreams: list[tuple[str, int]]
    binds: tuple[str, ...] = ("127.0.0.1",)
    _listeners: list[socket.socket] = field(default_factory=list)
    _pipes: list[_Pipe] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _cut: threading.Event = field(default_factory=threading.Event)
    _closed: threading.Event = field(default_factory=threading.Event)

    def start(self) -> ZkGate:
        for upstream in self.upstreams:
            for host in self.binds:
                listener = socket.create_server((host, 0))
                self._listeners.append(listener)
                threading.Thread(target=self._accept, args=(listener, upstream), daemon=True).start()
        return self

    @property
    def connect_string(self) -> str:
        return self.address_on(self.binds[0])

    def address_on(self, host: str) -> str:
        """`host:port,...`: one port per upstream, those listening on `host`."""
        return ",".join(f"{host}:{s.getsockname()[1]}" for s in self._listeners if s.getsockname()[0] == host)

    @property
    def is_cut(self) -> bool:
        return self._cut.is_set()

    def cut(self) -> None:
        with self._lock:
            self._cut.set()
            for pipe in self._pipes:
                pipe.cut_during = True

    def heal(self) -> None:
        with self._lock:
            self._cut.clear()
            stale = [p for p in self._pipes if p.cut_during]
            self._pipes = [p for p in self._pipes if not p.cut_during]
        for pipe in stale:
            pipe.close()

    def close(self) -> None:
        self._closed.set()
        for listener in self._listeners:
            with contextlib.suppress(OSError):
                listener.close()
        with self._lock:
            pipes, self._pipes = self._pipes, []
        for pipe in pipes:
            pipe.close()

    def _accept(self, listener: socket.socket, upstream: tuple[str, int]) -> None:
        while not self._closed.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=self._open, args=(client, upstream), daemon=True).start()

    def _open(self, client: socket.socket, upstream: tuple[str, int]) -> None:
        """While cut, a new connection is accepted and left silent (the SYN got through, nothing else does)."""
        pipe = _Pipe(client, None, cut_during=self.is_cut)
        if not pipe.cut_during:
            try:
                pipe.upstream = socket.create_connection(upstream, timeout=2.0)
                pipe.upstream.settimeout(None)
            except OSError:
                client.close()  # the node is down: the replica sees a refused connection, as it would directly
                return
        with self._lock:
            self._pipes.append(pipe)
        if pipe.upstream is not None:
            threading.Thread(target=self._pump, args=(pipe.upstream, pipe.client, pipe, False), daemon=True).start()
        self._pump(pipe.client, pipe.upstream, pipe, True)

    def _pump(self, source: socket.socket, sink: socket.socket | None, pipe: _Pipe, from_client: bool) -> None:
        try:
            while data := source.recv(65536):
                if sink is not None and not pipe.cut_during:
                    sink.sendall(data)
        except OSError:
            pass
        pipe.close()

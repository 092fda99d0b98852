"""Read many znodes in one request: ZooKeeper's multiRead (opcode 22, ZooKeeper 3.6+), which kazoo lacks.

One pipelined get per znode costs a round through kazoo's connection thread each (~0.4 ms here), so a new leader
reading 10k job states spent seconds in it. A multiRead carries a chunk of getData or getChildren operations, each
framed as in a multi (its body is kazoo's `GetData` or `GetChildren` without a watch); a missing znode answers with
an error entry for that path alone, not for the whole request.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kazoo.exceptions import NoNodeError
from kazoo.protocol.states import ZnodeStat

from cronframework.store.zookeeper.wire.framing import (
    GET_CHILDREN,
    GET_DATA,
    INT,
    MULTI_READ,
    chroot_prefix,
    header,
    submit_all,
)


def encode_get(path: str) -> bytes:
    """One getData entry: its header, the path, and no watch."""
    return _entries(_GET, "", [path])


def encode_list(path: str) -> bytes:
    """One getChildren entry: its header, the path, and no watch."""
    return _entries(_LIST, "", [path])


_GET, _LIST = header(GET_DATA), header(GET_CHILDREN)


def _entries(head: bytes, prefix: str, paths: Sequence[str]) -> bytes:
    """The entries of `paths` (each under `prefix`) in one buffer: a status page's 20,000 entries built one by one,
    each of a few concatenations, cost more than the round trip that carries them."""
    out = bytearray()
    pack = INT.pack
    for path in paths:
        raw = (prefix + path).encode()
        out += head
        out += pack(len(raw))
        out += raw
        out += b"\x00"
    return bytes(out)


def read_many_async(client: Any, paths: Sequence[str], chunk: int = 1000) -> list[Any]:
    """Issue multiReads for `paths` (pipelined, `chunk` paths each); returns the async results, in order."""
    return _many(client, paths, chunk, _GET)


def list_many_async(client: Any, paths: Sequence[str], chunk: int = 1000) -> list[Any]:
    """Issue multiReads listing the children of `paths` (pipelined, `chunk` paths each); the async results."""
    return _many(client, paths, chunk, _LIST)


def _many(client: Any, paths: Sequence[str], chunk: int, head: bytes) -> list[Any]:
    prefix = chroot_prefix(client)
    chunks = [[_entries(head, prefix, paths[start : start + chunk])] for start in range(0, len(paths), chunk)]
    return submit_all(client, MULTI_READ, chunks)


def flatten(chunks: Sequence[list[Any]]) -> list[tuple[bytes, ZnodeStat] | None]:
    """Chunk results in order; a missing znode becomes None, any other per-path error is raised."""
    return _flatten(chunks)


def flatten_lists(chunks: Sequence[list[Any]]) -> list[list[str] | None]:
    """`flatten` for listings: each path's children in order, None for a missing znode."""
    return _flatten(chunks)


def _flatten(chunks: Sequence[list[Any]]) -> list[Any]:
    out: list[Any] = []
    for chunk in chunks:
        for item in chunk:
            if isinstance(item, NoNodeError):
                out.append(None)
            elif isinstance(item, Exception):
                raise item
            else:
                out.append(item)
    return out

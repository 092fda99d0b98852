"""What ZooKeeper's multi (opcode 14) and multiRead (opcode 22) requests share: the jute framing, the one reply
parser, and handing a request to kazoo.

A request is a run of entries, each a header (type, done, err) and its op's body, closed by a header with `done`
set. The reply has the same shape: per op, a header of the op's type and its result, or a header of type -1 and
an error code for an op that failed (a failed multi answers every op with one: 0, rolled back, before the
culprit; -2, not tried, after it). kazoo's own request objects are used nowhere: `Transaction` serializes its ops
afresh at each send, and there is no multiRead at all. What is borrowed from kazoo -- its request protocol
(`type`, `serialize()`, `deserialize(data, offset)`, queued by the private `KazooClient._call`) and its exception
per error code -- is pinned by tests/test_zk_wire.py and the kazoo range in pyproject.toml.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

from kazoo.exceptions import EXCEPTIONS, ConnectionClosedError, MarshallingError
from kazoo.protocol.states import ZnodeStat

INT = struct.Struct("!i")
HEADER = struct.Struct("!iBi")  # type, done, err
STAT = struct.Struct("!qqqqiiiqiiq")
END = HEADER.pack(-1, 1, -1)

ERROR, CREATE, DELETE, GET_DATA, SET_DATA, GET_CHILDREN, CHECK = -1, 1, 2, 4, 5, 8, 13
MULTI, MULTI_READ = 14, 22

# per op, in order: True for a write that applied (its path or stat is skipped unread: nobody reads them), the data
# and stat of a read, the names of a listing, or the kazoo exception of an op that failed
Result = bool | tuple[bytes, ZnodeStat] | list[str] | Exception


def header(kind: int) -> bytes:
    return HEADER.pack(kind, 0, -1)


def string(text: str) -> bytes:
    """A jute string as kazoo writes it: an empty one goes as null (length -1), e.g. the `auth` scheme's id."""
    if not text:
        return INT.pack(-1)
    raw = text.encode()
    return INT.pack(len(raw)) + raw


def parse_reply(data: bytes, offset: int) -> list[Result]:
    """The results of a multi or multiRead reply that starts at `offset`, one per op."""
    results: list[Result] = []
    while True:
        kind, done, _err = HEADER.unpack_from(data, offset)
        offset += HEADER.size
        if done:
            return results
        if kind == ERROR:
            results.append(EXCEPTIONS[INT.unpack_from(data, offset)[0]]())
            offset += INT.size
        elif kind == GET_DATA:
            length = max(INT.unpack_from(data, offset)[0], 0)  # -1: the znode holds null, read as b""
            offset += INT.size
            body = bytes(data[offset : offset + length])
            offset += length
            results.append((body, ZnodeStat._make(STAT.unpack_from(data, offset))))
            offset += STAT.size
        elif kind == GET_CHILDREN:
            names, offset = _names(data, offset)
            results.append(names)
        elif kind == CREATE:  # the created path
            offset += INT.size + max(INT.unpack_from(data, offset)[0], 0)
            results.append(True)
        elif kind == SET_DATA:  # the new stat
            offset += STAT.size
            results.append(True)
        elif kind in (DELETE, CHECK):  # no body
            results.append(True)
        else:
            raise MarshallingError(f"unexpected entry of type {kind} in a multi reply")


def _names(data: bytes, offset: int) -> tuple[list[str], int]:
    """A jute vector of strings (a getChildren answer) at `offset`, and the offset after it."""
    count = INT.unpack_from(data, offset)[0]
    offset += INT.size
    names = []
    for _ in range(max(count, 0)):
        length = INT.unpack_from(data, offset)[0]
        offset += INT.size
        names.append(bytes(data[offset : offset + length]).decode())
        offset += length
    return names, offset


class Multi:
    """A kazoo request: kazoo frames it by `type` and hands the reply to `deserialize`."""

    deserialize = staticmethod(parse_reply)

    def __init__(self, opcode: int, encoded: list[bytes]) -> None:
        self.type = opcode
        self.encoded = encoded

    def serialize(self) -> bytes:
        return b"".join(self.encoded) + END


def submit(client: Any, opcode: int, encoded: list[bytes]) -> Any:
    """Queue one request of already encoded entries on kazoo's connection; its async result (a list of Result)."""
    result = client.handler.async_result()
    client._call(Multi(opcode, encoded), result)
    return result


def submit_all(client: Any, opcode: int, chunks: Sequence[list[bytes]]) -> list[Any]:
    """`submit` for many requests, waking kazoo's connection once for all but the first (one byte per request, as
    its `_call` sends each). Each wake hands the GIL to the connection thread, busy with the replies already coming
    back; taking it back cost the caller up to a switch interval (5 ms) per request: a tenth of a second for a status
    page's 20 multiReads on a loaded machine."""
    requests = [Multi(opcode, encoded) for encoded in chunks]
    results = [client.handler.async_result() for _ in requests]
    if not requests or client._call(requests[0], results[0]) is False:  # closed, expired, refused: each fails alike
        for request, result in zip(requests[1:], results[1:], strict=True):
            client._call(request, result)
        return results
    if len(requests) > 1:
        client._queue.extend(zip(requests[1:], results[1:], strict=True))
        try:
            client._connection._write_sock.send(b"\0" * (len(requests) - 1))
        except (AttributeError, OSError):  # closed meanwhile (no socket, or a shut one), as `_call` guards
            for result in results[1:]:
                result.set_exception(ConnectionClosedError("Connection has been closed"))
    return results


def chroot_prefix(client: Any) -> str:
    """What the client's chroot puts before an absolute path (kazoo's per-path normalization is too slow here)."""
    return str(client.chroot or "").rstrip("/")

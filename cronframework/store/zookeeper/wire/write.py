"""Multi-op write transactions (opcode 14) in their wire form, encoded by us rather than by kazoo.

kazoo's `Transaction` serializes every op afresh when it is sent (the ACL list walked, a struct packed per field,
a bytearray per op) and parses every reply into paths and stats nobody reads: for a 10k-launch herd that was a
third of the leader's CPU between the herd's second and its last submit. Here each op is encoded once, as bytes,
when its batch is built -- so a chunk's size is the exact size on the wire -- and a reply is read only for what
it says about success: `True` per applied op, the kazoo exception per failed one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from kazoo.security import ACL

from cronframework.store.zookeeper.wire.framing import END, ERROR, HEADER, INT, STAT, read_error, read_header

_CREATE, _DELETE, _SET_DATA, _CHECK = 1, 2, 5, 13
_OPCODES = {"create": _CREATE, "set": _SET_DATA, "delete": _DELETE, "check": _CHECK}


class Op(NamedTuple):
    kind: str  # "create" | "set" | "delete" | "check"
    path: str
    data: bytes = b""
    version: int = -1


def acl_tail(acl: Sequence[ACL]) -> bytes:
    """What follows a create's data: the ACL vector, then the flags (0: persistent, not sequential)."""
    out = bytearray(INT.pack(len(acl)))
    for entry in acl:
        out += INT.pack(entry.perms) + _string(entry.id.scheme) + _string(entry.id.id)
    return bytes(out + INT.pack(0))


def encode(op: Op, path: str, tail: bytes) -> bytes:
    """One op with its multi header, as `Transaction.serialize` would write it; `tail` is `acl_tail(acl)`."""
    kind = _OPCODES[op.kind]
    head = HEADER.pack(kind, 0, -1) + _string(path)
    if kind == _CREATE:
        return head + INT.pack(len(op.data)) + op.data + tail
    if kind == _SET_DATA:
        return head + INT.pack(len(op.data)) + op.data + INT.pack(op.version)
    return head + INT.pack(op.version)


def _string(text: str) -> bytes:
    """A jute string as kazoo writes it: an empty one goes as null (length -1), e.g. the `auth` scheme's id."""
    if not text:
        return INT.pack(-1)
    raw = text.encode()
    return INT.pack(len(raw)) + raw


class MultiWrite:
    """A kazoo request: kazoo frames it by `type` (a transaction's) and hands the reply to `deserialize`."""

    type = 14

    def __init__(self, encoded: list[bytes]) -> None:
        self.encoded = encoded

    def serialize(self) -> bytes:
        return b"".join(self.encoded) + END

    @classmethod
    def deserialize(cls, data: bytes, offset: int) -> list[bool | Exception]:
        """Per op, in order: True when it applied, else the error (RolledBackError for the innocent ones)."""
        results: list[bool | Exception] = []
        while True:
            kind, done, offset = read_header(data, offset)
            if done:
                return results
            if kind == ERROR:
                error, offset = read_error(data, offset)
                results.append(error)
            elif kind == _CREATE:
                offset += INT.size + max(INT.unpack_from(data, offset)[0], 0)
                results.append(True)
            elif kind == _SET_DATA:
                offset += STAT.size
                results.append(True)
            else:  # delete, check: no body
                results.append(True)

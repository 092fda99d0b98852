"""Multi-op write transactions (opcode 14): each op encoded once, as bytes, when its batch is built.

kazoo's `Transaction` serializes every op afresh when it is sent (the ACL list walked, a struct packed per field,
a bytearray per op) and parses every reply into paths and stats nobody reads: for a 10k-launch herd that was a
third of the leader's CPU between the herd's second and its last submit. Encoding once also makes a chunk's size
the exact size on the wire. The bytes are those `Transaction.serialize` writes (tests/test_zk_wire.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from kazoo.security import ACL

from cronframework.store.zookeeper.wire.framing import (
    CHECK,
    CREATE,
    DELETE,
    INT,
    MULTI,
    SET_DATA,
    header,
    string,
    submit,
)

_OPCODES = {"create": CREATE, "set": SET_DATA, "delete": DELETE, "check": CHECK}


class Op(NamedTuple):
    kind: str  # "create" | "set" | "delete" | "check"
    path: str
    data: bytes = b""
    version: int = -1


def acl_tail(acl: Sequence[ACL]) -> bytes:
    """What follows a create's data: the ACL vector, then the flags (0: persistent, not sequential)."""
    out = bytearray(INT.pack(len(acl)))
    for entry in acl:
        out += INT.pack(entry.perms) + string(entry.id.scheme) + string(entry.id.id)
    return bytes(out + INT.pack(0))


def encode(op: Op, path: str, tail: bytes) -> bytes:
    """One op with its entry header; `path` is `op.path` under the client's chroot, `tail` is `acl_tail(acl)`."""
    kind = _OPCODES[op.kind]
    head = header(kind) + string(path)
    if kind == CREATE:
        return head + INT.pack(len(op.data)) + op.data + tail
    if kind == SET_DATA:
        return head + INT.pack(len(op.data)) + op.data + INT.pack(op.version)
    return head + INT.pack(op.version)


def send_transaction(client: Any, encoded: list[bytes]) -> Any:
    """One transaction of encoded ops on the wire; its async result, per op True or the error (RolledBackError
    for the ops that did not fail themselves)."""
    return submit(client, MULTI, encoded)

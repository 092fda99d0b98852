"""The framing ZooKeeper's multi requests share (multiRead, opcode 22; multi-op writes, opcode 14): each entry is a
header (type, done, err), the last one has `done` set; an entry of type -1 carries an error code instead of a body."""

from __future__ import annotations

import struct

from kazoo.exceptions import EXCEPTIONS

INT = struct.Struct("!i")
HEADER = struct.Struct("!iBi")  # type, done, err
STAT = struct.Struct("!qqqqiiiqiiq")
ERROR = -1
END = HEADER.pack(-1, 1, -1)


def read_header(data: bytes, offset: int) -> tuple[int, bool, int]:
    """(entry type, whether it is the closing one, offset of its body)."""
    kind, done, _err = HEADER.unpack_from(data, offset)
    return kind, bool(done), offset + HEADER.size


def read_error(data: bytes, offset: int) -> tuple[Exception, int]:
    """The kazoo exception an error entry names, and the offset after it."""
    return EXCEPTIONS[INT.unpack_from(data, offset)[0]](), offset + INT.size

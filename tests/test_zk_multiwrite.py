"""The multi-op wire form: byte for byte what kazoo's Transaction writes, and replies read as kazoo reads them.

The real round trip (fenced writes, conflicts, partial batches) is tested against ZooKeeper in
integration/test_zookeeper_store.py; here only the encoding, which a wrong byte would break silently."""

from __future__ import annotations

import struct

import pytest
from kazoo.exceptions import NodeExistsError, RolledBackError, RuntimeInconsistency
from kazoo.protocol.serialization import CheckVersion, Create, Delete, SetData, Transaction
from kazoo.security import CREATOR_ALL_ACL, OPEN_ACL_UNSAFE, READ_ACL_UNSAFE, make_acl, make_digest_acl

from cronframework.store.zookeeper.wire.write import MultiWrite, Op, acl_tail, encode

DIGEST = [make_digest_acl("cron", "s3cret", all=True), make_digest_acl("viewer", "pw", read=True)]


ACLS = {
    "open": OPEN_ACL_UNSAFE,
    "digest": DIGEST,
    "creator": CREATOR_ALL_ACL,  # the `auth` scheme's id is empty: kazoo writes an empty string as null (-1)
    "read-only": READ_ACL_UNSAFE,
    "ip": [make_acl("ip", "10.0.0.0/8", read=True, write=True)],
    "none": [],
}


@pytest.mark.parametrize("acl", ACLS.values(), ids=ACLS.keys())
def test_encoding_matches_kazoo_transaction(acl: list) -> None:
    ops = [
        Op("check", "/cf/election/x__n__0000000007"),
        Op("create", "/cf/launches/job/2026112607/job-20261126t070005z", b'{"state":"begun"}'),
        Op("create", "/cf/open/job-20261126t070005z"),
        Op("set", "/cf/jobs/job", b'{"next":null}', version=3),
        Op("set", "/cf/jobs/other", b"", version=-1),
        Op("delete", "/cf/open/job-20261126t070004z", version=-1),
        Op("delete", "/cf/launches/job/2026112606/job-20261126t060000z", version=12),
        Op("check", "/cf/specs/job", version=4),
        Op("create", "/cf/launches/jöb-ü", b"\x00\xff"),
    ]
    kazoo = [
        CheckVersion("/cf/election/x__n__0000000007", -1),
        Create("/cf/launches/job/2026112607/job-20261126t070005z", b'{"state":"begun"}', acl, 0),
        Create("/cf/open/job-20261126t070005z", b"", acl, 0),
        SetData("/cf/jobs/job", b'{"next":null}', 3),
        SetData("/cf/jobs/other", b"", -1),
        Delete("/cf/open/job-20261126t070004z", -1),
        Delete("/cf/launches/job/2026112606/job-20261126t060000z", 12),
        CheckVersion("/cf/specs/job", 4),
        Create("/cf/launches/jöb-ü", b"\x00\xff", acl, 0),
    ]
    tail = acl_tail(acl)
    ours = MultiWrite([encode(op, op.path, tail) for op in ops])
    assert ours.type == Transaction.type
    assert ours.serialize() == bytes(Transaction(kazoo).serialize())


def _reply(*entries: tuple[int, bytes]) -> bytes:
    header = struct.Struct("!iBi")
    out = b"".join(header.pack(kind, 0, -1) + body for kind, body in entries)
    return b"PAD" + out + header.pack(-1, 1, -1)


def test_reply_of_an_applied_transaction() -> None:
    path = b"/cf/open/job-20261126t070005z"
    stat = struct.pack("!qqqqiiiqiiq", 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)
    reply = _reply((13, b""), (1, struct.pack("!i", len(path)) + path), (5, stat), (2, b""))
    assert MultiWrite.deserialize(reply, 3) == [True, True, True, True]
    assert len(Transaction.deserialize(reply, 3)) == 4  # kazoo sees the same four results


def test_reply_of_a_failed_transaction_names_each_error() -> None:
    # ZooKeeper answers a failed multi with an error entry per op: 0 (rolled back) before the culprit, its own
    # code, then -2 (not tried) after it
    reply = _reply((-1, struct.pack("!i", 0)), (-1, struct.pack("!i", -110)), (-1, struct.pack("!i", -2)))
    ours = MultiWrite.deserialize(reply, 3)
    theirs = Transaction.deserialize(reply, 3)
    assert [type(r) for r in ours] == [type(r) for r in theirs]
    assert isinstance(ours[0], RolledBackError) and isinstance(ours[1], NodeExistsError)
    assert isinstance(ours[2], RuntimeInconsistency)

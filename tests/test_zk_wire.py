"""The ZooKeeper wire package against kazoo: requests byte for byte as kazoo's own serializers write them and as
kazoo's connection puts them on the socket, replies read as kazoo reads the same bytes. A change in kazoo's framing
fails here (pyproject.toml pins kazoo to the versions this passes on).

kazoo has no multiRead: its request is pinned to ZooKeeper's jute layout (MultiOperationRecord of GetDataRequest
entries) spelled out below, whose getData body is kazoo's `GetData`, and to a real server in
integration/test_zk_multiread.py. The round trips (fenced writes, conflicts, partial batches) are tested against
ZooKeeper in integration/test_zookeeper_store.py."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import (
    BadVersionError,
    ConnectionClosedError,
    MarshallingError,
    NoAuthError,
    NodeExistsError,
    NoNodeError,
    RolledBackError,
    RuntimeInconsistency,
)
from kazoo.protocol.serialization import (
    CheckVersion,
    Create,
    Delete,
    GetChildren,
    GetData,
    MultiHeader,
    ReplyHeader,
    SetData,
    Transaction,
)
from kazoo.protocol.states import ZnodeStat
from kazoo.security import CREATOR_ALL_ACL, OPEN_ACL_UNSAFE, READ_ACL_UNSAFE, make_acl, make_digest_acl

from cronframework.store.zookeeper.wire import Op, acl_tail, encode, list_many_async, read_many_async, send_transaction
from cronframework.store.zookeeper.wire.framing import Multi, parse_reply
from cronframework.store.zookeeper.wire.read import encode_get, encode_list

ACLS = {
    "open": OPEN_ACL_UNSAFE,
    "digest": [make_digest_acl("cron", "s3cret", all=True), make_digest_acl("viewer", "pw", read=True)],
    "creator": CREATOR_ALL_ACL,  # the `auth` scheme's id is empty: kazoo writes an empty string as null (-1)
    "read-only": READ_ACL_UNSAFE,
    "ip": [make_acl("ip", "10.0.0.0/8", read=True, write=True)],
    "none": [],
}
LAUNCH = "/cf/launches/job/2026112607/job-20261126t070005z"
# each op kind, as ours and as kazoo's request (`acl` filled in per test)
OPS: dict[str, tuple[Op, Callable[[list[Any]], Any]]] = {
    "check": (
        Op("check", "/cf/election/x__n__0000000007"),
        lambda _: CheckVersion("/cf/election/x__n__0000000007", -1),
    ),
    "check-version": (Op("check", "/cf/specs/job", version=4), lambda _: CheckVersion("/cf/specs/job", 4)),
    "create": (Op("create", LAUNCH, b'{"state":"begun"}'), lambda acl: Create(LAUNCH, b'{"state":"begun"}', acl, 0)),
    "create-empty": (Op("create", "/cf/open/a+1"), lambda acl: Create("/cf/open/a+1", b"", acl, 0)),
    "create-unicode": (Op("create", "/cf/jöb-ü", b"\x00\xff"), lambda acl: Create("/cf/jöb-ü", b"\x00\xff", acl, 0)),
    "set": (
        Op("set", "/cf/jobs/job", b'{"next":null}', version=3),
        lambda _: SetData("/cf/jobs/job", b'{"next":null}', 3),
    ),
    "set-any": (Op("set", "/cf/jobs/other", b""), lambda _: SetData("/cf/jobs/other", b"", -1)),
    "delete": (Op("delete", "/cf/open/a+1"), lambda _: Delete("/cf/open/a+1", -1)),
    "delete-version": (Op("delete", LAUNCH, version=12), lambda _: Delete(LAUNCH, 12)),
}
STAT = struct.pack("!qqqqiiiqiiq", 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)


def ours(ops: list[Op], acl: list[Any]) -> Multi:
    return Multi(Transaction.type, [encode(op, op.path, acl_tail(acl)) for op in ops])


@pytest.mark.parametrize("acl", ACLS.values(), ids=ACLS.keys())
@pytest.mark.parametrize("kind", OPS.keys())
def test_each_op_is_encoded_as_kazoo_s_transaction_encodes_it(kind: str, acl: list[Any]) -> None:
    op, theirs = OPS[kind]
    assert ours([op], acl).serialize() == bytes(Transaction([theirs(acl)]).serialize())


def test_a_transaction_of_every_kind_is_kazoo_s_byte_for_byte() -> None:
    acl = ACLS["digest"]
    assert ours([op for op, _ in OPS.values()], acl).serialize() == bytes(
        Transaction([theirs(acl) for _, theirs in OPS.values()]).serialize()
    )


def test_an_unknown_op_kind_is_refused() -> None:
    with pytest.raises(KeyError):
        encode(Op("sync", "/cf"), "/cf", acl_tail([]))


def test_a_multi_read_is_zookeeper_s_jute_layout() -> None:
    """MultiOperationRecord: per op a MultiHeader(type 4 = getData, done false, err -1) and a GetDataRequest(path,
    watch), then MultiHeader(-1, true, -1); written out by hand for one path, then per entry with kazoo's parts."""
    assert Multi(22, [encode_get("/a")]).serialize() == bytes.fromhex(
        "0000000400ffffffff000000022f6100" + "ffffffff01ffffffff"
    )
    paths = ["/cf/jobs/a", "/cf/jobs/jöb", LAUNCH]
    kazoo = b"".join(
        bytes(MultiHeader(GetData.type, False, -1).serialize() + GetData(p, None).serialize()) for p in paths
    )
    assert Multi(22, [encode_get(p) for p in paths]).serialize() == kazoo + bytes(MultiHeader(-1, True, -1).serialize())


def test_a_multi_read_listing_is_kazoo_s_get_children_per_entry() -> None:
    """The same layout with type 8 (getChildren) and a GetChildrenRequest(path, watch) per entry."""
    paths = ["/cf/launches/a", "/cf/launches/jöb/2026112607"]
    kazoo = b"".join(
        bytes(MultiHeader(GetChildren.type, False, -1).serialize() + GetChildren(p, None).serialize()) for p in paths
    )
    assert Multi(22, [encode_list(p) for p in paths]).serialize() == kazoo + bytes(
        MultiHeader(-1, True, -1).serialize()
    )


class Sent:
    """An unstarted KazooClient whose requests are captured where kazoo's connection thread would send them."""

    def __init__(self, hosts: str = "127.0.0.1:1") -> None:
        self.client = KazooClient(hosts=hosts)
        self.calls: list[tuple[Any, Any]] = []
        self.client._call = lambda request, result: self.calls.append((request, result))
        self.woken = bytearray()  # the bytes that wake kazoo's connection thread: one per request queued
        self.client._connection._write_sock = type("Wake", (), {"send": lambda _, data: self.woken.extend(data)})()
        self.written: list[bytes] = []
        self.client._connection._write = lambda msg, _timeout: self.written.append(bytes(msg))

    @property
    def requests(self) -> list[Any]:
        """Every request handed to kazoo: through its `_call`, or queued for its connection thread directly."""
        return [request for request, _ in [*self.calls, *self.client._queue]]

    def on_socket(self, request: Any, xid: int = 7) -> bytes:
        """What kazoo's connection writes to the socket for `request`."""
        self.client._connection._submit(request, 10, xid)
        return self.written.pop()

    def answer(self, request: Any, reply: bytes, *, err: int = 0, xid: int = 7) -> Any:
        """What kazoo's connection hands the caller for `reply` (the body after the reply header)."""
        result = self.client.handler.async_result()
        self.client._pending.append((request, result, xid))
        header = ReplyHeader(xid, 1, err)
        self.client._connection._read_response(header, b"PAD" + reply, 3)
        return result.get_nowait()


def test_kazoo_s_connection_puts_our_transaction_on_the_socket_as_its_own() -> None:
    sent, acl = Sent(), ACLS["open"]
    send_transaction(sent.client, [encode(op, op.path, acl_tail(acl)) for op, _ in OPS.values()])
    [(request, _result)] = sent.calls
    assert sent.on_socket(request) == sent.on_socket(Transaction([theirs(acl) for _, theirs in OPS.values()]))


@pytest.mark.parametrize(("issue", "entry"), [(read_many_async, encode_get), (list_many_async, encode_list)])
def test_a_multi_read_goes_as_opcode_22_under_the_chroot_in_chunks(
    issue: Callable[..., Any], entry: Callable[[str], bytes]
) -> None:
    """Gets and listings alike; kazoo's connection is woken once for the chunks after the first (its `_call` woke
    it for the first), with a byte for each, as `_call` would have sent them one by one."""
    sent = Sent("127.0.0.1:1/base/")
    issue(sent.client, ["/cf/a", "/cf/b", "/cf/c", "/cf/d", "/cf/e"], chunk=2)
    assert len(sent.calls) == 1 and bytes(sent.woken) == b"\0\0"
    first, second, third = sent.requests
    assert first.serialize() == Multi(22, [entry("/base/cf/a"), entry("/base/cf/b")]).serialize()
    assert second.serialize() == Multi(22, [entry("/base/cf/c"), entry("/base/cf/d")]).serialize()
    assert third.serialize() == Multi(22, [entry("/base/cf/e")]).serialize()
    framed = sent.on_socket(first, xid=9)
    body = first.serialize()
    assert framed == struct.pack("!iii", 8 + len(body), 9, 22) + body


def entries(*items: tuple[int, bytes]) -> bytes:
    """A reply body: per item its MultiHeader (err 0, or the code of an error entry) and body, then the closing one."""
    out = b""
    for kind, body in items:
        err = struct.unpack("!i", body)[0] if kind == -1 else 0
        out += bytes(MultiHeader(kind, False, err).serialize()) + body
    return out + bytes(MultiHeader(-1, True, -1).serialize())


def error(code: int) -> tuple[int, bytes]:
    return -1, struct.pack("!i", code)


def kinds(results: list[Any]) -> list[Any]:
    """Each result as a comparable value: an error's type, else the result itself."""
    return [type(r) if isinstance(r, Exception) else r for r in results]


def test_an_applied_transaction_s_reply_is_read_as_kazoo_reads_it() -> None:
    path = b"/base/cf/open/job-20261126t070005z"
    reply = entries((13, b""), (1, struct.pack("!i", len(path)) + path), (5, STAT), (2, b""))
    sent = Sent("127.0.0.1:1/base")
    theirs = sent.answer(Transaction([]), reply)
    assert theirs == [True, "/cf/open/job-20261126t070005z", ZnodeStat._make(struct.unpack("!qqqqiiiqiiq", STAT)), True]
    assert sent.answer(Multi(14, []), reply) == [True] * len(theirs)  # applied: the path and the stat go unread


@pytest.mark.parametrize(
    ("culprit", "expected"),
    [(-110, NodeExistsError), (-101, NoNodeError), (-103, BadVersionError), (-102, NoAuthError)],
)
def test_a_failed_transaction_s_reply_names_each_error_as_kazoo_does(culprit: int, expected: type) -> None:
    """ZooKeeper answers a failed multi with an error entry per op: 0 (rolled back) before the culprit, its own
    code, then -2 (not tried) after it."""
    reply = entries(error(0), error(culprit), error(-2))
    sent = Sent()
    got = sent.answer(Multi(14, []), reply)
    assert kinds(got) == kinds(sent.answer(Transaction([]), reply))
    assert kinds(got) == [RolledBackError, expected, RuntimeInconsistency]


def test_a_multi_read_reply_is_read_as_kazoo_reads_each_get() -> None:
    """Data, empty data, null data (read as b""), a missing znode and an unreadable one, in order."""
    gets = [
        (4, struct.pack("!i", 5) + b"hello" + STAT),
        (4, struct.pack("!i", 0) + STAT),
        (4, struct.pack("!i", -1) + STAT),
    ]
    reply = entries(gets[0], error(-101), gets[1], error(-102), gets[2])
    results = Sent().answer(Multi(22, []), reply)
    theirs = [GetData.deserialize(body, 0) for _kind, body in gets]
    assert theirs[2][0] is None
    assert results[0] == theirs[0] and results[2] == theirs[1] and results[4] == (b"", theirs[2][1])
    assert kinds([results[1], results[3]]) == [NoNodeError, NoAuthError]


def test_a_multi_read_listing_reply_is_read_as_kazoo_reads_each_get_children() -> None:
    """Several names (one not ASCII), none, and a missing znode, in order; what follows a listing stays aligned."""
    lists = [["2026112606", "jöb-20261126t070005z"], []]
    bodies = [
        struct.pack("!i", len(n)) + b"".join(struct.pack("!i", len(x.encode())) + x.encode() for x in n) for n in lists
    ]
    reply = entries((8, bodies[0]), error(-101), (8, bodies[1]), (4, struct.pack("!i", 1) + b"x" + STAT))
    results = Sent().answer(Multi(22, []), reply)
    assert results[0] == GetChildren.deserialize(bodies[0], 0) == lists[0] and results[2] == []
    assert kinds([results[1]]) == [NoNodeError] and results[3][0] == b"x"


def test_parse_reply_starts_at_the_offset_it_is_given() -> None:
    reply = entries((2, b""), error(-101))
    assert kinds(parse_reply(b"\xff" * 16 + reply, 16)) == [True, NoNodeError]


def test_a_reply_entry_of_an_unknown_type_fails_the_request_not_the_connection() -> None:
    """Unread, its body would misalign every entry after it; kazoo hands the error to the request's caller."""
    reply = entries((3, STAT))  # exists: never asked for
    with pytest.raises(MarshallingError):
        parse_reply(reply, 0)
    with pytest.raises(MarshallingError):
        Sent().answer(Multi(22, []), reply)


def test_many_requests_on_a_closed_client_each_fail_at_once() -> None:
    """None is queued for a connection that is gone: each waiter gets kazoo's error, none waits for its timeout."""
    client = KazooClient(hosts="127.0.0.1:1")  # never started: closed
    pending = read_many_async(client, ["/cf/a", "/cf/b", "/cf/c"], chunk=1)
    assert len(pending) == 3 and not client._queue
    for result in pending:
        with pytest.raises(ConnectionClosedError):
            result.get_nowait()

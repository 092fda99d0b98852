"""ZooKeeper's multi and multiRead requests, encoded by us and parsed by one reply parser (framing.py says why);
the rest of the store uses only what is exported here."""

from cronframework.store.zookeeper.wire.framing import Result, chroot_prefix
from cronframework.store.zookeeper.wire.read import flatten, flatten_lists, list_many_async, read_many_async
from cronframework.store.zookeeper.wire.write import Op, acl_tail, encode, send_transaction

__all__ = [
    "Op",
    "Result",
    "acl_tail",
    "chroot_prefix",
    "encode",
    "flatten",
    "flatten_lists",
    "list_many_async",
    "read_many_async",
    "send_transaction",
]

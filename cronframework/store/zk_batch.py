"""Fenced, chunked, pipelined multi-op transactions: how every leader write reaches ZooKeeper.

Each chunk is one ZooKeeper transaction whose first op checks the leader's own election znode; if that node
is gone (session expired, deposed) the chunk fails as a whole -> LeadershipLost. Large batches (10k launches
due in one second) are split into chunks well under jute.maxbuffer and all chunks are sent before any answer
is awaited, so the batch costs about one round trip plus ZooKeeper's own write time.

Atomicity is per chunk. A group (e.g. one launch: its record, its open-index entry, its job state) never
spans two chunks. When a chunk fails, the groups of the chunks that applied are reported on the raised error
(`applied`): their records exist; the records of every other group do not, so those launches were not begun.
After a StateStoreUnavailable the outcome of in-flight chunks is unknown and the caller must re-read."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import (
    BadVersionError,
    NoAuthError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    RolledBackError,
    RuntimeInconsistency,
)
from kazoo.protocol.serialization import CheckVersion, Create, Delete, SetData
from kazoo.security import ACL, OPEN_ACL_UNSAFE

from cronframework.errors import ConflictError, LeadershipLost, StateStoreError
from cronframework.store.zk_client import gather

MAX_CHUNK_OPS = 1000
# a quarter of jute.maxbuffer: request and response both stay far below the limit
MAX_CHUNK_BYTES = 256 * 1024


@dataclass(frozen=True)
class Op:
    kind: str  # "create" | "set" | "delete" | "check"
    path: str
    data: bytes = b""
    version: int = -1


@dataclass
class Group:
    """Ops that must apply together; `tag` names the group in the `applied` report (e.g. a launch name)."""

    tag: str
    ops: list[Op] = field(default_factory=list)


class PartialBatch(StateStoreError):
    """Mixin data for a failed batch: the tags of the groups whose chunks did apply (possibly none)."""

    applied: tuple[str, ...] = ()


class BatchConflict(ConflictError, PartialBatch):
    pass


class BatchLeadershipLost(LeadershipLost, PartialBatch):
    pass


class BatchFailed(PartialBatch):
    pass


def op_size(op: Op, acl_bytes: int) -> int:
    return len(op.path) + len(op.data) + acl_bytes + 32


def chunked(groups: Sequence[Group], acl_bytes: int, max_ops: int, max_bytes: int) -> list[list[Group]]:
    chunks: list[list[Group]] = [[]]
    ops = size = 0
    for group in groups:
        g_ops, g_size = len(group.ops), sum(op_size(o, acl_bytes) for o in group.ops)
        if chunks[-1] and (ops + g_ops > max_ops or size + g_size > max_bytes):
            chunks.append([])
            ops = size = 0
        chunks[-1].append(group)
        ops, size = ops + g_ops, size + g_size
    return [c for c in chunks if c]


@dataclass
class FencedWriter:
    client: KazooClient
    acl: list[ACL] | None
    timeout: float
    max_ops: int = MAX_CHUNK_OPS
    max_bytes: int = MAX_CHUNK_BYTES

    def commit(self, fence_path: str | None, groups: Sequence[Group], what: str, *, atomic: bool = False) -> None:
        """Apply `groups`, fenced by `fence_path` when given; a failed chunk raises a PartialBatch error
        naming what applied. `atomic` refuses a batch too large for one transaction rather than split it."""
        self.send(fence_path, groups, what, atomic=atomic)()

    def send(
        self, fence_path: str | None, groups: Sequence[Group], what: str, *, atomic: bool = False
    ) -> Callable[[], None]:
        """`commit`, split in two: the transactions leave now, the returned call waits for them and raises."""
        chunks = chunked(groups, self._acl_bytes(), self.max_ops, self.max_bytes) or [[]]
        if atomic and len(chunks) > 1:
            raise StateStoreError(f"{what}: too large for one ZooKeeper transaction; split it into smaller changes")
        pending = [self._transaction(fence_path, chunk).commit_async() for chunk in chunks]

        def wait() -> None:
            results = gather(self.client, what, pending, self.timeout)
            offset = 0 if fence_path is None else 1
            failures = [(chunk, _failure(result, offset)) for chunk, result in zip(chunks, results, strict=True)]
            bad = [err for _, err in failures if err is not None]
            if bad:
                applied = tuple(g.tag for chunk, err in failures if err is None for g in chunk)
                raise _error(what, bad[0], applied, len(bad), len(chunks))

        return wait

    def _transaction(self, fence_path: str | None, chunk: list[Group]) -> Any:
        """Build the chunk's requests directly: kazoo's per-op argument checks and path joining cost more
        than the rest of a 10k-launch batch, and every path here comes from Layout, already normalized."""
        tx = self.client.transaction()
        acl = self.acl or self.client.default_acl or OPEN_ACL_UNSAFE
        # Layout's paths are absolute and normalized, so the chroot is a plain prefix (kazoo's normpath per op
        # was a tenth of a herd's CPU)
        prefix: str = (self.client.chroot or "").rstrip("/")
        requests: list[Any] = []
        if fence_path is not None:
            # the election znode is never modified: its existence is what proves leadership
            requests.append(CheckVersion(prefix + fence_path, -1))
        for group in chunk:
            requests.extend(_request(op, prefix + op.path, acl) for op in group.ops)
        tx.operations.extend(requests)
        return tx

    def _acl_bytes(self) -> int:
        return sum(16 + len(a.id.scheme) + len(a.id.id) for a in self.acl or [])


def _request(op: Op, path: str, acl: Sequence[ACL]) -> Any:
    if op.kind == "create":
        return Create(path, op.data, acl, 0)
    if op.kind == "set":
        return SetData(path, op.data, op.version)
    if op.kind == "delete":
        return Delete(path, op.version)
    return CheckVersion(path, op.version)


def _failure(result: Any, offset: int) -> tuple[bool, Exception] | None:
    """(whether the fence check failed, error) for a failed transaction; None when it applied."""
    for index, item in enumerate(result):
        if isinstance(item, Exception) and not isinstance(item, RolledBackError | RuntimeInconsistency):
            return (index < offset, item)
    return None


def _error(
    what: str, failure: tuple[bool, Exception], applied: tuple[str, ...], failed: int, total: int
) -> PartialBatch:
    fence_failed, err = failure
    where = f"{what}: {failed} of {total} transaction(s) failed, {len(applied)} group(s) applied"
    exc: PartialBatch
    if fence_failed and isinstance(err, NoNodeError | BadVersionError):
        exc = BatchLeadershipLost(f"{where}: this replica's election znode is gone (no longer the leader)")
    elif isinstance(err, NodeExistsError | NoNodeError | BadVersionError | NotEmptyError):
        exc = BatchConflict(f"{where}: {type(err).__name__} (a node exists, vanished or moved since it was read)")
    elif isinstance(err, NoAuthError):
        exc = BatchFailed(f"{where}: not authorized (check the store's digest credentials and ACLs)")
    else:
        exc = BatchFailed(f"{where}: {type(err).__name__}")
    exc.applied = applied
    return exc

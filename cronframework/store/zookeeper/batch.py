"""Fenced, chunked, pipelined multi-op transactions: how every leader write reaches ZooKeeper.

Each chunk is one ZooKeeper transaction whose first op checks the leader's own election znode; if that node
is gone (session expired, deposed) the chunk fails as a whole -> LeadershipLost. Large batches (10k launches
due in one second) are split into chunks well under jute.maxbuffer and all chunks are sent before any answer
is awaited, so the batch costs about one round trip plus ZooKeeper's own write time.

Atomicity is per chunk. A group (e.g. one launch: its record and its job state) never
spans two chunks. When a chunk fails, the groups of the chunks that applied are reported on the raised error
(`applied`): their records exist; the records of every other group do not, so those launches were not begun.
After a StateStoreUnavailable the outcome of in-flight chunks is unknown and the caller must re-read."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

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
from kazoo.security import ACL, OPEN_ACL_UNSAFE

from cronframework.errors import BeginRefused, ConflictError, LeadershipLost, StateStoreError
from cronframework.store.zookeeper.chain import BeginChain
from cronframework.store.zookeeper.client import gather
from cronframework.store.zookeeper.wire import Op, Result, acl_tail, chroot_prefix, encode, send_transaction

MAX_CHUNK_OPS = 1000
# a quarter of jute.maxbuffer: request and response both stay far below the limit
MAX_CHUNK_BYTES = 256 * 1024


@dataclass
class Group:
    """Ops that must apply together; `tag` names the group in the `applied` report (e.g. a launch name). A group of
    several launches (a job's results) names them in `names`."""

    tag: str
    ops: list[Op] = field(default_factory=list)
    names: list[str] | None = None

    def launches(self) -> list[str]:
        return [self.tag] if self.names is None else self.names


class PartialBatch(StateStoreError):
    """Mixin data for a failed batch: the tags of the groups whose chunks did apply (possibly none)."""

    applied: tuple[str, ...] = ()


class BatchConflict(ConflictError, PartialBatch):
    pass


class BatchRefused(BeginRefused, PartialBatch):
    pass


class BatchLeadershipLost(LeadershipLost, PartialBatch):
    pass


class BatchFailed(PartialBatch):
    pass


def chunked(groups: Sequence[Group], encoded: Sequence[list[bytes]], max_ops: int, max_bytes: int) -> list[Chunk]:
    """Groups in order, cut into transactions of at most `max_ops` ops and `max_bytes` bytes on the wire (one
    group larger than that still goes, alone)."""
    chunks: list[Chunk] = []
    current = Chunk()
    for group, ops in zip(groups, encoded, strict=True):
        size = sum(map(len, ops))
        if current.groups and (current.ops + len(ops) > max_ops or current.size + size > max_bytes):
            chunks.append(current)
            current = Chunk()
        current.add(group, ops, size)
    if current.groups:
        chunks.append(current)
    return chunks


@dataclass
class Chunk:
    """One transaction's groups and their encoded ops."""

    groups: list[Group] = field(default_factory=list)
    encoded: list[bytes] = field(default_factory=list)
    ops: int = 0
    size: int = 0

    def add(self, group: Group, ops: list[bytes], size: int) -> None:
        self.groups.append(group)
        self.encoded += ops
        self.ops += len(ops)
        self.size += size


@dataclass
class PreparedWrite:
    """A batch encoded and chunked, not sent: `send()` puts its transactions on the wire. `ops` and `size` are
    what it puts there, the fence checks included."""

    writer: FencedWriter
    what: str
    groups: int
    chunks: list[Chunk]
    fence: list[bytes]
    ops: int
    size: int
    chain: BeginChain | None = None  # each transaction linked to the one sent before it (chain.py)

    def send(self) -> Callable[[], None]:
        """The transactions leave now; the returned call waits for ZooKeeper's answer (raises what `commit` would)."""
        writer, chunks, fenced = self.writer, self.chunks, len(self.fence)
        links = [[self.writer.encode(op)] for op in self.chain.links(len(chunks))] if self.chain else [[]] * len(chunks)
        pending = [
            send_transaction(writer.client, self.fence + link + chunk.encoded)
            for chunk, link in zip(chunks, links, strict=True)
        ]

        def wait() -> None:
            try:
                results = gather(writer.client, self.what, pending, writer.timeout)
            except StateStoreError:
                if self.chain is not None:
                    self.chain.broken()  # what applied is unknown
                raise
            failures = [(chunk, _failure(result, fenced)) for chunk, result in zip(chunks, results, strict=True)]
            bad = [err for _, err in failures if err is not None]
            if bad:
                if self.chain is not None:
                    self.chain.broken()
                applied = tuple(g.tag for chunk, err in failures if err is None for g in chunk.groups)
                raise _error(self.what, bad[0], applied, len(bad), len(chunks), chained=self.chain is not None)
            if writer.on_done is not None:
                writer.on_done(self)

        return wait


@dataclass
class FencedWriter:
    client: KazooClient
    acl: list[ACL] | None
    timeout: float
    max_ops: int = MAX_CHUNK_OPS
    max_bytes: int = MAX_CHUNK_BYTES
    # told of every batch ZooKeeper applied (benchmarks count ops, bytes and completion times with it)
    on_done: Callable[[PreparedWrite], None] | None = None

    def commit(
        self,
        fence_path: str | None,
        groups: Sequence[Group],
        what: str,
        *,
        atomic: bool = False,
        per_chunk: Callable[[Chunk], list[Op]] | None = None,
    ) -> None:
        """Apply `groups`, fenced by `fence_path` when given; a failed chunk raises a PartialBatch error
        naming what applied. `atomic` refuses a batch too large for one transaction rather than split it."""
        self.prepare(fence_path, groups, what, atomic=atomic, per_chunk=per_chunk).send()()

    def prepare(
        self,
        fence_path: str | None,
        groups: Sequence[Group],
        what: str,
        *,
        atomic: bool = False,
        per_chunk: Callable[[Chunk], list[Op]] | None = None,
        chain: BeginChain | None = None,
    ) -> PreparedWrite:
        """Encode and chunk now, send later: all of a batch's CPU work, none of its I/O. `per_chunk` adds ops to
        each transaction once the cut is known: what must apply exactly when that transaction's groups do (an
        index entry for them). They add at most the size of the groups they name."""
        prefix, tail = self._wire()
        encoded = [[encode(op, prefix + op.path, tail) for op in group.ops] for group in groups]
        chunks = chunked(groups, encoded, self.max_ops, self.max_bytes) or [Chunk()]
        if per_chunk is not None:
            for chunk in chunks:
                extra = [encode(op, prefix + op.path, tail) for op in per_chunk(chunk)]
                chunk.encoded += extra
                chunk.ops += len(extra)
                chunk.size += sum(map(len, extra))
        if atomic and len(chunks) > 1:
            raise StateStoreError(f"{what}: too large for one ZooKeeper transaction; split it into smaller changes")
        # the election znode is never modified: its existence is what proves leadership
        fence = [] if fence_path is None else [encode(Op("check", fence_path), prefix + fence_path, tail)]
        ops = sum(c.ops for c in chunks) + len(fence) * len(chunks)
        size = sum(c.size for c in chunks) + sum(map(len, fence)) * len(chunks)
        return PreparedWrite(self, what, len(groups), chunks, fence, ops, size, chain)

    def encode(self, op: Op) -> bytes:
        """One op as it goes on the wire."""
        prefix, tail = self._wire()
        return encode(op, prefix + op.path, tail)

    def _wire(self) -> tuple[str, bytes]:
        """The client's chroot, a plain prefix of Layout's absolute paths (kazoo's normpath per op was a tenth of a
        herd's CPU), and what follows a create's data: the writer's ACL."""
        return chroot_prefix(self.client), acl_tail(self.acl or self.client.default_acl or OPEN_ACL_UNSAFE)


def _failure(result: Sequence[Result], offset: int) -> tuple[int, Exception] | None:
    """(how far past the fence checks the first failed op is, negative within them; its error) for a failed
    transaction; None when it applied."""
    for index, item in enumerate(result):
        if isinstance(item, Exception) and not isinstance(item, RolledBackError | RuntimeInconsistency):
            return (index - offset, item)
    return None


def _error(
    what: str,
    failure: tuple[int, Exception],
    applied: tuple[str, ...],
    failed: int,
    total: int,
    *,
    chained: bool = False,
) -> PartialBatch:
    where_failed, err = failure
    where = f"{what}: {failed} of {total} transaction(s) failed, {len(applied)} group(s) applied"
    exc: PartialBatch
    if where_failed < 0 and isinstance(err, NoNodeError | BadVersionError):
        exc = BatchLeadershipLost(f"{where}: this replica's election znode is gone (no longer the leader)")
    elif chained and where_failed == 0:
        exc = BatchRefused(f"{where}: refused untried, behind a begin that failed (chain.py)")
    elif isinstance(err, NodeExistsError | NoNodeError | BadVersionError | NotEmptyError):
        exc = BatchConflict(f"{where}: {type(err).__name__} (a node exists, vanished or moved since it was read)")
    elif isinstance(err, NoAuthError):
        exc = BatchFailed(f"{where}: not authorized (check the store's digest credentials and ACLs)")
    else:
        exc = BatchFailed(f"{where}: {type(err).__name__}")
    exc.applied = applied
    return exc

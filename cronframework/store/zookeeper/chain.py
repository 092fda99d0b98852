"""Sync point one's transactions apply in the order they were sent, and none past the first that fails.

A herd's sync point one is pipelined (engine/launcher.py): slice k+1's transactions are on the wire before slice
k's are confirmed, and a batch larger than one transaction is several. ZooKeeper applies each transaction on its
own, so when one failed (a record it creates already exists: a replay after a restore) the ones sent after it still
applied. One of those could carry a job's last instant of the tick, with its new watermark, while that job's
earlier instants were in the failed one, to be begun again one by one; a leader that died in between left the
watermark past instants that had no record, and no later leader decided them (the 60-minute runs, 2026-12-05).

So every begin transaction carries one more op: a versioned set of the chain node, at the version the transaction
sent before it leaves behind (the first ever creates the node). A transaction behind one that failed finds the
node a version short and fails whole, untried (`BeginRefused`): what it would have written is begun again after the
failed one's launches, in order. Once a failure is seen the expected version is unknown; the next send reads it,
and since a session's requests are served in order, that read sees every transaction sent before it settled.
"""

from __future__ import annotations

import threading

from kazoo.client import KazooClient

from cronframework.store.zookeeper.client import call
from cronframework.store.zookeeper.wire import Op

MISSING = -1  # the chain node does not exist yet: the next transaction creates it (version 0)


class BeginChain:
    def __init__(self, client: KazooClient, path: str, timeout: float) -> None:
        self._client, self._path, self._timeout = client, path, timeout
        self._version: int | None = None  # the node's version once everything sent so far applies; None: unknown
        self._lock = threading.Lock()

    def links(self, transactions: int) -> list[Op]:
        """The chain op of each of `transactions` sent next, in order; reads the node's version when unknown."""
        with self._lock:
            version = self._version if self._version is not None else self._read()
            ops = []
            for _ in range(transactions):
                if version == MISSING:
                    ops.append(Op("create", self._path))
                else:
                    ops.append(Op("set", self._path, version=version))
                version += 1
            self._version = version
            return ops

    def broken(self) -> None:
        """A transaction failed, or its outcome is unknown: the next send reads the version again."""
        with self._lock:
            self._version = None

    def _read(self) -> int:
        what = "reading sync point one's chain"
        stat = call(self._client, what, lambda: self._client.exists_async(self._path), self._timeout)
        return MISSING if stat is None else int(stat.version)

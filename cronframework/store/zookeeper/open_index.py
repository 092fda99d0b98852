"""The open index: the launches begun and not finished, found at takeover without reading any history.

One index znode per begin transaction, created by that transaction, lists the launches it opened:
`open/<first launch>+<count>`, the names newline-separated. Sync point one then costs two ops per launch (record,
job state) instead of three. The node's name is unique because its first launch's record is created in the same
transaction, and a launch name can be begun once. A finish deletes the node in the transaction that finishes the
last of its launches, or in a fenced transaction right after it when they finished in different transactions.

A record is the truth about its launch; the index only says where to look. A node that still names a finished or
missing record (a leader died between finishing and deleting) is harmless: the records are read, and the node is
deleted at the next finish."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence

SEPARATOR = "+"  # never in a launch name (naming.py)


def node_name(names: Sequence[str]) -> str:
    return f"{names[0]}{SEPARATOR}{len(names)}"


def encode_names(names: Sequence[str]) -> bytes:
    return "\n".join(names).encode()


def decode_names(data: bytes) -> list[str]:
    return [n for n in data.decode().split("\n") if n]


class OpenIndex:
    """What this leader knows of `open/`: each node's launches still open, and each open launch's node. Only the
    leader writes `open/`, so after a full read (`replace`) this stays exact until a write fails (`clear`).

    Locked: in a herd the begin thread records the nodes of slices ZooKeeper confirmed while the launch stage
    finishes earlier ones, and a node seen half-recorded would look empty, i.e. deletable."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open_in: dict[str, set[str]] = {}  # node -> its launches still open (empty: to delete)
        self._node_of: dict[str, str] = {}  # open launch -> its node

    def __len__(self) -> int:
        return len(self._node_of)

    def knows(self, names: Iterable[str]) -> bool:
        with self._lock:
            return all(n in self._node_of for n in names)

    def replace(self, nodes: Mapping[str, Iterable[str]]) -> None:
        with self._lock:
            self._open_in.clear()
            self._node_of.clear()
            for node, names in nodes.items():
                self._add(node, names)

    def add(self, node: str, names: Iterable[str]) -> None:
        with self._lock:
            self._add(node, names)

    def _add(self, node: str, names: Iterable[str]) -> None:
        held = self._open_in.setdefault(node, set())
        for name in names:
            held.add(name)
            self._node_of[name] = node

    def clear(self) -> None:
        with self._lock:
            self._open_in.clear()
            self._node_of.clear()

    def emptied_by(self, names: Iterable[str]) -> list[str]:
        """Nodes all of whose open launches are among `names`: deleting them with those finishes keeps every
        open record indexed, whatever else fails."""
        finishing = set(names)
        with self._lock:
            touched = {self._node_of[n] for n in finishing if n in self._node_of}
            return sorted(node for node in touched if self._open_in[node] <= finishing)

    def close(self, names: Iterable[str], deleted: Iterable[str]) -> list[str]:
        """Record `names` finished and `deleted` gone; returns the nodes now empty that still exist."""
        with self._lock:
            for name in names:
                node = self._node_of.pop(name, None)
                if node is not None:
                    self._open_in[node].discard(name)
            self._forget(deleted)
            return sorted(node for node, still_open in self._open_in.items() if not still_open)

    def forget(self, nodes: Iterable[str]) -> None:
        with self._lock:
            self._forget(nodes)

    def _forget(self, nodes: Iterable[str]) -> None:
        for node in nodes:
            for name in self._open_in.pop(node, ()):
                self._node_of.pop(name, None)


__all__ = ["OpenIndex", "decode_names", "encode_names", "node_name"]

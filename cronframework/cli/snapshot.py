"""`cronframework snapshot export FILE` / `snapshot import FILE`: back up a store, restore into an empty one.

Import writes as the leader: on ZooKeeper it joins the election itself and writes with its own fence, so it refuses
(after `--wait` seconds) while a scheduler replica leads; on the embedded state it takes the state file's lock.
"""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from cronframework.abc import Fence, StateStore
from cronframework.cli.common import add_store_args, command, open_store, uses_zookeeper, zk_config
from cronframework.cluster.election import Election
from cronframework.cluster.embedded import default_state_dir
from cronframework.errors import CronframeworkError
from cronframework.ops.snapshot import Snapshot, SnapshotError, capture, dump, load, occupied, restore
from cronframework.store.sqlite import SqliteStore
from cronframework.store.zookeeper.store import ZooKeeperStore


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = command(
        sub,
        "snapshot",
        "export the state store to a file, or import one into an empty store",
        [
            "cronframework snapshot export backup.json.gz --zk zk1:2181",
            "cronframework snapshot import backup.json.gz --zk zk2:2181",
        ],
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    export = command(
        actions,
        "export",
        "write every spec, state, record and trigger to FILE (.gz: gzip)",
        ["cronframework snapshot export backup.json.gz --zk zk1:2181"],
    )
    export.add_argument("file", type=Path, metavar="FILE")
    add_store_args(export)
    export.set_defaults(handler=handle_export)
    restore_cmd = command(
        actions,
        "import",
        "restore FILE into an EMPTY root or state dir",
        ["cronframework snapshot import backup.json.gz --zk zk1:2181 --root /cronframework-restored"],
    )
    restore_cmd.add_argument("file", type=Path, metavar="FILE")
    restore_cmd.add_argument(
        "--wait", type=float, default=5.0, metavar="SECONDS", help="how long to wait for leadership (ZooKeeper)"
    )
    add_store_args(restore_cmd)
    restore_cmd.set_defaults(handler=handle_import)


def source_of(args: argparse.Namespace) -> str:
    if uses_zookeeper(args):
        return "/" + zk_config(args).root.strip("/")
    return str(args.state_dir or default_state_dir())


def handle_export(args: argparse.Namespace) -> int:
    store = open_store(args)
    try:
        snapshot = capture(store, source=source_of(args), now=datetime.now(UTC))
    finally:
        store.close()
    dump(snapshot, args.file)
    print(f"snapshot of {snapshot.source} written to {args.file}: {_counts(snapshot)}")
    return 0


def handle_import(args: argparse.Namespace) -> int:
    snapshot = load(args.file)  # validated in full before the target is even opened
    target = source_of(args)
    store = _open_target(args)
    try:
        _refuse_occupied(store, snapshot, target)
        with _leadership(store, args) as fence:
            _refuse_occupied(store, snapshot, target)  # again under the fence: nobody wrote meanwhile
            restore(store, fence, snapshot, now=datetime.now(UTC))
    finally:
        store.close()
    print(f"snapshot {args.file} (from {snapshot.source}) imported into {target}: {_counts(snapshot)}")
    return 0


def _refuse_occupied(store: StateStore, snapshot: Snapshot, target: str) -> None:
    why = occupied(store, snapshot.jobs)
    if why is not None:
        raise SnapshotError(f"refusing to import into {target}: {why}; import needs an empty root or state dir")


def _open_target(args: argparse.Namespace) -> StateStore:
    if uses_zookeeper(args):
        return open_store(args)
    return SqliteStore((args.state_dir or default_state_dir()) / "state.sqlite")


@contextmanager
def _leadership(store: StateStore, args: argparse.Namespace) -> Iterator[Fence]:
    replica = f"snapshot-import-{socket.gethostname()}-{os.getpid()}"
    if isinstance(store, SqliteStore):
        leader = store.acquire_leadership(replica)
        try:
            yield leader
        finally:
            leader.active = False
        return
    with _zk_leadership(store, args, replica) as fence:
        yield fence


@contextmanager
def _zk_leadership(store: StateStore, args: argparse.Namespace, replica: str) -> Iterator[Fence]:
    assert isinstance(store, ZooKeeperStore)
    root = zk_config(args).root
    election = Election(store.client, root, replica, acl=store.acl).start()
    try:
        if not election.elected.wait(args.wait) or election.fence is None:
            leader = election.leader()
            who = f"replica {leader.replica!r}" if leader else "another replica"
            raise CronframeworkError(
                f"refusing to import into {root}: {who} leads it (a running scheduler?); stop it and retry"
            )
        yield election.fence
    finally:
        election.resign()


def _counts(snapshot: Snapshot) -> str:
    open_count = sum(r.open for r in snapshot.launches)
    return (
        f"{len(snapshot.specs)} job(s), {len(snapshot.launches)} launch record(s) ({open_count} open), "
        f"{len(snapshot.triggers)} pending trigger(s)"
    )

"""Shared CLI plumbing: which store a command talks to (ZooKeeper with --zk, else the embedded state dir)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cronframework.abc import StateStore
from cronframework.adapters import BackendSet
from cronframework.cluster.config import DEFAULT_HOSTS, ZooKeeperConfig, load_config
from cronframework.cluster.election import election_members
from cronframework.cluster.embedded import default_state_dir
from cronframework.errors import CronframeworkError
from cronframework.ops.status import leader_of
from cronframework.records import StoredSpec
from cronframework.spec.files import did_you_mean
from cronframework.store.sqlite import SqliteStore
from cronframework.store.zookeeper.store import ZooKeeperStore


def add_store_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("state store (ZooKeeper with --zk or --config, else the embedded state)")
    group.add_argument(
        "--zk",
        metavar="HOST:PORT[,...]",
        help=f"ZooKeeper connect string (with --config: the file's zookeeper.hosts, default {DEFAULT_HOSTS})",
    )
    group.add_argument("--root", metavar="ZNODE", help="the cluster's root znode (default /cronframework)")
    group.add_argument("--config", metavar="FILE", help="scheduler config file (YAML)")
    group.add_argument("--session-timeout", type=float, default=None, metavar="SECONDS")
    group.add_argument("--state-dir", type=Path, default=None, help=f"embedded state (default {default_state_dir()})")


def zk_config(args: argparse.Namespace) -> ZooKeeperConfig:
    overrides = {"zookeeper": {"hosts": args.zk, "root": args.root, "session_timeout": args.session_timeout}}
    return load_config(args.config, overrides).zookeeper


def uses_zookeeper(args: argparse.Namespace) -> bool:
    return bool(args.zk or args.config)


def open_store(args: argparse.Namespace) -> StateStore:
    if uses_zookeeper(args):
        return zk_config(args).connect()
    folder = state_dir(args)
    if not (folder / "state.sqlite").exists():
        raise CronframeworkError(f"no embedded state at {folder} (run `cronframework run` first, or pass --zk)")
    return SqliteStore(folder / "state.sqlite")


def state_dir(args: argparse.Namespace) -> Path:
    return Path(args.state_dir or default_state_dir())


def positive_int(text: str) -> int:
    """argparse type for counts: a bad number is an argument error (exit 2), not an empty answer."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def require_job(store: StateStore, job: str) -> StoredSpec:
    """The job's stored spec; an unknown name is an error naming the closest known one."""
    specs = store.read_specs()
    stored = specs.get(job)
    if stored is None:
        raise CronframeworkError(f"unknown job {job!r}{did_you_mean(job, sorted(specs))}")
    return stored


def target(args: argparse.Namespace) -> str:
    """The state a command talks to, as messages name it: the ZooKeeper root, or the embedded state dir."""
    if uses_zookeeper(args):
        zk = zk_config(args)
        return f"ZooKeeper {zk.hosts} root {zk.root}"
    return str(state_dir(args))


def running_scheduler(store: StateStore, args: argparse.Namespace) -> str | None:
    """The replica that leads on this state now: the ZooKeeper election's leader, or the embedded scheduler holding
    the state's lock. None when no scheduler runs, i.e. nothing acts on triggers and next launches are stale."""
    leader = leader_of(store, members(store, args))
    return str(leader["replica"]) if leader else None


def members(store: StateStore, args: argparse.Namespace) -> list[dict[str, Any]]:
    """The election's replicas, leader first; none for the embedded state, which has no election."""
    if uses_zookeeper(args) and isinstance(store, ZooKeeperStore):
        return election_members(store.client, zk_config(args).root)
    return []


def print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def backend_set(args: argparse.Namespace) -> BackendSet:
    """The adapters as the scheduler configures them: the config's `backends:` (cluster) or the embedded defaults."""
    if uses_zookeeper(args):
        configs = load_config(args.config, {}).backends
    else:
        configs = {"process": {"state_dir": str(state_dir(args) / "process")}}
    return BackendSet(configs)


def result_text(row: Mapping[str, Any]) -> str:
    """A launch's task result in a few words, `failed (exit 3)`; while it runs, what the backend says now
    (`running?`, from `lookup`); else `-`."""
    if row.get("result"):
        code = row.get("exit_code")
        return str(row["result"]) + (f" (exit {code})" if code not in (None, 0) else "")
    lookup = row.get("lookup")
    return f"{lookup['state']}?" if lookup else "-"

"""Shared CLI plumbing: which store a command talks to (ZooKeeper with --zk, else the embedded state dir)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from cronframework.abc import StateStore
from cronframework.adapters import BackendSet
from cronframework.cluster.config import ZooKeeperConfig, load_config
from cronframework.cluster.embedded import default_state_dir
from cronframework.errors import CronframeworkError
from cronframework.store.sqlite import SqliteStore


def add_store_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("state store (ZooKeeper with --zk or --config, else the embedded state)")
    group.add_argument("--zk", metavar="HOST:PORT[,...]", help="ZooKeeper connect string")
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
    state_dir = args.state_dir or default_state_dir()
    if not (state_dir / "state.sqlite").exists():
        raise CronframeworkError(f"no embedded state at {state_dir} (run `cronframework run` first, or pass --zk)")
    return SqliteStore(state_dir / "state.sqlite")


def print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def backend_set(args: argparse.Namespace) -> BackendSet:
    """The adapters as the scheduler configures them: the config's `backends:` (cluster) or the embedded defaults."""
    if uses_zookeeper(args):
        configs = load_config(args.config, {}).backends
    else:
        configs = {"process": {"state_dir": str((args.state_dir or default_state_dir()) / "process")}}
    return BackendSet(configs)

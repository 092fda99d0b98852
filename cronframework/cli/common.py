"""Shared CLI plumbing: which store a command talks to (a replica's API with --addr, ZooKeeper with --zk, else the
embedded state dir), how it prints (-o table|json), and how each subcommand documents itself.

Connection flags default from the environment, as Nomad's do (NOMAD_ADDR, NOMAD_TOKEN): CRONFRAMEWORK_ADDR,
CRONFRAMEWORK_ZK, CRONFRAMEWORK_ROOT, CRONFRAMEWORK_API_TOKEN. A flag given beats any variable; of the variables,
CRONFRAMEWORK_ADDR beats CRONFRAMEWORK_ZK for the commands that can go through the API.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
from collections.abc import Mapping, Sequence
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

ENV_ZK, ENV_ROOT, ENV_ADDR, ENV_TOKEN = (
    "CRONFRAMEWORK_ZK",
    "CRONFRAMEWORK_ROOT",
    "CRONFRAMEWORK_ADDR",
    "CRONFRAMEWORK_API_TOKEN",
)
ENV_CACERT, ENV_CLIENT_CERT, ENV_CLIENT_KEY = (
    "CRONFRAMEWORK_CACERT",
    "CRONFRAMEWORK_CLIENT_CERT",
    "CRONFRAMEWORK_CLIENT_KEY",
)


def command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, summary: str, examples: Sequence[str]
) -> argparse.ArgumentParser:
    """A subcommand whose --help says what it does and shows how it is used."""
    return sub.add_parser(
        name,
        help=summary,
        description=summary[:1].upper() + summary[1:] + ".",
        epilog="examples:\n" + textwrap.indent("\n".join(examples), "  "),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def add_output_args(parser: argparse.ArgumentParser, formats: Sequence[str] = ("table", "json")) -> None:
    parser.add_argument("-o", "--output", choices=formats, default="table", help="output format")
    parser.add_argument("--json", dest="output", action="store_const", const="json", help="the same as -o json")


def wants_json(args: argparse.Namespace) -> bool:
    return bool(args.output == "json")


def add_remote_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "through a replica's HTTP API instead of the state store (no ZooKeeper access needed)"
    )
    group.add_argument("--addr", metavar="URL", help=f"the API of any replica, e.g. https://cron1:8461 (${ENV_ADDR})")
    group.add_argument("--token-file", metavar="FILE", help=f"file holding the API token (default ${ENV_TOKEN})")
    group.add_argument("--ca-cert", metavar="FILE", help=f"CA that signed the API's certificate (${ENV_CACERT})")
    group.add_argument(
        "--client-cert", metavar="FILE", help=f"client certificate, when the API asks for one (${ENV_CLIENT_CERT})"
    )
    group.add_argument("--client-key", metavar="FILE", help=f"the client certificate's key (${ENV_CLIENT_KEY})")


def remote_addr(args: argparse.Namespace) -> str | None:
    """The API to go through: --addr; else $CRONFRAMEWORK_ADDR unless a store flag was given."""
    if getattr(args, "addr", None):
        return str(args.addr)
    if args.zk or args.config or args.state_dir:
        return None
    return os.environ.get(ENV_ADDR) or None


def api_token(args: argparse.Namespace) -> str | None:
    path = getattr(args, "token_file", None)
    if path:
        try:
            return Path(path).read_text().strip() or None
        except OSError as exc:
            raise CronframeworkError(f"{path}: cannot read the API token: {exc.strerror or exc}") from None
    return os.environ.get(ENV_TOKEN) or None


def tls_files(args: argparse.Namespace) -> tuple[str | None, str | None, str | None]:
    """(CA, client certificate, client key) from the flags or the environment."""
    ca = getattr(args, "ca_cert", None) or os.environ.get(ENV_CACERT)
    cert = getattr(args, "client_cert", None) or os.environ.get(ENV_CLIENT_CERT)
    key = getattr(args, "client_key", None) or os.environ.get(ENV_CLIENT_KEY)
    return ca, cert, key


def add_store_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("state store (ZooKeeper with --zk or --config, else the embedded state)")
    group.add_argument(
        "--zk",
        metavar="HOST:PORT[,...]",
        help=f"ZooKeeper connect string (${ENV_ZK}; with --config: its zookeeper.hosts, default {DEFAULT_HOSTS})",
    )
    group.add_argument(
        "--root", metavar="ZNODE", help=f"the cluster's root znode (${ENV_ROOT}, default /cronframework)"
    )
    group.add_argument("--config", metavar="FILE", help="scheduler config file (YAML)")
    group.add_argument("--session-timeout", type=float, default=None, metavar="SECONDS")
    group.add_argument("--state-dir", type=Path, default=None, help=f"embedded state (default {default_state_dir()})")


def zk_hosts(args: argparse.Namespace) -> str | None:
    """--zk, else $CRONFRAMEWORK_ZK unless --config or --state-dir says where the state is."""
    if args.zk:
        return str(args.zk)
    if args.config or args.state_dir:
        return None
    return os.environ.get(ENV_ZK) or None


def zk_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The config file's `zookeeper:` section as the flags and the environment override it."""
    root = args.root or os.environ.get(ENV_ROOT) or None
    return {"hosts": zk_hosts(args), "root": root, "session_timeout": args.session_timeout}


def zk_config(args: argparse.Namespace) -> ZooKeeperConfig:
    return load_config(args.config, {"zookeeper": zk_overrides(args)}).zookeeper


def uses_zookeeper(args: argparse.Namespace) -> bool:
    return bool(zk_hosts(args) or args.config)


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

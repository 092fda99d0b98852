"""`cronframework scheduler --zk ... --root ... [--config FILE]`: one ZooKeeper-coordinated replica.

The ensemble is never implied: a replica that silently dialled a default address would only log refused
connections, so one of --zk or --config is required (a config file without zookeeper.hosts means 127.0.0.1:2181).
"""

from __future__ import annotations

import argparse

from cronframework.api.cli_args import add_api_args, api_overrides
from cronframework.api.wiring import serve_replica
from cronframework.cli.common import ENV_ZK, add_store_args, uses_zookeeper, zk_overrides
from cronframework.cluster.config import DEFAULT_HOSTS, load_config
from cronframework.cluster.replica import Replica
from cronframework.cluster.signals import stop_on_signals
from cronframework.heap import tune_collector
from cronframework.ops.logs import setup_logging


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "scheduler",
        help="run one scheduler replica (ZooKeeper-coordinated)",
        description="One scheduler replica. The ensemble comes from --zk or --config (one is required); "
        f"a config file without zookeeper.hosts means {DEFAULT_HOSTS}.",
        epilog="examples:\n  cronframework scheduler --zk zk1:2181,zk2:2181,zk3:2181 --api-host 0.0.0.0\n"
        "  cronframework scheduler --config /etc/cronframework/scheduler.yaml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_store_args(parser)
    parser.add_argument("--replica-id", default=None, help="default: HOSTNAME-PID")
    parser.add_argument("--log-json", action="store_true", help="JSON lines on stderr")
    add_api_args(parser)
    parser.set_defaults(handler=lambda args: handle(args, parser))


def handle(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if not uses_zookeeper(args):
        parser.error(
            f"the ZooKeeper ensemble is required: pass --zk HOST:PORT[,...] (or set ${ENV_ZK}) or --config FILE"
        )
    setup_logging(json_lines=args.log_json)
    overrides = {"zookeeper": zk_overrides(args), "api": api_overrides(args)}
    tune_collector()
    replica = Replica(load_config(args.config, overrides), replica_id=args.replica_id, serve_api=serve_replica)
    stop_on_signals(replica.stop, also=replica.request_stop)
    replica.run()
    return 0

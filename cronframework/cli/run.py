"""`cronframework run PATH...`: the embedded single-machine scheduler."""

from __future__ import annotations

import argparse
import threading
from pathlib import Path

from cronframework.api.cli_args import add_api_args, api_overrides
from cronframework.cluster.config import ApiSection
from cronframework.cluster.embedded import EmbeddedOptions, default_state_dir, run_embedded
from cronframework.cluster.signals import stop_on_signals
from cronframework.ops.logs import setup_logging


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("run", help="run the embedded scheduler (one machine, no ZooKeeper)")
    parser.add_argument("paths", nargs="+", metavar="PATH", help="job files or directories")
    parser.add_argument("--state-dir", type=Path, default=None, help=f"default: {default_state_dir()}")
    parser.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    parser.add_argument("--log-json", action="store_true", help="JSON lines on stderr")
    add_api_args(parser)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    setup_logging(json_lines=args.log_json)
    stop = threading.Event()
    stop_on_signals(stop)
    if args.duration is not None:
        timer = threading.Timer(args.duration, stop.set)
        timer.daemon = True
        timer.start()
    api = ApiSection.model_validate({k: v for k, v in api_overrides(args).items() if v is not None})
    options = EmbeddedOptions(paths=args.paths, state_dir=args.state_dir or default_state_dir(), api=api)
    run_embedded(options, stop)
    return 0

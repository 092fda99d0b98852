"""`cronframework run PATH... [--config FILE]`: the embedded single-machine scheduler."""

from __future__ import annotations

import argparse
import math
import threading
from functools import partial
from pathlib import Path

from cronframework.api.cli_args import add_api_args, api_overrides
from cronframework.api.wiring import serve_embedded
from cronframework.cli.common import command
from cronframework.cluster.config import load_embedded_config
from cronframework.cluster.embedded import EmbeddedOptions, backend_configs, default_state_dir, run_embedded
from cronframework.cluster.signals import reload_on_hangup, stop_on_signals
from cronframework.heap import tune_collector
from cronframework.ops.logs import setup_logging
from cronframework.schedule.duration import parse_duration


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = command(
        sub,
        "run",
        "run the embedded scheduler (one machine, no ZooKeeper) on job files; SIGHUP re-reads them",
        ["cronframework run jobs/", "cronframework run jobs/ --config scheduler.yaml --api-port 8461"],
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="job files or directories (SIGHUP re-reads them)")
    parser.add_argument("--config", metavar="FILE", help="the scheduler's config file (YAML), without 'zookeeper:'")
    parser.add_argument("--state-dir", type=Path, default=None, help=f"default: {default_state_dir()}")
    parser.add_argument("--duration", type=duration_seconds, default=None, help="stop after this long (30s, 5m)")
    parser.add_argument("--log-json", action="store_true", help="JSON lines on stderr")
    add_api_args(parser)
    parser.set_defaults(handler=handle)


def duration_seconds(text: str) -> float:
    """A duration as job files write it ("90s", "1h30m"), or a bare number of seconds."""
    try:
        seconds = float(text)
    except ValueError:
        try:
            seconds = parse_duration(text).total_seconds()
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive duration, got {text!r}")
    return seconds


def handle(args: argparse.Namespace) -> int:
    setup_logging(json_lines=args.log_json)
    stop, reload = threading.Event(), threading.Event()
    stop_on_signals(stop)
    reload_on_hangup(reload)  # before the files are first read: a SIGHUP during the start is not lost
    if args.duration is not None:
        timer = threading.Timer(args.duration, stop.set)
        timer.daemon = True
        timer.start()
    config = load_embedded_config(args.config, {"api": api_overrides(args)})
    options = EmbeddedOptions.from_config(config, args.paths, args.state_dir or default_state_dir())
    serve_api = partial(serve_embedded, backends=backend_configs(options))  # the API reads launch logs with them
    tune_collector()
    run_embedded(options, stop, reload=reload, serve_api=serve_api)
    return 0

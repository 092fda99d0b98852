"""The API flags shared by `run` and `scheduler`; they override the config file's `api:` section."""

from __future__ import annotations

import argparse
from typing import Any


def add_api_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("HTTP API and status page (token from $CRONFRAMEWORK_API_TOKEN or a file)")
    group.add_argument("--api-host", default=None, help="listen address (default 127.0.0.1: loopback only)")
    group.add_argument("--api-port", type=int, default=None, help="listen port (default 8461; 0 picks a free one)")
    group.add_argument("--api-token-file", default=None, help="file holding the bearer token for writes")
    group.add_argument(
        "--api-read-auth",
        action="store_const",
        const=True,
        default=None,
        help="require the token for reads and the status page too",
    )
    group.add_argument(
        "--no-api", dest="api_enabled", action="store_const", const=False, default=None, help="serve no API"
    )


def api_overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "enabled": args.api_enabled,
        "host": args.api_host,
        "port": args.api_port,
        "token_file": args.api_token_file,
        "read_auth": args.api_read_auth,
    }

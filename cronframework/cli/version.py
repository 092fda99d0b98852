"""`cronframework version` (and `cronframework --version`): the installed version."""

from __future__ import annotations

import argparse
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as installed_version

from cronframework import __version__


def version() -> str:
    """The installed distribution's version; the source tree's when it runs uninstalled."""
    try:
        return installed_version("cronframework")
    except PackageNotFoundError:
        return __version__


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "version",
        help="print the version",
        description="Print the version.",
        epilog="example:\n  cronframework version",
    )
    parser.set_defaults(handler=handle)


def handle(_args: argparse.Namespace) -> int:
    print(f"cronframework {version()}")
    return 0

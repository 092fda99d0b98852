"""`cronframework` command line: parse, wire objects, call the library. One module per subcommand.

Every subcommand module exposes `register(subparsers)`, which adds its parser and sets `handler` to a function
taking the parsed namespace and returning the exit code. Errors of the project's tree print as one line on stderr
with exit 1; nothing prints a traceback for bad input. A reader that goes away (`status | head -1`) ends the command
quietly with 141, the status of a tool killed by SIGPIPE.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
from collections.abc import Sequence

from cronframework.cli.version import version
from cronframework.errors import CronframeworkError, SpecErrors

SUBCOMMANDS = (
    "validate",
    "plan",
    "run",
    "scheduler",
    "apply",
    "status",
    "show",
    "delete",
    "history",
    "trigger",
    "pause",
    "logs",
    "snapshot",
    "completion",
    "version",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cronframework", description="Distributed cron for platform teams.")
    parser.add_argument("--version", action="version", version=f"cronframework {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"cronframework.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"cronframework.cli.{name}":
                continue  # subcommand not built yet in this checkout
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # One-shot commands speak through their exit code and one error line; library chatter (kazoo's reconnect
    # warnings) stays quiet. Long-running commands call setup_logging() and get structured logs instead.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("kazoo").setLevel(logging.CRITICAL)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
        sys.stdout.flush()  # a reader gone shows here, where it is handled, rather than in the exit's flush
        return code
    except BrokenPipeError:
        return _reader_gone()
    except SpecErrors as exc:
        for error in exc.errors:
            print(f"error: {error}", file=sys.stderr)
        return 1
    except CronframeworkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _reader_gone() -> int:
    """Stop writing to a pipe nobody reads: what is still buffered goes to /dev/null, so the interpreter's flush at
    exit does not fail on the same pipe again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 128 + signal.SIGPIPE


if __name__ == "__main__":
    sys.exit(main())

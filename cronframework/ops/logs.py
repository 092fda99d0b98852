"""Structured logs: every decision logs an event name plus fields (job, launch, epoch...), as text or JSON lines."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, TextIO

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
SECRET_KEYS = ("token", "password", "secret", "auth", "key")


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    """The `extra` fields, secrets redacted. One line per launch of a 10k herd passes through here."""
    return {
        key: "[redacted]" if _secret(key) else value
        for key, value in record.__dict__.items()
        if key not in _STANDARD and key[:1] != "_"
    }


@lru_cache(maxsize=512)
def _secret(key: str) -> bool:
    return any(s in key.lower() for s in SECRET_KEYS)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        body = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            body["exception"] = self.formatException(record.exc_info)
        return json.dumps(body, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"
        extra = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        line = f"{stamp} {record.levelname.lower():7} {record.getMessage()}" + (f" {extra}" if extra else "")
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class BurstHandler(logging.Handler):
    """Writes each line at once, unless lines come faster than `delay` apart: then they are gathered and written
    together, at most `delay` after the first of them; WARNING and worse go at once, with what is gathered before.

    A herd logs a line per launch. Written one by one, each line is a write (and on stderr a flush), and each
    releases the GIL and waits a switch interval to get it back while other threads build and send the next
    launches: at 100k launches in one second that was half of the launch stage's time (docs/benchmarks.md)."""

    def __init__(self, stream: TextIO, delay: float = 0.1) -> None:
        super().__init__()
        self.stream = stream
        self._delay = delay
        self._lines: list[str] = []
        self._written = 0.0  # monotonic time of the last write
        self._gathering = threading.Event()
        self._stopping = threading.Event()
        threading.Thread(target=self._write_gathered, name="log-writer", daemon=True).start()

    def emit(self, record: logging.LogRecord) -> None:  # called under the handler's lock
        try:
            line = self.format(record)
        except Exception:  # logging's own convention: report, never raise into the caller
            self.handleError(record)
            return
        self._lines.append(line)
        if record.levelno >= logging.WARNING or time.monotonic() - self._written >= self._delay:
            self._write()
        elif len(self._lines) == 1:
            self._gathering.set()

    def _write(self) -> None:
        lines, self._lines = self._lines, []
        self._written = time.monotonic()
        if lines and not getattr(self.stream, "closed", False):  # closed under us (a test's captured stderr)
            try:
                self.stream.write("\n".join(lines) + "\n")
                self.stream.flush()
            except Exception:  # a closed or full stream: as logging.StreamHandler does, report and go on
                self.handleError(logging.makeLogRecord({"msg": lines[0]}))

    def flush(self) -> None:
        self.acquire()
        try:
            self._write()
        finally:
            self.release()

    def _write_gathered(self) -> None:
        while not self._stopping.is_set():
            self._gathering.wait()
            self._stopping.wait(self._delay)
            self._gathering.clear()
            self.flush()

    def close(self) -> None:
        self.flush()
        self._stopping.set()
        self._gathering.set()
        super().close()


def setup_logging(*, json_lines: bool = False, level: str = "INFO", stream: TextIO | None = None) -> None:
    logging._srcfile = None  # no stack walk per record for a caller's file and line, which no format here uses
    for old in logging.getLogger().handlers:
        if isinstance(old, BurstHandler):
            old.close()
    handler = BurstHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("kazoo", "urllib3", "docker"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

"""Structured logs: every decision logs an event name plus fields (job, launch, epoch...), as text or JSON lines."""

from __future__ import annotations

import json
import logging
import sys
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


def setup_logging(*, json_lines: bool = False, level: str = "INFO", stream: TextIO | None = None) -> None:
    logging._srcfile = None  # no stack walk per record for a caller's file and line, which no format here uses
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("kazoo", "urllib3", "docker"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

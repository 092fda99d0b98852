"""The log handler: a burst of lines is written in few writes, in order; a lone line or a warning at once."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator

import pytest

from cronframework.ops.logs import BurstHandler, JsonFormatter


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, CountingStream, BurstHandler]]:
    stream = CountingStream()
    handler = BurstHandler(stream, delay=0.2)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("cronframework.test-burst")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    yield logger, stream, handler
    handler.close()
    logger.handlers[:] = []


def events(stream: CountingStream) -> list[str]:
    return [json.loads(line)["event"] for line in stream.getvalue().splitlines()]


def test_a_burst_is_written_in_few_writes_in_order_and_within_the_delay(
    logged: tuple[logging.Logger, CountingStream, BurstHandler],
) -> None:
    logger, stream, _ = logged
    for i in range(1000):
        logger.info(f"line {i}")
    assert stream.writes < 10
    deadline = time.monotonic() + 2.0
    while len(events(stream)) < 1000 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert events(stream) == [f"line {i}" for i in range(1000)]


def test_a_lone_line_is_written_at_once(logged: tuple[logging.Logger, CountingStream, BurstHandler]) -> None:
    logger, stream, _ = logged
    logger.info("alone")
    assert events(stream) == ["alone"]


def test_a_warning_is_written_at_once_after_the_lines_gathered_before_it(
    logged: tuple[logging.Logger, CountingStream, BurstHandler],
) -> None:
    logger, stream, _ = logged
    logger.info("first")
    logger.info("gathered")
    logger.warning("trouble")
    assert events(stream) == ["first", "gathered", "trouble"]


def test_flush_writes_what_is_gathered(logged: tuple[logging.Logger, CountingStream, BurstHandler]) -> None:
    logger, stream, handler = logged
    logger.info("first")
    logger.info("gathered")
    handler.flush()
    assert events(stream) == ["first", "gathered"]

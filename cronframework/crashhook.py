"""Test-only crash points in the launch protocol, for the fault suite (integration/).

`CRONFRAMEWORK_CRASH_AT=after_sync_one|after_submit|after_sync_two|after_results` makes the process die with
os._exit(137) -- as abruptly as kill -9 -- the first time it passes that point, optionally only for launches of the job
named by `CRONFRAMEWORK_CRASH_JOB`. Unset (always, in production) it costs one dict lookup.
"""

from __future__ import annotations

import logging
import os
import sys

POINTS = ("after_sync_one", "after_submit", "after_sync_two", "after_results")


def maybe_crash(point: str, job: str | None = None) -> None:
    wanted = os.environ.get("CRONFRAMEWORK_CRASH_AT")
    if wanted != point:
        return
    only = os.environ.get("CRONFRAMEWORK_CRASH_JOB")
    if only and job != only:
        return
    for handler in logging.getLogger().handlers:  # what was logged before this point is written first
        handler.flush()
    sys.stderr.write(f"crash hook: dying at {point}\n")
    sys.stderr.flush()
    os._exit(137)

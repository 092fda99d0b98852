"""Keeping CPython's cyclic collector out of bulk work."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic collector while building many long-lived objects at once (a job file's tree, 100k
    compiled specs, a new leader's job table): it would rescan the growing heap over and over, more than doubling
    the work (compiling 100k specs: 10.2 s of CPU with it, 4.8 s without). What is built here forms no cycles, so
    reference counting frees it all; the collector resumes (if it was on) on the way out."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()

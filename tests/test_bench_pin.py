"""benchmarks.common.pin: a process pinned for a benchmark is pinned whole, not just its first thread."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from benchmarks.common import pin

THREADED = """
import threading, time
for _ in range(3):
    threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
print("ready", flush=True)
time.sleep(60)
"""


def _affinities(pid: int) -> dict[int, set[int]]:
    return {int(t.name): os.sched_getaffinity(int(t.name)) for t in Path(f"/proc/{pid}/task").iterdir()}


def test_pin_moves_every_thread_of_another_process() -> None:
    one = {min(os.sched_getaffinity(0))}
    child = subprocess.Popen([sys.executable, "-c", THREADED], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        assert len(_affinities(child.pid)) == 4
        pin(child.pid, one)
        assert set(map(frozenset, _affinities(child.pid).values())) == {frozenset(one)}
    finally:
        child.kill()
        child.wait()


def test_pin_of_this_process_reaches_threads_started_before_it() -> None:
    before = os.sched_getaffinity(0)
    stop = threading.Event()
    worker = threading.Thread(target=stop.wait, daemon=True)
    worker.start()
    try:
        one = {min(before)}
        pin(0, one)
        assert worker.native_id is not None  # set before start() returns
        assert os.sched_getaffinity(worker.native_id) == one
        assert os.sched_getaffinity(0) == one
    finally:
        pin(0, before)
        stop.set()
        worker.join()

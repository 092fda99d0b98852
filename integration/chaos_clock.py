"""Wall-clock faults on one replica, with Debian's libfaketime preloaded into the replica process.

Each replica reads its clock's offset from a file of its own (`FAKETIME_TIMESTAMP_FILE`, re-read on every call:
`FAKETIME_NO_CACHE`, about 3 us a call), so the harness can set it ahead or behind before the replica starts, or
make it jump while the replica leads. Only the wall clock moves (`FAKETIME_DONT_FAKE_MONOTONIC`), as with an NTP
step: monotonic time, which sleeps and timeouts use, runs on. ZooKeeper's clock, the cluster's reference, is the
host's, untouched.

libfaketime 0.9.10 (Debian 12) with `FAKETIME_DONT_FAKE_MONOTONIC` fails every `clock_nanosleep` on an absolute
monotonic deadline with EINVAL, which is how CPython's `time.sleep` sleeps: kazoo's reconnect loop and the
supervisor's `Popen.wait` died of it. A `sitecustomize` in the replica's PYTHONPATH (`shim`) has `time.sleep` wait in
`select()` instead, which libfaketime passes through; nothing else in the replica changes.

A skewed replica's JSON log carries skewed timestamps. The harness records, per process, where in its log each
offset began (`ClockShift`), so that the invariant checker maps every event back to real time.
"""

from __future__ import annotations

import glob
import os
import time
from dataclasses import dataclass
from pathlib import Path

LIBRARY_GLOB = "/usr/lib/*/faketime/libfaketimeMT.so.1"  # the thread-safe variant: the scheduler runs threads


class FaketimeMissing(RuntimeError):
    """libfaketime is not installed (apt-get install faketime; scripts/install-deps.sh does)."""


def library() -> Path:
    found = sorted(glob.glob(LIBRARY_GLOB))
    if not found:
        raise FaketimeMissing(f"libfaketime is not installed (no {LIBRARY_GLOB}): apt-get install faketime")
    return Path(found[0])


@dataclass(frozen=True)
class ClockShift:
    """From here on in a process's log, its wall clock read `offset` seconds off. The events before `first` were
    logged before the change, those from `last` on after it; the few in between (logged while the harness wrote the
    file) are placed by the real time they map to."""

    first: int  # the log's event count just before the file was written
    last: int  # and just after
    offset: float
    at: float  # real (host) time the file was written


def offset_text(offset: float) -> str:
    return f"{offset:+.3f}\n"


def write_offset(path: Path, offset: float) -> float:
    """Atomically: the replica reads the file on every clock call. Returns the real time it took effect."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(offset_text(offset))
    os.replace(tmp, path)
    return time.time()


def read_offset(path: Path) -> float:
    try:
        return float(path.read_text().strip() or 0)
    except (OSError, ValueError):
        return 0.0


SHIM = '''"""From the chaos suite, beside libfaketime (integration/chaos_clock.py): time.sleep through select()."""
import select
import time


def _sleep(seconds):
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    select.select([], [], [], seconds)


time.sleep = _sleep
'''


def shim(folder: Path) -> Path:
    """The folder holding the `sitecustomize` that keeps time.sleep working under libfaketime (module doc)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(SHIM)
    return folder


def environment(offset_file: Path, shim_folder: Path) -> dict[str, str]:
    path = os.environ.get("PYTHONPATH")
    return {
        "LD_PRELOAD": str(library()),
        "FAKETIME_TIMESTAMP_FILE": str(offset_file),
        "FAKETIME_NO_CACHE": "1",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        "PYTHONPATH": f"{shim_folder}{os.pathsep}{path}" if path else str(shim_folder),
    }


def real_times(stamps: list[float], shifts: list[ClockShift]) -> list[float]:
    """Each logged (skewed) timestamp, in log order, as real time; no shifts: unchanged."""
    if not shifts:
        return stamps
    out = []
    for index, stamp in enumerate(stamps):
        out.append(stamp - _offset_at(index, stamp, shifts))
    return out


def _offset_at(index: int, stamp: float, shifts: list[ClockShift]) -> float:
    offset = 0.0
    for shift in shifts:
        if index >= shift.last:
            offset = shift.offset
        elif index >= shift.first:  # logged while the file changed: whichever offset puts it nearer that moment
            offset = min((offset, shift.offset), key=lambda o: abs(stamp - o - shift.at))
    return offset

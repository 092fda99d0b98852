"""Disk faults: a directory on a small filesystem of its own that fills up (ENOSPC) or turns read-only (EROFS).

Each directory the suite can starve -- the process backend's state dir, each ZooKeeper node's data dir -- is a tmpfs
with a size limit, mounted before anything uses it (no loop device needed). `full` writes a filler file until the
kernel refuses (the filesystem is full for everyone using it); `read_only` lays a read-only bind mount over it.
Both undo themselves when their block ends. Root only, like the rest of the suite.
"""

from __future__ import annotations

import contextlib
import errno
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

CHUNK = 1 << 20
FILLER = ".chaos-filler"


class DiskError(RuntimeError):
    """A mount or remount failed; the message carries mount's stderr."""


def _mount(*args: str) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise DiskError(f"mount {' '.join(args)}: {done.stderr.strip()}")


def mount_tmpfs(path: Path, size_mb: int) -> None:
    path.mkdir(parents=True, exist_ok=True)
    _mount("-t", "tmpfs", "-o", f"size={size_mb}m,mode=0700", "tmpfs", str(path))


def unmount(path: Path, keep: Path | None = None) -> None:
    """Copy what is on it to `keep` first (the run's record when it is kept), then unmount lazily: a task that
    still runs may hold a file open."""
    if keep is not None:
        shutil.copytree(path, keep, dirs_exist_ok=True, ignore_dangling_symlinks=True)
    subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30, check=False)


def mounted(path: Path) -> bool:
    target = str(path.resolve())
    return any(line.split()[1] == target for line in Path("/proc/self/mounts").read_text().splitlines())


@contextlib.contextmanager
def full(path: Path) -> Iterator[int]:
    """The filesystem under `path` full while inside; yields the bytes it took to fill it."""
    filler = path / FILLER
    written = 0
    try:
        with open(filler, "wb", buffering=0) as out:
            while True:
                try:
                    written += out.write(bytes(CHUNK))
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
        yield written
    finally:
        filler.unlink(missing_ok=True)


@contextlib.contextmanager
def read_only(path: Path, namespaces: tuple[int, ...] = ()) -> Iterator[None]:
    """`path` read-only while inside, in this mount namespace and in those of the processes `namespaces` names (a
    replica under `ip netns exec` has its own copy of the mounts, and / is private here: nothing propagates).

    A read-only bind mount over `path`: every new open for writing, new file or directory there fails with EROFS.
    Files already open for writing keep working -- the kernel refuses to remount a filesystem read-only under an
    open writer (EBUSY), where a failing disk (ext4's errors=remount-ro) does not ask: this is the milder half."""
    where = [None, *namespaces]
    done: list[int | None] = []
    try:
        for pid in where:
            _in(pid, "mount", "--bind", str(path), str(path))
            done.append(pid)
            _in(pid, "mount", "-o", "remount,ro,bind", str(path))
        yield
    finally:
        for pid in done:
            _in(pid, "umount", "-l", str(path), check=False)


def _in(pid: int | None, *argv: str, check: bool = True) -> None:
    """Run `argv` here, or in the mount namespace of process `pid`."""
    command = [*(["nsenter", f"--mount=/proc/{pid}/ns/mnt", "--"] if pid else []), *argv]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise DiskError(f"{' '.join(argv)}{f' (in the mounts of pid {pid})' if pid else ''}: {done.stderr.strip()}")

"""A kazoo handler whose select() is one poll() call.

kazoo's threading handler builds, registers and closes an epoll selector on every select() -- several system calls
per ZooKeeper request, which capped pipelined reads near 1,000 a second here and made a new leader's promotion at
1k jobs take a second. poll() has no file-descriptor limit either, which is why kazoo left select().
"""

from __future__ import annotations

import select
from typing import Any

from kazoo.handlers.threading import SequentialThreadingHandler

_READ = select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP | select.POLLNVAL
_WRITE = select.POLLOUT | select.POLLERR | select.POLLHUP | select.POLLNVAL


def _fd(obj: Any) -> int:
    return obj if isinstance(obj, int) else int(obj.fileno())


class PollingHandler(SequentialThreadingHandler):  # type: ignore[misc]
    def select(self, rlist: list[Any], wlist: list[Any], xlist: list[Any], timeout: float | None = None) -> Any:
        poller = select.poll()
        wanted: dict[int, int] = {}
        for obj in rlist:
            wanted[_fd(obj)] = wanted.get(_fd(obj), 0) | select.POLLIN | select.POLLPRI
        for obj in wlist:
            wanted[_fd(obj)] = wanted.get(_fd(obj), 0) | select.POLLOUT
        for fd, mask in wanted.items():
            poller.register(fd, mask)
        ready = dict(poller.poll(None if timeout is None else max(0.0, timeout) * 1000))
        readable = [obj for obj in rlist if ready.get(_fd(obj), 0) & _READ]
        writable = [obj for obj in wlist if ready.get(_fd(obj), 0) & _WRITE]
        return readable, writable, []

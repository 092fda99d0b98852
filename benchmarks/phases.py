"""Where a herd's time goes between its instant and its last registration: each call of a phase timed (start, end,
thread), summarised per phase as first start / last end after the instant, calls, and busy seconds.

Wraps methods on instances only (the leader's session and launcher, its store, the backend, a plain client), so the
code measured is the code that runs; nothing is wrapped unless a benchmark asks (`--phases`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from benchmarks.common import pct


@dataclass
class Phases:
    calls: list[tuple[str, float, float, str, float]] = field(default_factory=list)  # the last: the thread's CPU
    errors: dict[str, dict[str, int]] = field(default_factory=dict)  # per phase: calls that raised, by exception
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def wrap(self, owner: Any, method: str, phase: str, returned: str | None = None) -> None:
        """Time every call of `owner.method` as `phase`; with `returned`, also every call of what it returns
        (a backend's write returns its check)."""
        inner = getattr(owner, method)

        def timed(*args: Any, **kwargs: Any) -> Any:
            started, cpu = time.time(), time.thread_time()
            try:
                result = inner(*args, **kwargs)
            except Exception as exc:
                self.failed(phase, exc)
                raise
            finally:
                self.add(phase, started, cpu)
            return self.timed(result, returned) if returned and callable(result) else result

        setattr(owner, method, timed)

    def timed(self, call: Callable[[], Any], phase: str) -> Callable[[], Any]:
        def run() -> Any:
            started, cpu = time.time(), time.thread_time()
            try:
                return call()
            except Exception as exc:
                self.failed(phase, exc)
                raise
            finally:
                self.add(phase, started, cpu)

        return run

    def add(self, phase: str, started: float, cpu: float) -> None:
        """A call of `phase` from `started` (wall clock) to now, its thread having used `cpu` CPU seconds then."""
        used = time.thread_time() - cpu
        with self._lock:
            self.calls.append((phase, started, time.time(), threading.current_thread().name, used))

    def failed(self, phase: str, exc: Exception) -> None:
        with self._lock:
            kinds = self.errors.setdefault(phase, {})
            kind = f"{type(exc).__name__}: {str(exc)[:80]}"
            kinds[kind] = kinds.get(kind, 0) + 1

    def summary(self, instant: float) -> dict[str, dict[str, Any]]:
        """Per phase, in order of first start: seconds after `instant` of the first start and last end, calls, busy
        seconds summed over calls, the CPU seconds their threads used meanwhile, a call's median and longest, threads
        that made them."""
        out: dict[str, dict[str, Any]] = {}
        for phase, started, ended, thread, cpu in sorted(self.calls, key=lambda c: c[1]):
            row = out.setdefault(phase, {"first": started, "last": ended, "took": [], "threads": set(), "cpu": 0.0})
            row["last"] = max(row["last"], ended)
            row["took"].append(ended - started)
            row["cpu"] += cpu
            row["threads"].add(thread)
        return {
            phase: {
                "from_s": round(r["first"] - instant, 3),
                "to_s": round(r["last"] - instant, 3),
                "calls": len(r["took"]),
                "busy_s": round(sum(r["took"]), 3),
                "cpu_s": round(r["cpu"], 3),
                "call_p50_max_s": (round(pct(r["took"], 0.5), 3), round(max(r["took"]), 3)),
                "threads": len(r["threads"]),
                **({"errors": self.errors[phase]} if phase in self.errors else {}),
            }
            for phase, r in out.items()
        }


def trace_leader(phases: Phases, leader: Any) -> None:
    """The leader's launch path: the tick's launch step, sync point one sent and confirmed, the submits, each
    registration and each check, lookups, sync point two."""
    session = leader.session
    launcher = session._launcher
    phases.wrap(session, "_launch_due", "tick: launch step (all)")
    phases.wrap(launcher, "_send_begin", "sync one: sent")
    phases.wrap(launcher, "_confirm_begin", "sync one: confirmed (wait)")
    phases.wrap(launcher, "_start", "submit: a launch's first step (its write)")
    phases.wrap(launcher, "_finish", "sync two: finish")
    backend = leader.backend
    phases.wrap(backend, "register", "backend: register (HTTP write)", returned="backend: check (HTTP read)")
    phases.wrap(backend, "submit", "backend: submit (an attempt after the first)")
    phases.wrap(backend, "lookup", "backend: lookup")


__all__ = ["Phases", "trace_leader"]

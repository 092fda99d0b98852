"""Which backend names a job may name: the adapters installed under the `cronframework.backends` entry point group.

Validation asks this without loading any adapter (`cronframework.adapters` loads them)."""

from __future__ import annotations

from importlib.metadata import entry_points

ENTRY_POINT_GROUP = "cronframework.backends"


def available_backends() -> list[str]:
    return sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))

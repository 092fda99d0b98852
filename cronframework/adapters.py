"""Backend adapters are plugins: found through the `cronframework.backends` entry point group, never imported by
the core. Every adapter must pass `tests/backend_conformance.py`."""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

from cronframework.abc import Backend, BackendFactory
from cronframework.errors import CronframeworkError
from cronframework.spec.backends import ENTRY_POINT_GROUP, available_backends
from cronframework.spec.model import JobSpec


def load_backend(name: str, config: Mapping[str, Any] | None = None) -> Backend:
    """Instantiate the adapter registered under `name`, with its section of the scheduler config."""
    matches = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    if not matches:
        known = ", ".join(available_backends()) or "none installed"
        raise CronframeworkError(f"unknown backend {name!r} (installed: {known})")
    factory: BackendFactory = matches[0].load()
    return factory(dict(config or {}))


class BackendSet:
    """The adapters one scheduler uses, created on first use from the scheduler config's per-backend sections."""

    def __init__(
        self,
        configs: Mapping[str, Mapping[str, Any]] | None = None,
        loader: Any = load_backend,
        preset: Mapping[str, Backend] | None = None,
    ) -> None:
        self._configs = dict(configs or {})
        self._loader = loader
        self._backends: dict[str, Backend] = dict(preset or {})

    def get(self, name: str) -> Backend:
        if name not in self._backends:
            self._backends[name] = self._loader(name, self._configs.get(name, {}))
        return self._backends[name]

    def for_spec(self, spec: JobSpec) -> Backend:
        return self.get(spec.backend)

    def close(self) -> None:
        for backend in self._backends.values():
            backend.close()
        self._backends.clear()

"""`apply`: the difference between job files and the applied specs, and the one atomic write that makes it so."""

from __future__ import annotations

import difflib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cronframework.jobspec import JobSpec
from cronframework.store import SpecChange, StateStore, StoredSpec


def spec_document(spec: JobSpec) -> dict[str, Any]:
    """The stored form of a spec: its JSON without the name (the znode or row key carries it)."""
    document = spec.model_dump(mode="json", exclude={"name"})
    return dict(document)


@dataclass(frozen=True)
class SpecDiff:
    created: list[str]
    updated: list[str]
    deleted: list[str]
    changes: list[SpecChange]
    text: str

    @property
    def empty(self) -> bool:
        return not self.changes


def diff_specs(desired: Sequence[JobSpec], current: dict[str, StoredSpec], *, prune: bool) -> SpecDiff:
    """What to write so the store holds `desired`; with `prune`, jobs missing from the files are deleted."""
    wanted = {s.name: spec_document(s) for s in desired}
    changes, created, updated, lines = [], [], [], []
    for name, document in sorted(wanted.items()):
        stored = current.get(name)
        if stored is None:
            created.append(name)
            changes.append(SpecChange(name, document, None))
            lines += _unified(name, None, document)
        elif dict(stored.document) != document:
            updated.append(name)
            changes.append(SpecChange(name, document, stored.version))
            lines += _unified(name, dict(stored.document), document)
    deleted = sorted(set(current) - set(wanted)) if prune else []
    for name in deleted:
        changes.append(SpecChange(name, None, current[name].version))
        lines += _unified(name, dict(current[name].document), None)
    return SpecDiff(created, updated, deleted, changes, "\n".join(lines))


def _unified(name: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> list[str]:
    def render(doc: dict[str, Any] | None) -> list[str]:
        return json.dumps(doc, indent=2, sort_keys=True).splitlines() if doc is not None else []

    label = f"job {name}"
    return list(
        difflib.unified_diff(
            render(old),
            render(new),
            fromfile=f"{label} (applied)" if old else "/dev/null",
            tofile=f"{label} (files)" if new else "/dev/null",
            lineterm="",
        )
    )


def apply_diff(store: StateStore, diff: SpecDiff) -> None:
    """One atomic, version-checked write: a concurrent apply makes this one fail with ConflictError."""
    if diff.changes:
        store.write_specs(diff.changes)

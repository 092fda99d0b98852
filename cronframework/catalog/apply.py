"""`apply`: the difference between job files and the applied specs, and the version-checked writes that make it so."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from cronframework.abc import OperatorStore
from cronframework.errors import ConflictError, StateStoreError
from cronframework.records import SpecChange, StoredSpec
from cronframework.spec.model import JobSpec


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


# One write_specs is one ZooKeeper transaction: well below its 1 MiB limit and 1,000 ops, which is a few hundred
# specs of ordinary size. Weights are the JSON documents plus room for each op's path, ACL and header.
SPEC_BATCH_BYTES = 200_000
SPEC_BATCH = 500


def spec_batches(changes: Sequence[SpecChange]) -> Iterator[list[SpecChange]]:
    """`changes` in order, cut into batches that each fit one transaction."""
    batch: list[SpecChange] = []
    size = 0
    for change in changes:
        weight = len(json.dumps(change.document)) + len(change.name) + 64
        if batch and (size + weight > SPEC_BATCH_BYTES or len(batch) >= SPEC_BATCH):
            yield batch
            batch, size = [], 0
        batch.append(change)
        size += weight
    if batch:
        yield batch


def apply_diff(store: OperatorStore, diff: SpecDiff) -> None:
    """Version-checked writes, atomic per batch (`spec_batches`): one batch holds a few hundred jobs, and a fleet
    larger than that must still be applicable. A concurrent apply fails this one with ConflictError; the batches
    written before the failing one stay (each spec is whole, every replica reloads them), the error says how many,
    and running apply again writes only what is still different."""
    total, written = len(diff.changes), 0
    for batch in spec_batches(diff.changes):
        try:
            store.write_specs(batch)
        except StateStoreError as exc:
            if not written:
                raise
            what = ConflictError if isinstance(exc, ConflictError) else StateStoreError
            raise what(f"{exc} ({written} of {total} changes were written before it; apply again)") from None
        written += len(batch)

"""`apply` of a fleet larger than one transaction: written batch after batch, and a conflict mid-way says how much
was written and leaves a state that a second apply completes."""

from __future__ import annotations

import pytest

from cronframework.catalog.apply import apply_diff, diff_specs, spec_batches
from cronframework.errors import ConflictError
from cronframework.records import SpecChange
from cronframework.spec.model import JobSpec
from cronframework.testing import MemoryStore


def fleet(count: int, argument: str = "") -> list[JobSpec]:
    return [
        JobSpec.model_validate(
            {
                "name": f"job-{i:05d}",
                "schedule": "? * * * *",
                "backend": "noop",
                "task": {"command": ["/bin/echo", argument]},
            }
        )
        for i in range(count)
    ]


def test_batches_keep_order_and_respect_both_limits() -> None:
    small = [SpecChange(f"s{i}", {"x": 1}, None) for i in range(1200)]
    assert [len(b) for b in spec_batches(small)] == [500, 500, 200]
    large = [SpecChange(f"l{i}", {"blob": "x" * 50_000}, None) for i in range(9)]
    batches = list(spec_batches(large))
    assert [len(b) for b in batches] == [3, 3, 3]  # 200 kB of documents at most in one transaction
    assert [c.name for b in batches for c in b] == [c.name for c in large]


def test_a_fleet_larger_than_one_batch_is_applied_whole() -> None:
    store = MemoryStore()
    apply_diff(store, diff_specs(fleet(1200), store.read_specs(), prune=False))
    assert len(store.read_specs()) == 1200
    assert diff_specs(fleet(1200), store.read_specs(), prune=False).empty


def test_a_conflict_in_a_later_batch_says_what_was_written_and_a_second_apply_completes_it() -> None:
    store = MemoryStore()
    diff = diff_specs(fleet(1200), store.read_specs(), prune=False)
    apply_diff(store, diff_specs([fleet(1200)[700]], store.read_specs(), prune=False))  # a concurrent apply
    batches = [[c.name for c in b] for b in spec_batches(diff.changes)]
    before = [name for b in batches[: next(i for i, b in enumerate(batches) if "job-00700" in b)] for name in b]
    assert 0 < len(before) < 700
    with pytest.raises(ConflictError, match=rf"job-00700.*{len(before)} of 1200 changes were written before it; apply"):
        apply_diff(store, diff)
    assert set(store.read_specs()) == set(before) | {"job-00700"}
    apply_diff(store, diff_specs(fleet(1200), store.read_specs(), prune=False))
    assert len(store.read_specs()) == 1200


def test_a_conflict_in_the_first_batch_is_the_store_s_own_error() -> None:
    store = MemoryStore()
    diff = diff_specs(fleet(3), store.read_specs(), prune=False)
    apply_diff(store, diff_specs(fleet(3)[1:2], store.read_specs(), prune=False))
    with pytest.raises(ConflictError) as raised:
        apply_diff(store, diff)
    assert "written before it" not in str(raised.value)
    assert set(store.read_specs()) == {"job-00001"}  # the first batch is atomic: nothing else was written

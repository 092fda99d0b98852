"""The open index's bookkeeping (which node lists which open launch), without ZooKeeper; the znodes themselves are
tested against a real server in integration/test_zookeeper_open_index.py."""

from __future__ import annotations

import threading

from cronframework.store.zookeeper.open_index import OpenIndex, decode_names, encode_names, node_name

A, B, C, D = (f"job-{i}-20261126t100000z" for i in "abcd")


def test_a_node_is_named_after_its_first_launch_and_lists_every_one() -> None:
    node = node_name([A, B, C])
    assert node == f"{A}+3"
    assert decode_names(encode_names([A, B, C])) == [A, B, C]


def test_a_node_is_emptied_only_by_all_of_its_open_launches() -> None:
    index = OpenIndex()
    index.add("n1", [A, B])
    index.add("n2", [C])
    assert index.emptied_by([A]) == []
    assert index.emptied_by([A, B, D]) == ["n1"]
    assert index.emptied_by([A, B, C]) == ["n1", "n2"]


def test_close_reports_the_nodes_left_empty_and_not_deleted() -> None:
    index = OpenIndex()
    index.add("n1", [A, B])
    index.add("n2", [C, D])
    assert index.close([A], deleted=[]) == []
    assert index.knows([B, C]) and not index.knows([A])
    assert index.close([B, C, D], deleted=["n2"]) == ["n1"]
    assert len(index) == 0
    index.forget(["n1"])
    assert index.close([], deleted=[]) == []


def test_a_node_read_with_no_open_launch_is_kept_empty_for_deletion() -> None:
    index = OpenIndex()
    index.replace({"stale": [], "n1": [A]})
    assert index.close([], deleted=[]) == ["stale"]
    assert index.emptied_by([A]) == ["n1"]  # an untouched empty node is not deleted with others' finishes


def test_replace_forgets_what_was_known() -> None:
    index = OpenIndex()
    index.add("n1", [A])
    index.replace({"n2": [B]})
    assert not index.knows([A]) and index.knows([B])


def test_begins_confirmed_on_one_thread_while_another_finishes_keep_the_index_whole() -> None:
    """A herd's launch stage finishes slices while the begin thread records the next slices' nodes (each slice
    keeps one launch open, so every finish walks a growing index)."""
    index = OpenIndex()
    errors: list[BaseException] = []
    slices = [[f"job-{s:04d}-{i:02d}-20261126t100000z" for i in range(5)] for s in range(3000)]

    def begin() -> None:
        try:
            for names in slices:
                index.add(node_name(names), names)
        except BaseException as exc:  # handed to the test's thread
            errors.append(exc)

    thread = threading.Thread(target=begin)
    thread.start()
    done = 0
    while done < len(slices):
        if not index.knows(slices[done]):
            continue
        finishing = slices[done][:-1]
        assert index.emptied_by(finishing) == []
        assert index.close(finishing, deleted=[]) == []
        done += 1
    thread.join()
    assert not errors
    last = [names[-1] for names in slices]
    emptied = index.emptied_by(last)
    assert len(emptied) == len(slices) and index.close(last, emptied) == [] and len(index) == 0

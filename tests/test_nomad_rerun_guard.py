"""A Nomad agent restarted with its state re-runs a raw_exec/exec task whose executor it cannot reattach, even one
that had already exited ("failed to restore task; will not run until server is contacted", then "Task started by
client" again): the restart and reschedule policies do not apply to it. The 60-minute fault run saw 19 tasks run
twice that way. The job's command must therefore refuse to run a second time in the same allocation.

These run the registered command the way the driver would, twice in one allocation directory (which Nomad keeps
across that restart), without an agent."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from backends.nomad_spec import NODE_MARKS_KEPT_MINUTES, RERUN_EXIT, RERUN_MARK, job_payload
from tests.backend_conformance import conformance_launch


def _task(argv: list[str], **spec: Any) -> dict[str, Any]:
    launch = conformance_launch("guard", argv, backend="nomad", **spec)
    task: dict[str, Any] = job_payload(launch)["TaskGroups"][0]["Tasks"][0]
    return task


def _start(task: dict[str, Any], alloc_dir: Path) -> subprocess.CompletedProcess[str]:
    """What the driver does: run Config.command with Config.args, NOMAD_ALLOC_DIR set to the allocation's dir."""
    config = task["Config"]
    nomad = {"NOMAD_ALLOC_DIR": str(alloc_dir), "NOMAD_ALLOC_ID": alloc_dir.parent.name, "NOMAD_JOB_ID": "guard-job"}
    env = {**os.environ, **task["Env"], **nomad, "NOMAD_NAMESPACE": "default"}
    return subprocess.run(
        [config["command"], *config["args"]], env=env, capture_output=True, text=True, timeout=10, check=False
    )


@pytest.mark.parametrize("driver", ["raw_exec", "exec"])
def test_a_second_start_in_the_same_allocation_does_not_run_the_task(tmp_path: Path, driver: str) -> None:
    alloc_dir, ran = _allocation(tmp_path / "data", "1a"), tmp_path / "ran.txt"
    task = _task(["/bin/sh", "-c", f"echo once >> {ran}; exit 3"], spec={"nomad": {"driver": driver}})
    first = _start(task, alloc_dir)
    second = _start(task, alloc_dir)
    assert ran.read_text().splitlines() == ["once"]
    assert first.returncode == 3, "the first start is the task itself: its exit code passes through"
    assert second.returncode == RERUN_EXIT and second.returncode != first.returncode


def test_each_allocation_runs_its_task_once(tmp_path: Path) -> None:
    ran = tmp_path / "ran.txt"
    task = _task(["/bin/sh", "-c", f'echo "$0 $1" >> {ran}', "a b", "c"])
    for alloc_id in ("1a", "2b"):
        assert _start(task, _allocation(tmp_path / "data", alloc_id)).returncode == 0
    assert ran.read_text().splitlines() == ["a b c", "a b c"], "arguments reach the task unchanged"


def test_no_allocation_dir_runs_nothing(tmp_path: Path) -> None:
    """Fail closed: without the directory that remembers a start, the task cannot be kept to one run."""
    ran = tmp_path / "ran.txt"
    task = _task(["/bin/sh", "-c", f"echo once >> {ran}"])
    config = task["Config"]
    env = {k: v for k, v in os.environ.items() if k != "NOMAD_ALLOC_DIR"}
    result = subprocess.run([config["command"], *config["args"]], env=env, capture_output=True, timeout=10, check=False)
    assert result.returncode != 0 and not ran.exists()


def _allocation(data_dir: Path, alloc_id: str) -> Path:
    """An allocation's shared dir as a Nomad client lays it out: <data_dir>/alloc/<alloc id>/alloc."""
    alloc_dir = data_dir / "alloc" / alloc_id / "alloc"
    alloc_dir.mkdir(parents=True)
    return alloc_dir


def test_an_allocation_run_again_after_the_client_collected_its_directory_does_not_run_the_task(
    tmp_path: Path,
) -> None:
    """The 60-minute fault run: the client ran an allocation, garbage-collected it (its directory, the first
    guard's mark with it), and after the agent's next restart ran the same allocation again in a new directory
    (24 tasks twice). The mark that counts outlives the allocation's directory."""
    ran = tmp_path / "ran.txt"
    task = _task(["/bin/sh", "-c", f"echo once >> {ran}"])
    alloc_dir = _allocation(tmp_path / "data", "3f2a")
    assert _start(task, alloc_dir).returncode == 0
    shutil.rmtree(alloc_dir.parent)  # the client's GC
    again = _start(task, _allocation(tmp_path / "data", "3f2a"))
    assert ran.read_text().splitlines() == ["once"]
    assert again.returncode == RERUN_EXIT


def test_marks_older_than_nomad_could_run_their_allocation_again_are_removed(tmp_path: Path) -> None:
    task = _task(["/bin/true"])
    marks = tmp_path / "data" / "alloc" / f".{RERUN_MARK}"
    marks.mkdir(parents=True)
    week_ago = time.time() - NODE_MARKS_KEPT_MINUTES * 60 - 3600
    for old in ("0ld", "0lder"):
        (marks / old).mkdir()
        os.utime(marks / old, (week_ago, week_ago))
    assert _start(task, _allocation(tmp_path / "data", "n3w")).returncode == 0
    assert sorted(p.name for p in marks.iterdir()) == [".pruned", "n3w"]

"""What every command line of this kind does: say its version, and stay quiet when its reader (`| head`) goes away."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cronframework import __version__
from cronframework.catalog.apply import apply_diff, diff_specs
from cronframework.spec.files import load_jobs_from_text
from cronframework.store.sqlite import SqliteStore

MANY_JOBS = "job:\n" + "".join(
    f"  job-{i:04}:\n    schedule: '*/5 * * * *'\n    backend: noop\n    task: {{command: [/bin/true]}}\n"
    for i in range(2000)
)


def cronframework(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cronframework", *args], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize("argv", [["--version"], ["version"]])
def test_version(argv: list[str]) -> None:
    result = cronframework(*argv)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"cronframework {__version__}"


def piped_into_head(*args: str) -> tuple[str, str, int]:
    """`cronframework ARGS | head -1`: the first line, the command's stderr and its exit code."""
    command = subprocess.Popen(
        [sys.executable, "-m", "cronframework", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert command.stdout is not None and command.stderr is not None
    head = subprocess.run(["head", "-1"], stdin=command.stdout, capture_output=True, text=True, check=True)
    command.stdout.close()
    err = command.stderr.read().decode()
    return head.stdout, err, command.wait(timeout=60)


@pytest.fixture
def many_jobs(tmp_path: Path) -> Path:
    path = tmp_path / "jobs.yaml"
    path.write_text(MANY_JOBS)
    return path


def test_plan_into_head_exits_quietly(many_jobs: Path) -> None:
    first, err, code = piped_into_head("plan", str(many_jobs), "--count", "20")
    assert first.strip()
    assert err == ""
    assert code == 141  # as if killed by SIGPIPE, like the shell tools in the same pipeline


def test_status_into_head_exits_quietly(tmp_path: Path, many_jobs: Path) -> None:
    state = tmp_path / "state"
    store = SqliteStore(state / "state.sqlite")
    try:
        specs = [loaded.spec for loaded in load_jobs_from_text(many_jobs.read_text())]
        apply_diff(store, diff_specs(specs, store.read_specs(), prune=False))
    finally:
        store.close()
    first, err, code = piped_into_head("status", "--state-dir", str(state), "--no-lookup")
    assert first.startswith("leader")
    assert err == ""
    assert code == 141

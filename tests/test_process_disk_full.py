"""The process backend on a full disk: a claim whose write fails is withdrawn, so the retry launches the task.

Seen in the chaos suite's disk fault (a full tmpfs under the state dir): the claim file was created (O_EXCL) but its
write failed with ENOSPC and the empty file stayed; the retried submit found it and answered "already existed", so
the launch was recorded as launched while nothing ever ran it."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from backends import process_runner as rt
from backends.process import ProcessBackend
from cronframework.errors import TransientBackendError
from cronframework.launch import LaunchState, SubmitOutcome
from tests.backend_conformance import conformance_launch, finished, unique_job, wait_for


def _disk_full_once(monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.fsync
    calls = {"n": 0}

    def fsync(fd: int) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


def test_a_claim_the_disk_refused_is_withdrawn_and_the_retry_runs_the_task(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = ProcessBackend(tmp_path / "state", kill_grace=1.0, start_grace=10.0)
    launch = conformance_launch(unique_job("full"), ["/bin/sh", "-c", "echo ran"])
    _disk_full_once(monkeypatch)
    with pytest.raises(TransientBackendError, match="No space left"):
        backend.submit(launch.name, launch)
    assert not (tmp_path / "state" / launch.name / rt.CLAIM).exists(), "a failed claim must not stay behind"
    monkeypatch.undo()
    assert backend.submit(launch.name, launch) is SubmitOutcome.SUBMITTED
    status = wait_for(lambda: backend.lookup(launch.name), finished, 10.0)
    assert status is not None and status.state is LaunchState.SUCCEEDED
    backend.close()


def test_create_exclusive_leaves_nothing_when_the_write_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _disk_full_once(monkeypatch)
    with pytest.raises(OSError):
        rt.create_exclusive(tmp_path / "claim", '{"claimed_at": "now"}')
    assert not (tmp_path / "claim").exists()
    monkeypatch.undo()
    assert rt.create_exclusive(tmp_path / "claim", '{"claimed_at": "now"}')

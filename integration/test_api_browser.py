"""The status page end to end: `cronframework run` (embedded) serves it, headless Chromium renders it.

Chromium comes from Debian's package; the test installs it when missing and fails loudly if it cannot run.
The screenshot is kept under the test's tmp dir (and copied to $CRONFRAMEWORK_SCREENSHOT_DIR when set).
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from integration.replicas import wait_for

CHROMIUM = "/usr/bin/chromium"
JOBS = """
job:
  beat:
    schedule: "* * * * * *"
    backend: process
    task:
      command: ["/bin/sh", "-c", "echo beat"]
  nightly-report:
    schedule: "30 2 * * *"
    timezone: Europe/Paris
    backend: process
    task:
      command: ["/bin/true"]
"""
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def chromium() -> str:
    if not Path(CHROMIUM).exists():
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        done = subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], capture_output=True, text=True, env=env)
        if done.returncode != 0 or not Path(CHROMIUM).exists():
            pytest.fail(f"chromium is missing and `apt-get install chromium` failed:\n{done.stderr[-2000:]}")
    return CHROMIUM


def browse(url: str, profile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-proxy-server",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=3000",
        *extra,
        url,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        pytest.fail(f"chromium failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[str]:
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text(JOBS)
    log_path = tmp_path / "run.log"
    cmd = [
        sys.executable,
        "-m",
        "cronframework",
        "run",
        str(jobs),
        "--state-dir",
        str(tmp_path / "state"),
        "--api-port",
        "0",
        "--log-json",
    ]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=log)
    try:
        url = wait_for(lambda: _api_url(log_path), 20)
        assert url, f"`cronframework run` logged no API address:\n{log_path.read_text()[-3000:]}"
        yield str(url)
    finally:
        proc.terminate()
        proc.wait(15)


def _api_url(log_path: Path) -> str | None:
    for line in log_path.read_text().splitlines():
        if line.startswith("{") and json.loads(line).get("event") == "api listening":
            return str(json.loads(line)["api_url"])
    return None


def _history(url: str) -> list[dict[str, object]]:
    with _OPENER.open(f"{url}/v1/jobs/beat/history?limit=5", timeout=10) as reply:
        return list(json.loads(reply.read()))


def png_size(path: Path) -> tuple[int, int]:
    raw = path.read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", raw[16:24])
    return width, height


def test_status_page_renders_jobs_launches_and_leader_in_chromium(embedded: str, tmp_path: Path) -> None:
    assert wait_for(lambda: any(r.get("outcome") == "submitted" for r in _history(embedded)), 30)
    dom = browse(f"{embedded}/", tmp_path / "profile", "--dump-dom").stdout
    assert 'data-job="beat"' in dom and 'data-job="nightly-report"' in dom
    assert '<span class="outcome submitted">submitted</span>' in dom
    assert "beat-20" in dom  # the last launch's name
    assert '<b id="leader">' in dom and '<b id="leader">none</b>' not in dom
    assert " ago)" in dom or "(in " in dom  # the script ran: relative times were added
    detail = browse(f"{embedded}/jobs/nightly-report", tmp_path / "profile", "--dump-dom").stdout
    assert "Europe/Paris" in detail and "nightly-report-20" in detail and 'id="history"' in detail

    shot = tmp_path / "status.png"
    browse(f"{embedded}/", tmp_path / "profile", f"--screenshot={shot}", "--window-size=1200,600")
    assert png_size(shot) == (1200, 600) and shot.stat().st_size > 10_000
    keep = os.environ.get("CRONFRAMEWORK_SCREENSHOT_DIR")
    if keep:
        shutil.copy(shot, Path(keep) / "status-page.png")

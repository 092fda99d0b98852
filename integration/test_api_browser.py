"""The status page end to end: `cronframework run` (embedded) serves it, headless Chromium renders and drives it.

Chromium (Debian's package) is driven over the DevTools protocol on a pipe (--remote-debugging-pipe): no extra
client library, no network port. Tested as a person uses it: the job list with its leader, results and times in
each job's zone; a search; a job's page; an action refused without the token and done with it; a launch's output.
Screenshots are kept under the test's tmp dir (copied to $CRONFRAMEWORK_SCREENSHOT_DIR when set: docs/img/).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from integration.replicas import wait_for

CHROMIUM = "/usr/bin/chromium"
TOKEN = "browser-test-token"
JOBS = """
job:
  beat:
    schedule: "* * * * * *"
    backend: process
    task:
      command: ["/bin/sh", "-c", "echo beat output $CRONFRAMEWORK_LAUNCH"]
  nightly-report:
    schedule: "30 2 * * *"
    timezone: Europe/Paris
    backend: process
    task:
      command: ["/bin/true"]
  broken-pipe:
    schedule: "*/2 * * * * *"
    backend: process
    task:
      command: ["/bin/sh", "-c", "echo failing >&2; exit 3"]
"""
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Chromium:
    """Headless Chromium driven over the DevTools protocol on fds 3 and 4 (JSON messages ended by NUL)."""

    def __init__(self, profile: Path) -> None:
        if not Path(CHROMIUM).exists():
            pytest.fail(f"{CHROMIUM} is missing: scripts/install-deps.sh installs Debian's chromium")
        to_browser, self._commands = os.pipe()
        self._replies, from_browser = os.pipe()
        cmd = [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--no-proxy-server",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            "--remote-debugging-pipe",
            "about:blank",
        ]

        def onto_3_and_4() -> None:  # in the child: the pipe ends may themselves be fds 3 or 4
            high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_browser, from_browser)]
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)

        self._process = subprocess.Popen(
            cmd,
            close_fds=False,
            preexec_fn=onto_3_and_4,
            stderr=subprocess.DEVNULL,  # close_fds would close 3 and 4
        )
        os.close(to_browser)
        os.close(from_browser)
        self._ids, self._buffer, self._session = 0, b"", ""
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self._session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Page.enable")

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._ids += 1
        message: dict[str, Any] = {"id": self._ids, "method": method, "params": params}
        if self._session:
            message["sessionId"] = self._session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._ids:
                if "error" in reply:
                    raise AssertionError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result

    def _read(self) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            chunk = os.read(self._replies, 1 << 16)
            if not chunk:
                raise AssertionError("chromium closed the DevTools pipe")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        parsed: dict[str, Any] = json.loads(raw)
        return parsed

    def open(self, url: str, width: int = 1280, height: int = 720) -> None:
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
        self.call("Page.navigate", url=url)
        self.until("document.readyState === 'complete' && location.href !== 'about:blank'")

    def js(self, expression: str) -> Any:
        reply = self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in reply:
            raise AssertionError(f"{expression}: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    def until(self, expression: str, timeout: float = 15.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.js(expression)
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"not true within {timeout}s: {expression}")

    def text(self, selector: str) -> str:
        return str(self.js(f"(document.querySelector({json.dumps(selector)}) || {{}}).innerText || ''"))

    def screenshot(self, path: Path, height: int | None = None) -> Path:
        full = height or int(self.js("document.documentElement.scrollHeight"))
        self.call("Emulation.setDeviceMetricsOverride", width=1280, height=full, deviceScaleFactor=1, mobile=False)
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))
        return path

    def close(self) -> None:
        self._process.terminate()
        self._process.wait(15)
        os.close(self._commands)
        os.close(self._replies)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Chromium]:
    chromium = Chromium(tmp_path / "profile")
    yield chromium
    chromium.close()


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[str]:
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text(JOBS)
    log_path = tmp_path / "run.log"
    cmd = [sys.executable, "-m", "cronframework", "run", str(jobs), "--state-dir", str(tmp_path / "state")]
    cmd += ["--api-port", "0", "--log-json"]
    env = {**os.environ, "CRONFRAMEWORK_API_TOKEN": TOKEN}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=log, env=env)
    try:
        url = wait_for(lambda: _api_url(log_path), 20)
        assert url, f"`cronframework run` logged no API address:\n{log_path.read_text()[-3000:]}"
        ran = wait_for(lambda: _finished(str(url), "beat") and _finished(str(url), "broken-pipe"), 30)
        assert ran, log_path.read_text()[-3000:]
        yield str(url)
    finally:
        proc.terminate()
        proc.wait(15)


def _api_url(log_path: Path) -> str | None:
    for line in log_path.read_text().splitlines():
        if line.startswith("{") and json.loads(line).get("event") == "api listening":
            return str(json.loads(line)["api_url"])
    return None


def _get(url: str) -> Any:
    with _OPENER.open(url, timeout=10) as reply:
        return json.loads(reply.read())


def _finished(url: str, job: str) -> bool:
    return any(r.get("outcome") == "submitted" for r in _get(f"{url}/v1/jobs/{job}/history?limit=3"))


def png_size(path: Path) -> tuple[int, int]:
    raw = path.read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", raw[16:24])
    return width, height


def keep(shot: Path, name: str) -> None:
    folder = os.environ.get("CRONFRAMEWORK_SCREENSHOT_DIR")
    if folder:
        shutil.copy(shot, Path(folder) / name)


def test_the_job_list_renders_leader_results_and_times_in_each_jobs_zone(
    embedded: str, browser: Chromium, tmp_path: Path
) -> None:
    browser.open(f"{embedded}/")
    rows = browser.js("[...document.querySelectorAll('#jobs tbody tr')].map(r => r.dataset.job)")
    assert rows == ["beat", "broken-pipe", "nightly-report"]
    assert browser.text("#leader") not in ("", "none")
    # beat launches every second: as the page is rendered its last launch may be between its two sync points, or
    # submitted with its task's result still to come, or already followed to its result
    badge = browser.js("document.querySelector('tr[data-job=beat] .badge').textContent")
    assert badge in ("submitted", "begun", "succeeded")
    nightly_next = browser.text("tr[data-job=nightly-report] td:nth-child(3)")
    assert "02:30:00 CE" in nightly_next and "in " in nightly_next  # Paris time, relative to now
    assert re.search(r"UTC (now|\d+ s ago)$", browser.text("tr[data-job=beat] td:nth-child(4)"))
    assert browser.js("document.querySelectorAll('tr[data-job=beat] .strip .run.ok').length") >= 1
    shot = browser.screenshot(tmp_path / "status-page.png")
    assert png_size(shot)[0] == 1280 and shot.stat().st_size > 10_000
    keep(shot, "status-page.png")


def test_search_narrows_the_list_and_keeps_the_query(embedded: str, browser: Chromium) -> None:
    browser.open(f"{embedded}/")
    browser.js("document.querySelector('#search input[name=q]').value = 'night'")
    browser.js("document.querySelector('#search').submit()")
    browser.until("location.search.includes('q=night') && document.readyState === 'complete'")
    assert browser.js("[...document.querySelectorAll('#jobs tbody tr')].map(r => r.dataset.job)") == ["nightly-report"]
    assert "1" in browser.text(".pager .count") and "(3 jobs in all)" in browser.text(".pager .count")
    browser.open(f"{embedded}/?state=paused")
    assert browser.text("#jobs tbody") == "no jobs match"


def test_an_action_is_refused_without_the_token_and_done_with_it(
    embedded: str, browser: Chromium, tmp_path: Path
) -> None:
    browser.open(f"{embedded}/jobs/nightly-report")
    assert "Europe/Paris" in browser.text("main") and browser.js("document.querySelectorAll('#next tbody tr').length")
    browser.js("document.querySelector('button[data-action=pause]').click()")
    refused = browser.until("document.getElementById('outcome').textContent")
    assert "401" in refused and _get(f"{embedded}/v1/jobs/nightly-report")["paused"] is False
    browser.js(f"document.getElementById('token').value = {json.dumps(TOKEN)}")
    browser.js("document.querySelector('button[data-action=pause]').click()")
    assert "paused" in browser.until("document.getElementById('outcome').className === 'ok' && outcome.textContent")
    assert _get(f"{embedded}/v1/jobs/nightly-report")["paused"] is True
    keep(browser.screenshot(tmp_path / "job-page.png"), "job-page.png")


def test_a_launch_page_shows_its_output_with_the_token(embedded: str, browser: Chromium, tmp_path: Path) -> None:
    browser.open(f"{embedded}/jobs/beat")
    link = browser.js("document.querySelector('#history tbody tr:has(.badge.ok) a').getAttribute('href')")
    browser.open(f"{embedded}{link}")
    browser.js("document.getElementById('show-logs').click()")
    assert "401" in browser.until("document.getElementById('output').textContent")
    browser.js(f"document.getElementById('token').value = {json.dumps(TOKEN)}")
    browser.js("document.getElementById('show-logs').click()")
    output = browser.until(
        "document.getElementById('output').textContent.includes('beat output') && output.textContent"
    )
    assert link.rsplit("/", 1)[-1] in output
    keep(browser.screenshot(tmp_path / "launch-page.png"), "launch-page.png")

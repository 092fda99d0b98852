"""deploy/: the Nomad job runs three replicas on the dev agent (raw_exec) against a real ZooKeeper, one leads, and a
launch triggered through a replica's API goes through (the scheduler launches it on the same Nomad); the systemd unit
passes `systemd-analyze verify`.

The job file is the one in deploy/nomad, parsed and registered through Nomad's own HTTP API, with the variables an
operator passes (`-var`): the ensemble, a fresh root, this checkout's interpreter, and distinct_hosts=false (the dev
agent is one node). The API token comes from the Nomad variable the job's template reads.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from integration.nomad_agent import NomadAgent, NomadAgentError
from integration.replicas import wait_for

REPO = Path(__file__).resolve().parent.parent
JOB_FILE = REPO / "deploy" / "nomad" / "cronframework.nomad.hcl"
UNIT_FILE = REPO / "deploy" / "systemd" / "cronframework.service"
TOKEN = "nomad-deploy-token"
JOBS = """
job:
  hello:
    schedule: "0 3 * * *"
    backend: nomad
    task:
      command: ["/bin/sh", "-c", "echo hello from $CRONFRAMEWORK_LAUNCH"]
"""
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http(url: str, method: str = "GET", token: str | None = None, data: bytes | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with _OPENER.open(urllib.request.Request(url, data=data, headers=headers, method=method), timeout=15) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")
    except (urllib.error.URLError, OSError):
        return 0, None


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[NomadAgent]:
    nomad = NomadAgent(tmp_path / "nomad")
    try:
        nomad.start()
    except NomadAgentError as error:
        nomad.stop()
        pytest.fail(f"cannot start a Nomad dev agent (scripts/nomad.sh): {error}")
    yield nomad
    try:
        _collect_allocations(nomad)
    finally:
        nomad.stop()


def _collect_allocations(agent: NomadAgent, timeout: float = 60.0) -> None:
    """Purge the job and let the client collect its allocations, so no tmpfs mount of an allocation's secrets
    directory outlives the test (a dev agent's stop leaves those of allocations it had not collected yet)."""
    with contextlib.suppress(urllib.error.URLError, OSError):
        agent.api("DELETE", "/v1/job/cronframework?purge=true")
    folder = agent.workdir / "data" / "alloc"

    def collected() -> bool:
        with contextlib.suppress(urllib.error.URLError, OSError):
            agent.api("PUT", "/v1/client/gc")
        return not any(folder.glob("*"))

    wait_for(collected, timeout, interval=0.5)


def _command(tmp_path: Path) -> list[str]:
    """This checkout's cronframework, as the job's `command` variable runs it on a node."""
    wrapper = tmp_path / "cronframework"
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH={REPO} exec {sys.executable} -m cronframework "$@"\n')
    wrapper.chmod(0o755)
    return [str(wrapper)]


def _variables(**values: Any) -> str:
    return "\n".join(f"{name} = {json.dumps(value)}" for name, value in values.items())


def _apply(zk_hosts: str, zk_root: str, tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text(JOBS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRONFRAMEWORK_")}
    cmd = [sys.executable, "-m", "cronframework", "apply", str(jobs), "--zk", zk_hosts, "--root", zk_root]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env={**env, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr


def _api_urls(agent: NomadAgent) -> list[str]:
    """The replicas' API addresses, from the Nomad service the job registers."""
    try:
        services = agent.api("GET", "/v1/service/cronframework") or []
    except (urllib.error.URLError, OSError):
        return []
    return sorted(f"http://{s['Address']}:{s['Port']}" for s in services)


def _running(agent: NomadAgent) -> list[dict[str, Any]]:
    allocations = agent.api("GET", "/v1/job/cronframework/allocations") or []
    return [a for a in allocations if a["ClientStatus"] == "running"]


def test_the_nomad_job_runs_three_replicas_one_leads_and_a_launch_goes_through(
    agent: NomadAgent, zk_hosts: str, zk_root: str, tmp_path: Path
) -> None:
    _apply(zk_hosts, zk_root, tmp_path)
    agent.api("PUT", "/v1/var/nomad/jobs/cronframework", {"Items": {"api_token": TOKEN}})
    variables = _variables(
        zookeeper=zk_hosts, root=zk_root, command=_command(tmp_path), distinct_hosts=False, nomad_addr=agent.address
    )
    parsed = agent.api("POST", "/v1/jobs/parse", {"JobHCL": JOB_FILE.read_text(), "Variables": variables})
    agent.api("POST", "/v1/jobs", {"Job": parsed})
    try:
        three = wait_for(lambda: len(_running(agent)) == 3 and len(_api_urls(agent)) == 3, 120)
        assert three, (
            f"allocations: {[a['ClientStatus'] for a in agent.api('GET', '/v1/job/cronframework/allocations')]}"
        )
        urls = _api_urls(agent)
        replicas = wait_for(lambda: _elected(urls[0]), 60)
        assert replicas and len(replicas) == 3, replicas
        leaders = {http(f"{url}/readyz")[1]["leader"] for url in urls}
        assert leaders == {True, False}
        assert sum(http(f"{url}/readyz")[1]["leader"] for url in urls) == 1
        follower = next(url for url in urls if not http(f"{url}/readyz")[1]["leader"])
        assert http(f"{follower}/v1/jobs/hello/trigger", "POST")[0] == 401  # the token is the Nomad variable's
        status, body = http(f"{follower}/v1/jobs/hello/trigger", "POST", TOKEN, b"{}")
        assert status == 202, body
        launched = wait_for(lambda: _launched(follower), 60)
        assert launched, http(f"{follower}/v1/jobs/hello/history")
        assert wait_for(lambda: _nomad_job_for(agent, launched), 30), f"no Nomad job for {launched}"
    finally:
        _collect_allocations(agent)


def _elected(url: str) -> list[dict[str, Any]] | None:
    status, body = http(f"{url}/v1/replicas")
    members = body["replicas"] if status == 200 else []
    return members if len(members) == 3 and all(m.get("api") for m in members) else None


def _launched(url: str) -> str | None:
    status, records = http(f"{url}/v1/jobs/hello/history?limit=5")
    done = [r for r in records or [] if r["manual"] and r["outcome"] == "submitted"] if status == 200 else []
    return str(done[0]["name"]) if done else None


def _nomad_job_for(agent: NomadAgent, launch: str) -> bool:
    jobs = agent.api("GET", "/v1/jobs") or []
    return any(launch in job["ID"] or launch == (job.get("Meta") or {}).get("cronframework.launch") for job in jobs)


def test_the_systemd_unit_verifies(tmp_path: Path) -> None:
    """`systemd-analyze verify` checks every key and that ExecStart runs: the installed path is put in place of
    /opt/cronframework's for the check, nothing else changes."""
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing (Debian's systemd package)"
    unit = tmp_path / "cronframework.service"
    unit.write_text(UNIT_FILE.read_text().replace("/opt/cronframework/venv/bin/cronframework", sys.executable))
    done = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr
    assert "scheduler --config" in UNIT_FILE.read_text() and "Restart=always" in UNIT_FILE.read_text()

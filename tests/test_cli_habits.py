"""The command line's habits: help with examples, -o json|table, status JOB, show, delete, logs -f, connection
defaults from the environment, remote operation through a replica's API (--addr), shell completion."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cronframework.adapters import BackendSet
from cronframework.api import Api, ApiServer, LocalCluster, TokenAuth
from cronframework.catalog.apply import spec_document
from cronframework.cli import SUBCOMMANDS, build_parser, main
from cronframework.cli.common import ENV_ADDR, ENV_ROOT, ENV_TOKEN, ENV_ZK, remote_addr, zk_config, zk_hosts
from cronframework.cli.logs import added, follow
from cronframework.spec.files import load_jobs_from_text
from cronframework.testing import FakeBackend
from tests import test_cli_operations as operations
from tests.leader_harness import Cluster, job

JOBS = operations.JOBS
jobs, state = operations.jobs, operations.state  # fixtures: the job file, and an embedded state dir holding it

TOKEN = "cli-remote-token"
JOB_COMMANDS = ("status", "show", "delete", "history", "trigger", "pause", "resume", "logs")


def run(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


# -- help, names, output formats ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", [n for n in SUBCOMMANDS])
def test_every_subcommand_says_what_it_does_with_an_example(name: str) -> None:
    parser = _subparsers(build_parser())[name]
    text = parser.format_help()
    assert parser.description and "example" in text, text
    assert f"cronframework {name}" in parser.epilog or name == "completion" or "source <(" in parser.epilog


def test_every_command_on_a_job_names_its_argument_job() -> None:
    for name in JOB_COMMANDS:
        positionals = [a for a in _subparsers(build_parser())[name]._actions if not a.option_strings]
        assert [a.metavar for a in positionals if a.dest == "job"] == ["JOB"], name


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_o_json_is_json_and_the_same_as_the_json_flag(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, with_o, _ = run("status", "--state-dir", str(state), "--no-lookup", "-o", "json", capsys=capsys)
    _, with_flag, _ = run("status", "--state-dir", str(state), "--no-lookup", "--json", capsys=capsys)
    assert json.loads(with_o) == json.loads(with_flag) and [j["job"] for j in json.loads(with_o)["jobs"]]
    _, names, _ = run("status", "--state-dir", str(state), "-o", "name", capsys=capsys)
    assert names.split() == ["asleep", "beat"]


def test_status_of_one_job_shows_its_schedule_and_next_launches(
    state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run("status", "beat", "--state-dir", str(state), "--no-lookup", "-o", "json", capsys=capsys)
    detail = json.loads(out)
    assert code == 0 and detail["job"] == "beat" and detail["schedule"] == "0 3 * * *"
    assert len(detail["next_launches"]) == 5 and "task" not in detail
    _, table, _ = run("status", "beat", "--state-dir", str(state), "--no-lookup", capsys=capsys)
    assert "schedule:  0 3 * * * (UTC) on process" in table and detail["next_launches"][0]["name"] in table
    code, _, err = run("status", "beet", "--state-dir", str(state), capsys=capsys)
    assert code == 1 and "unknown job 'beet'" in err and "beat" in err


def test_show_prints_a_job_file_that_loads_back_as_the_applied_spec(
    state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run("show", "beat", "--state-dir", str(state), capsys=capsys)
    [loaded] = load_jobs_from_text(out)
    applied = next(j for j in load_jobs_from_text(JOBS) if j.spec.name == "beat")
    assert code == 0 and spec_document(loaded.spec) == spec_document(applied.spec)
    _, as_json, _ = run("show", "beat", "--state-dir", str(state), "-o", "json", capsys=capsys)
    assert json.loads(as_json)["task"]["command"] == ["/bin/true"]


def test_delete_into_embedded_state_is_refused_as_apply_is(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run("delete", "beat", "--state-dir", str(state), capsys=capsys)
    assert code == 1 and "delete writes to a ZooKeeper cluster" in err
    _, out, _ = run("status", "--state-dir", str(state), "-o", "name", capsys=capsys)
    assert "beat" in out.split()


# -- environment defaults ---------------------------------------------------------------------------------------
def _args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["status", *argv])


@pytest.mark.parametrize(
    ("env", "argv", "addr", "zk"),
    [
        ({}, [], None, None),
        ({ENV_ZK: "zk9:2181"}, [], None, "zk9:2181"),
        ({ENV_ZK: "zk9:2181"}, ["--zk", "zk1:2181"], None, "zk1:2181"),  # a flag beats the environment
        ({ENV_ADDR: "http://cron1:8461", ENV_ZK: "zk9:2181"}, [], "http://cron1:8461", "zk9:2181"),
        ({ENV_ADDR: "http://cron1:8461"}, ["--zk", "zk1:2181"], None, "zk1:2181"),  # --zk: the store, not the API
        ({ENV_ADDR: "http://cron1:8461"}, ["--state-dir", "/tmp/s"], None, None),
        ({ENV_ZK: "zk9:2181"}, ["--addr", "http://cron2:8461"], "http://cron2:8461", "zk9:2181"),
    ],
)
def test_connection_defaults_come_from_the_environment_and_flags_win(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], argv: list[str], addr: str | None, zk: str | None
) -> None:
    for name in (ENV_ZK, ENV_ADDR, ENV_ROOT):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    args = _args(*argv)
    assert (remote_addr(args), zk_hosts(args)) == (addr, zk)


def test_the_root_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_ROOT, "/team-a")
    assert zk_config(_args("--zk", "zk1:2181")).root == "/team-a"
    assert zk_config(_args("--zk", "zk1:2181", "--root", "/team-b")).root == "/team-b"


# -- remote operation through a replica's API -------------------------------------------------------------------
@dataclass
class LoggingBackend(FakeBackend):
    output: dict[str, str] = field(default_factory=dict)

    def logs(self, name: str) -> str:
        return self.output.get(name, "")


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Cluster, str]]:
    cluster = Cluster(backend=LoggingBackend())
    cluster.apply(job("beat"), job("report", "*/5 * * * *"))
    session, _ = cluster.leader()
    session.promote()
    cluster.run_for(session, 120)
    view = LocalCluster("r1", epoch=lambda: 1)
    backends = BackendSet(preset={"fake": cluster.backend})
    server = ApiServer(Api(cluster.store, view, TokenAuth(TOKEN), cluster.clock, backends)).start()
    for name in (ENV_ZK, ENV_ADDR, ENV_ROOT, ENV_TOKEN):
        monkeypatch.delenv(name, raising=False)
    yield cluster, server.url
    server.close()


def test_reads_go_through_the_api_with_the_same_keys(
    served: tuple[Cluster, str], capsys: pytest.CaptureFixture[str]
) -> None:
    cluster, url = served
    code, out, _ = run("status", "--addr", url, "-o", "json", capsys=capsys)
    assert code == 0 and [j["job"] for j in json.loads(out)["jobs"]] == ["beat", "report"]
    code, out, _ = run("history", "beat", "--addr", url, "--limit", "2", "-o", "json", capsys=capsys)
    assert [r["name"] for r in json.loads(out)] == [r.name for r in cluster.store.history("beat", 2)]
    code, out, _ = run("status", "report", "--addr", url, capsys=capsys)
    assert code == 0 and "schedule:  */5 * * * *" in out


def test_writes_go_through_the_api_with_the_token_from_the_environment(
    served: tuple[Cluster, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster, url = served
    monkeypatch.setenv(ENV_ADDR, url)
    code, _, err = run("pause", "beat", capsys=capsys)
    assert code == 1 and f"{url}: 401" in err and cluster.store.read_paused() == set()
    monkeypatch.setenv(ENV_TOKEN, TOKEN)
    assert run("pause", "beat", capsys=capsys)[0] == 0 and cluster.store.read_paused() == {"beat"}
    assert run("resume", "beat", capsys=capsys)[0] == 0 and cluster.store.read_paused() == set()
    code, _, _ = run("trigger", "report", "--force", capsys=capsys)
    assert code == 0 and [(t.job, t.force) for t in cluster.store.pending_triggers()] == [("report", True)]
    code, _, err = run("trigger", "nope", capsys=capsys)
    assert code == 1 and "404" in err and "unknown job 'nope'" in err


def test_logs_through_the_api_need_the_token(
    served: tuple[Cluster, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster, url = served
    latest = cluster.store.history("beat", 1)[0].name
    assert isinstance(cluster.backend, LoggingBackend)
    cluster.backend.output[latest] = "hello from beat\n"
    assert run("logs", "beat", "--addr", url, capsys=capsys)[0] == 1
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    code, out, _ = run("logs", "beat", "--addr", url, "--token-file", str(token_file), capsys=capsys)
    assert (code, out) == (0, "hello from beat\n")


def test_an_unreachable_api_is_one_line_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run("status", "--addr", "http://127.0.0.1:9", capsys=capsys)
    assert code == 1 and err.startswith("error: cannot reach the API at http://127.0.0.1:9") and err.count("\n") == 1


# -- logs -f ------------------------------------------------------------------------------------------------------
@dataclass
class GrowingLaunch:
    """Output that grows at each look, and a launch that ends after `runs` looks."""

    chunks: list[str]
    runs: int
    looks: int = 0

    def latest(self) -> str:
        return "beat-1"

    def logs(self, launch: str) -> str:
        return "".join(self.chunks[: self.looks])

    def running(self, launch: str) -> bool:
        self.looks += 1
        return self.looks < self.runs


def test_follow_prints_each_addition_once_until_the_launch_ends(capsys: pytest.CaptureFixture[str]) -> None:
    launch = GrowingLaunch(["one\n", "two\n", "three\n", "four\n"], runs=4)
    naps: list[float] = []
    follow(launch, "beat-1", naps.append, 0.5)
    assert capsys.readouterr().out == "one\ntwo\nthree\nfour\n"
    assert naps == [0.5, 0.5, 0.5]


@pytest.mark.parametrize(
    ("shown", "text", "new"),
    [("", "a\n", "a\n"), ("a\n", "a\nb\n", "b\n"), ("out\nerr\n", "out\nmore\nerr\n", "more\nerr\n")],
)
def test_what_follow_adds(shown: str, text: str, new: str) -> None:
    assert added(shown, text) == new


# -- shell completion ---------------------------------------------------------------------------------------------
def _complete(script: Path, line: list[str], env: dict[str, str]) -> list[str]:
    words = " ".join(f"'{w}'" for w in line)
    probe = f"source {script}; COMP_WORDS=({words}); COMP_CWORD={len(line) - 1}; _cronframework; "
    probe += 'printf "%s\\n" "${COMPREPLY[@]}"'
    done = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, env=env, timeout=60, check=True)
    return done.stdout.split()


@pytest.fixture
def completion_env(tmp_path: Path, state: Path) -> dict[str, str]:
    """`cronframework` on PATH, and the embedded state where it looks by default."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "cronframework"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} -m cronframework "$@"\n')
    wrapper.chmod(0o755)
    xdg = tmp_path / "xdg"
    (xdg / "cronframework").mkdir(parents=True)
    state.rename(xdg / "cronframework" / "embedded")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRONFRAMEWORK_")}
    return {**env, "PATH": f"{bin_dir}:{env['PATH']}", "XDG_STATE_HOME": str(xdg)}


def test_bash_completes_commands_flags_values_and_job_names(
    tmp_path: Path, completion_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["completion", "bash"]) == 0
    script = tmp_path / "cronframework.bash"
    script.write_text(capsys.readouterr().out)
    assert _complete(script, ["cronframework", "st"], completion_env) == ["status"]
    assert set(_complete(script, ["cronframework", "status", "-o", ""], completion_env)) == {"table", "json", "name"}
    assert "--follow" in _complete(script, ["cronframework", "logs", "--f"], completion_env)
    assert _complete(script, ["cronframework", "trigger", "b"], completion_env) == ["beat"]
    assert set(_complete(script, ["cronframework", "pause", ""], completion_env)) == {"asleep", "beat"}


def test_zsh_completion_is_the_bash_function_through_bashcompinit(capsys: pytest.CaptureFixture[str]) -> None:
    main(["completion", "bash"])
    bash = capsys.readouterr().out
    main(["completion", "zsh"])
    zsh = capsys.readouterr().out
    assert zsh.startswith("#compdef cronframework") and "bashcompinit" in zsh and zsh.endswith(bash)


def test_the_generated_script_is_valid_bash(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    main(["completion", "bash"])
    script = tmp_path / "c.bash"
    script.write_text(capsys.readouterr().out)
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True, check=False).returncode == 0

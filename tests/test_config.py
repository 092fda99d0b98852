"""The scheduler's config file (also `run --config`): errors name file:line:col, flags override the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from cronframework.cluster.config import load_config, load_embedded_config
from cronframework.errors import CronframeworkError


def config_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "scheduler.yaml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("text", "where", "field"),
    [
        ("scheduler:\n  workers: many\n", ":2:12", "scheduler.workers"),  # the value
        ("scheduler:\n  poll_intervall: 2\n", ":2:3", "scheduler.poll_intervall"),  # the unknown key
        ("api: {}\nbackend:\n  process: {}\n", ":2:1", "backend"),
        ("snapshot:\n  keep: 3\n", ":1:1", "snapshot.dir"),  # missing: the section that lacks it
        ("api:\n  port: 1\n  port: 2\n", ":3:3", None),  # duplicate key
        ("- scheduler\n", ":1:1", None),  # not a mapping
    ],
)
def test_errors_name_the_file_line_and_column(tmp_path: Path, text: str, where: str, field: str | None) -> None:
    path = config_file(tmp_path, text)
    with pytest.raises(CronframeworkError) as caught:
        load_config(path, {})
    message = str(caught.value)
    assert message.startswith(f"{path}{where}: ")
    assert field is None or f"field {field!r}" in message


def test_an_unknown_key_suggests_the_one_meant(tmp_path: Path) -> None:
    with pytest.raises(CronframeworkError, match="'backends'"):
        load_config(config_file(tmp_path, "backend: {}\n"), {})
    with pytest.raises(CronframeworkError, match="'poll_interval'"):
        load_config(config_file(tmp_path, "scheduler: {poll_intervall: 2}\n"), {})


def test_flags_override_the_file_and_their_errors_name_the_flags(tmp_path: Path) -> None:
    path = config_file(tmp_path, "api:\n  port: 9000\n  host: 0.0.0.0\n")
    assert load_config(path, {"api": {"port": 9100, "host": None}}).api.model_dump(include={"port", "host"}) == {
        "port": 9100,
        "host": "0.0.0.0",
    }
    with pytest.raises(CronframeworkError) as caught:
        load_config(path, {"api": {"port": 70000}})
    assert str(caught.value).startswith("flags: field 'api.port'")


def test_an_empty_section_takes_flags(tmp_path: Path) -> None:
    path = config_file(tmp_path, "api:\nscheduler:\n  workers: 4\n")
    assert load_config(path, {"api": {"port": 9100}}).api.port == 9100


def test_the_embedded_mode_refuses_the_zookeeper_section(tmp_path: Path) -> None:
    path = config_file(tmp_path, "backends: {}\nzookeeper:\n  hosts: zk1:2181\n")
    assert load_config(path, {}).zookeeper.hosts == "zk1:2181"
    with pytest.raises(CronframeworkError) as caught:
        load_embedded_config(path, {})
    assert str(caught.value).startswith(f"{path}:2:1: ")


def test_the_embedded_leader_takes_the_scheduler_and_snapshot_sections(tmp_path: Path) -> None:
    path = config_file(tmp_path, "scheduler: {poll_interval: 0.5}\nsnapshot: {dir: /backups}\n")
    leader = load_embedded_config(path, {}).leader_config(cluster="embedded", source="/var/state")
    assert (leader.cluster, leader.poll_interval) == ("embedded", 0.5)
    assert leader.snapshot is not None and leader.snapshot.source == "/var/state"

"""The config file's zookeeper.tls section: the files a TLS client needs, validated with the file's position."""

from __future__ import annotations

from pathlib import Path

import pytest

from cronframework.cluster.config import load_config
from cronframework.errors import CronframeworkError
from cronframework.store.zookeeper.client import TlsFiles


def _load(tmp_path: Path, body: str) -> TlsFiles | None:
    path = tmp_path / "scheduler.yaml"
    path.write_text(body)
    tls = load_config(str(path), {}).zookeeper.tls
    return tls.files() if tls else None


def test_the_tls_section_names_the_ca_and_the_client_certificate(tmp_path: Path) -> None:
    body = "zookeeper:\n  tls:\n    ca_file: /etc/cf/ca.pem\n    cert_file: /etc/cf/c.pem\n"
    body += "    key_file: /etc/cf/c.key\n"
    assert _load(tmp_path, body) == TlsFiles("/etc/cf/ca.pem", "/etc/cf/c.pem", "/etc/cf/c.key", check_hostname=True)
    assert _load(tmp_path, "zookeeper:\n  hosts: zk1:2281\n") is None


def test_a_certificate_without_its_key_is_refused_where_it_is_written(tmp_path: Path) -> None:
    with pytest.raises(CronframeworkError) as caught:
        _load(tmp_path, "zookeeper:\n  tls:\n    ca_file: /ca.pem\n    cert_file: /c.pem\n")
    message = str(caught.value)
    assert "scheduler.yaml:3:" in message and "zookeeper.tls" in message and "key_file" in message


def test_a_misspelt_tls_key_is_named(tmp_path: Path) -> None:
    with pytest.raises(CronframeworkError, match=r"scheduler\.yaml:4:5: .*unknown key 'cert'.*cert_file"):
        _load(tmp_path, "zookeeper:\n  tls:\n    ca_file: /ca.pem\n    cert: /c.pem\n")

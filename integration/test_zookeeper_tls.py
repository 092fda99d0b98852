"""ZooKeeper over TLS with digest ACLs, against a real server that serves TLS only and requires client
certificates (certificates made by the test): the store works through it; a client without the digest credentials,
even one with a good certificate, can neither read nor change the state; a plain-text client, one without a
certificate and one trusting another CA get nothing, and the last two are told why."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kazoo.exceptions import NoAuthError
from kazoo.security import OPEN_ACL_UNSAFE

from cronframework.cluster.config import load_config
from cronframework.errors import StateStoreError, StateStoreUnavailable
from cronframework.records import SpecChange
from cronframework.store.zookeeper.client import TlsFiles, connect_zk
from cronframework.store.zookeeper.store import ZooKeeperStore
from integration.certs import CertAuthority
from integration.zk import ZkCluster, ZkHarnessError, ZkTls, four_letter

pytestmark = pytest.mark.zookeeper
AUTH = ("cron", "s3cret-digest")


@pytest.fixture(scope="module")
def tls_zk() -> Iterator[ZkCluster]:
    cluster = ZkCluster(nodes=1, tls=True)
    try:
        cluster.start()
    except ZkHarnessError as exc:
        cluster.destroy()
        pytest.fail(f"cannot start ZooKeeper over TLS: {exc}", pytrace=False)
    yield cluster
    cluster.destroy()


def _files(cluster: ZkCluster) -> TlsFiles:
    tls = cluster.client_tls
    assert isinstance(tls, ZkTls)
    return TlsFiles(str(tls.ca), str(tls.cert), str(tls.key))


@pytest.fixture
def root() -> str:
    return f"/cf-tls-{uuid.uuid4().hex[:12]}"


def test_a_client_without_the_credentials_can_neither_read_nor_change_the_state(
    tls_zk: ZkCluster, root: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    owner = ZooKeeperStore.connect(tls_zk.connect_string, root, auth=AUTH, tls=_files(tls_zk))
    stranger = connect_zk(tls_zk.connect_string, tls=_files(tls_zk))  # a good certificate, no digest
    try:
        owner.write_specs([SpecChange("alpha", {"n": 1}, None)])
        assert set(owner.read_specs()) == {"alpha"}
        spec = f"{root}/specs/alpha"
        for attempt in (
            lambda: stranger.get(spec),
            lambda: stranger.get_children(f"{root}/specs"),
            lambda: stranger.set(spec, b"{}"),
            lambda: stranger.delete(spec),
            lambda: stranger.create(f"{root}/specs/beta", b"{}"),
            lambda: stranger.set_acls(spec, [OPEN_ACL_UNSAFE[0]]),
        ):
            with pytest.raises(NoAuthError):
                attempt()
        intruder = ZooKeeperStore(stranger, root)
        with pytest.raises(StateStoreError, match="not authorized"):
            intruder.read_specs()
        with pytest.raises(StateStoreError, match="not authorized"):
            intruder.write_specs([SpecChange("beta", {"n": 1}, None)])
        assert set(owner.read_specs()) == {"alpha"}, "nothing changed"
        assert not [r for r in caplog.records if AUTH[1] in r.getMessage()], "the digest password was logged"
    finally:
        owner.close()
        stranger.stop()
        stranger.close()


def test_the_server_speaks_no_plain_text(tls_zk: ZkCluster) -> None:
    port = tls_zk.members[0].client_port
    assert four_letter(port, "ruok") == ""
    assert tls_zk.mode(1) == "standalone"  # the same word over TLS is answered
    with pytest.raises(StateStoreUnavailable):
        connect_zk(tls_zk.connect_string, timeout=2, retries=1)


def test_trusting_another_ca_fails_closed_at_once_saying_why(tls_zk: ZkCluster, tmp_path: Path) -> None:
    other = CertAuthority(tmp_path / "other", "another CA")
    mine = other.issue("client")
    started = time.monotonic()
    with pytest.raises(StateStoreError, match="refused over TLS: certificate not trusted") as caught:
        connect_zk(
            tls_zk.connect_string, timeout=3, retries=3, tls=TlsFiles(str(other.cert), str(mine.cert), str(mine.key))
        )
    assert not isinstance(caught.value, StateStoreUnavailable), "a refused certificate is not an outage to retry"
    assert time.monotonic() - started < 8, "one try, not three"


def test_a_client_without_a_certificate_is_refused_saying_why(tls_zk: ZkCluster) -> None:
    files = _files(tls_zk)
    with pytest.raises(StateStoreError, match="refused over TLS"):
        connect_zk(tls_zk.connect_string, timeout=3, retries=1, tls=TlsFiles(files.ca))


def test_a_server_certificate_for_another_name_is_refused(tls_zk: ZkCluster) -> None:
    """The servers' certificate names 127.0.0.1 only; reached as `localhost` (the same server) it does not match."""
    hosts = tls_zk.connect_string.replace("127.0.0.1", "localhost")
    with pytest.raises(StateStoreError, match="refused over TLS: certificate not trusted"):
        connect_zk(hosts, timeout=3, retries=1, tls=_files(tls_zk))


def test_the_command_line_reaches_the_store_over_tls_from_the_config_file(
    tls_zk: ZkCluster, root: str, tmp_path: Path
) -> None:
    files = _files(tls_zk)
    (tmp_path / "zk-auth").write_text(":".join(AUTH))
    config = {
        "zookeeper": {
            "hosts": tls_zk.connect_string,
            "root": root,
            "auth_file": str(tmp_path / "zk-auth"),
            "tls": {"ca_file": files.ca, "cert_file": files.cert, "key_file": files.key},
        }
    }
    path = tmp_path / "scheduler.yaml"
    path.write_text(yaml.safe_dump(config))
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text(yaml.safe_dump({"job": {"nightly": {"schedule": "0 3 * * *", "task": {"command": ["true"]}}}}))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    env.pop("CRONFRAMEWORK_ZK_AUTH", None)
    cli = [sys.executable, "-m", "cronframework"]
    applied = subprocess.run([*cli, "apply", str(jobs), "--config", str(path)], capture_output=True, text=True, env=env)
    assert applied.returncode == 0, applied.stderr
    store = load_config(str(path), {}).zookeeper.connect()
    try:
        assert set(store.read_specs()) == {"nightly"}
    finally:
        store.close()


def test_an_ensemble_talks_tls_between_its_servers_too(tmp_path: Path, root: str) -> None:
    ensemble = ZkCluster(nodes=3, base=tmp_path / "zk", tls=True)
    try:
        ensemble.start()
        config = (ensemble.members[0].home / "zoo.cfg").read_text()
        assert "sslQuorum=true" in config and "clientPort=" not in config.replace("secureClientPort=", "")
        store = ZooKeeperStore.connect(ensemble.connect_string, root, auth=AUTH, tls=_files(ensemble))
        try:
            store.write_specs([SpecChange("alpha", {"n": 1}, None)])
            assert set(store.read_specs()) == {"alpha"}
        finally:
            store.close()
    except ZkHarnessError as exc:
        pytest.fail(f"cannot start a 3-node ZooKeeper ensemble over TLS: {exc}", pytrace=False)
    finally:
        ensemble.destroy()

"""The API over TLS, served by the scheduler itself: a real TLS client checks the server against its CA, a wrong CA
and an expired certificate are refused, client certificates are required when configured, a follower forwards a
write to the leader over mutual TLS, and the command line talks to it with --ca-cert.

The certificates are made here (the `cryptography` package): a CA, another CA nobody trusts, and leaf certificates
for 127.0.0.1 that are valid, expired, or signed by the wrong CA.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cronframework.api import Api, ApiServer, LocalCluster, TokenAuth
from cronframework.api.tls import ServerTls
from cronframework.cli import main
from cronframework.cluster.config import TlsSection
from cronframework.errors import CronframeworkError
from tests.leader_harness import Cluster, job

TOKEN = "tls-token"
NOW = datetime.now(UTC)


@dataclass(frozen=True)
class Authority:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    path: Path


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def authority(folder: Path, common: str) -> Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common))
        .issuer_name(_name(common))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = folder / f"{common}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return Authority(cert, key, path)


def leaf(folder: Path, ca: Authority, name: str, *, expired: bool = False) -> tuple[str, str]:
    """A certificate for 127.0.0.1 and localhost, usable by a server and a client; (cert file, key file)."""
    key = ec.generate_private_key(ec.SECP256R1())
    start, end = (
        (NOW - timedelta(days=10), NOW - timedelta(days=1))
        if expired
        else (NOW - timedelta(hours=1), NOW + timedelta(days=7))
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(IPv4Address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .sign(ca.key, hashes.SHA256())
    )
    cert_path, key_path = folder / f"{name}.crt", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_path), str(key_path)


@dataclass(frozen=True)
class Pki:
    ca: Authority
    stranger: Authority  # a CA nobody here trusts
    server: tuple[str, str]
    other_server: tuple[str, str]
    expired: tuple[str, str]
    client: tuple[str, str]
    strangers_client: tuple[str, str]
    expired_client: tuple[str, str]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca, stranger = authority(folder, "cron-ca"), authority(folder, "stranger-ca")
    return Pki(
        ca,
        stranger,
        leaf(folder, ca, "replica-a"),
        leaf(folder, ca, "replica-b"),
        leaf(folder, ca, "replica-old", expired=True),
        leaf(folder, ca, "operator"),
        leaf(folder, stranger, "intruder"),
        leaf(folder, ca, "operator-old", expired=True),
    )


def serve(
    pair: tuple[str, str], pki: Pki, *, mutual: bool = False, cluster: Cluster | None = None, **view: Any
) -> ApiServer:
    state = cluster or _cluster()
    tls = ServerTls(pair[0], pair[1], str(pki.ca.path) if mutual else None, str(pki.ca.path))
    local = LocalCluster("r1", epoch=lambda: 1, **view)
    api = Api(state.store, local, TokenAuth(TOKEN), state.clock, client_tls=tls.client_context())
    return ApiServer(api, tls=tls).start()


def _cluster() -> Cluster:
    c = Cluster()
    c.apply(job("beat"))
    return c


def client(ca: Path | None, pair: tuple[str, str] | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca) if ca else None)
    if pair:
        context.load_cert_chain(*pair)
    return context


def get(url: str, context: ssl.SSLContext) -> int:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context))
    with opener.open(url, timeout=10) as reply:
        return int(reply.status)


def refused(url: str, context: ssl.SSLContext) -> BaseException:
    with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)) as caught:
        get(url, context)
    return caught.value


def _verify_code(error: BaseException) -> int | None:
    reason = getattr(error, "reason", error)
    return getattr(reason, "verify_code", None)


@pytest.fixture
def tls_server(pki: Pki) -> Iterator[ApiServer]:
    server = serve(pki.server, pki)
    yield server
    server.close()


def test_a_client_trusting_the_ca_gets_answers_over_tls(tls_server: ApiServer, pki: Pki) -> None:
    assert tls_server.url.startswith("https://127.0.0.1:")
    assert get(f"{tls_server.url}/healthz", client(pki.ca.path)) == 200


def test_a_client_trusting_another_ca_refuses_the_server(tls_server: ApiServer, pki: Pki) -> None:
    error = refused(f"{tls_server.url}/healthz", client(pki.stranger.path))
    assert isinstance(getattr(error, "reason", error), ssl.SSLCertVerificationError)


def test_an_expired_server_certificate_is_refused(pki: Pki) -> None:
    server = serve(pki.expired, pki)
    try:
        error = refused(f"{server.url}/healthz", client(pki.ca.path))
    finally:
        server.close()
    assert _verify_code(error) == 10  # X509_V_ERR_CERT_HAS_EXPIRED


def test_plain_http_to_a_tls_port_gets_no_answer(tls_server: ApiServer) -> None:
    plain = tls_server.url.replace("https://", "http://")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        opener.open(f"{plain}/healthz", timeout=10).read()


def test_client_certificates_are_required_when_a_client_ca_is_configured(pki: Pki) -> None:
    server = serve(pki.server, pki, mutual=True)
    try:
        url = f"{server.url}/healthz"
        assert get(url, client(pki.ca.path, pki.client)) == 200
        refused(url, client(pki.ca.path))  # no certificate
        refused(url, client(pki.ca.path, pki.strangers_client))  # signed by a CA the server does not trust
        refused(url, client(pki.ca.path, pki.expired_client))
    finally:
        server.close()


def test_a_follower_forwards_a_write_to_the_leader_over_mutual_tls(pki: Pki) -> None:
    leader_side, follower_side = _cluster(), _cluster()
    leader = serve(pki.server, pki, mutual=True, cluster=leader_side)
    others = [{"replica": "r0", "epoch": 7, "api": leader.url}]
    follower = serve(pki.other_server, pki, mutual=True, cluster=follower_side, leading=lambda: False, others=others)
    try:
        request = urllib.request.Request(
            f"{follower.url}/v1/jobs/beat/trigger",
            data=b'{"force": true}',
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
            method="POST",
        )
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=client(pki.ca.path, pki.client))
        )
        with opener.open(request, timeout=15) as reply:
            assert reply.status == 202 and json.loads(reply.read())["force"] is True
            assert reply.headers["X-Cronframework-Leader"] == leader.url
        assert [t.job for t in leader_side.store.pending_triggers()] == ["beat"]
        assert follower_side.store.pending_triggers() == []
    finally:
        follower.close()
        leader.close()


def test_the_command_line_talks_tls_with_its_ca_and_client_certificate(
    pki: Pki, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("CRONFRAMEWORK_ADDR", "CRONFRAMEWORK_CACERT", "CRONFRAMEWORK_CLIENT_CERT", "CRONFRAMEWORK_CLIENT_KEY"):
        monkeypatch.delenv(name, raising=False)
    server = serve(pki.server, pki, mutual=True)
    try:
        assert main(["status", "--addr", server.url, "--ca-cert", str(pki.ca.path), "-o", "name"]) == 1
        assert "cannot reach the API" in capsys.readouterr().err  # no client certificate
        monkeypatch.setenv("CRONFRAMEWORK_CLIENT_CERT", pki.client[0])
        monkeypatch.setenv("CRONFRAMEWORK_CLIENT_KEY", pki.client[1])
        assert main(["status", "--addr", server.url, "--ca-cert", str(pki.ca.path), "-o", "name"]) == 0
        assert capsys.readouterr().out.split() == ["beat"]
        assert main(["status", "--addr", server.url, "--ca-cert", str(pki.stranger.path)]) == 1
        assert "cannot reach the API" in capsys.readouterr().err
    finally:
        server.close()


def test_tls_files_are_checked_at_start(pki: Pki, tmp_path: Path) -> None:
    with pytest.raises(CronframeworkError, match=r"api\.tls\.cert_file"):
        ServerTls.from_config(TlsSection(cert_file=str(tmp_path / "missing.crt"), key_file=pki.server[1]))
    with pytest.raises(CronframeworkError, match=r"api\.tls"):
        ServerTls.from_config(TlsSection(cert_file=pki.server[0], key_file=pki.client[1]))  # not its key
    with pytest.raises(CronframeworkError, match=r"api\.tls\.client_ca_file"):
        ServerTls.from_config(
            TlsSection(cert_file=pki.server[0], key_file=pki.server[1], client_ca_file=str(tmp_path / "none.pem"))
        )

"""Certificates the TLS tests make for themselves: a CA, server and client certificates it signs, and the Java
keystores ZooKeeper reads. `openssl` and the JDK's `keytool` only; nothing comes from the network, and every key stays
in the test's own directory (mode 0600)."""

from __future__ import annotations

import secrets
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

CURVE = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]  # small and quick to make, Java reads it


class CertError(RuntimeError):
    """openssl or keytool failed; the message carries its stderr."""


def _run(argv: list[str]) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except FileNotFoundError as exc:
        raise CertError(f"{argv[0]} is not installed") from exc
    if done.returncode != 0:
        raise CertError(f"{' '.join(argv[:3])} failed: {done.stderr.strip()[-2000:]}")


@dataclass(frozen=True)
class Issued:
    """A certificate (PEM) and its private key (PEM, unencrypted, 0600)."""

    cert: Path
    key: Path


@dataclass
class CertAuthority:
    """A throwaway certificate authority in `folder`; `issue` signs certificates for servers and clients."""

    folder: Path
    name: str = "cronframework test CA"
    days: int = 2
    cert: Path = field(init=False)
    key: Path = field(init=False)

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        stem = self.name.replace(" ", "-")
        self.cert, self.key = self.folder / f"{stem}.pem", self.folder / f"{stem}.key"
        _run([
            "openssl", "req", "-x509", *CURVE, "-nodes", "-days", str(self.days), "-subj", f"/CN={self.name}",
            "-keyout", str(self.key), "-out", str(self.cert),
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        ])  # fmt: skip
        self.key.chmod(0o600)

    def issue(self, name: str, *, ips: tuple[str, ...] = ("127.0.0.1",), dns: tuple[str, ...] = ()) -> Issued:
        """A certificate for `name`, good for server and client authentication, naming `ips` and `dns`."""
        key, csr, cert = (self.folder / f"{name}.{ext}" for ext in ("key", "csr", "pem"))
        _run(
            ["openssl", "req", "-new", *CURVE, "-nodes", "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(csr)]
        )
        key.chmod(0o600)
        ext = self.folder / f"{name}.ext"
        alt = ",".join([*(f"IP:{ip}" for ip in ips), *(f"DNS:{d}" for d in dns)])
        ext.write_text(
            f"subjectAltName={alt}\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth,clientAuth\n"
        )
        _run([
            "openssl", "x509", "-req", "-in", str(csr), "-CA", str(self.cert), "-CAkey", str(self.key),
            "-CAcreateserial", "-days", str(self.days), "-extfile", str(ext), "-out", str(cert),
        ])  # fmt: skip
        return Issued(cert, key)

    def keystore(self, issued: Issued, password: str) -> Path:
        """`issued` with its key and this CA's certificate as a PKCS#12 keystore (Java's `ssl.keyStore`)."""
        out = issued.cert.with_suffix(".p12")
        _run([
            "openssl", "pkcs12", "-export", "-in", str(issued.cert), "-inkey", str(issued.key),
            "-certfile", str(self.cert), "-name", issued.cert.stem, "-out", str(out), "-passout", f"pass:{password}",
        ])  # fmt: skip
        out.chmod(0o600)
        return out

    def truststore(self, password: str) -> Path:
        """This CA's certificate alone, as a PKCS#12 truststore (Java's `ssl.trustStore`)."""
        out = self.folder / "truststore.p12"
        out.unlink(missing_ok=True)
        _run([
            "keytool", "-importcert", "-noprompt", "-alias", "ca", "-file", str(self.cert), "-keystore", str(out),
            "-storetype", "PKCS12", "-storepass", password,
        ])  # fmt: skip
        return out


def password() -> str:
    return secrets.token_hex(12)

"""TLS for the API, from the config's `api.tls`: what uvicorn serves with, and what a replica forwards with.

The files are checked when the replica starts, so a wrong path or a key that does not match its certificate stops
the start with one line naming the file, instead of a server that accepts connections and fails every handshake.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cronframework.cluster.config import TlsSection
from cronframework.errors import CronframeworkError


@dataclass(frozen=True)
class ServerTls:
    cert_file: str
    key_file: str
    client_ca_file: str | None = None  # set: a client must present a certificate this CA signed
    ca_file: str | None = None  # what this replica trusts when it calls another one

    @classmethod
    def from_config(cls, section: TlsSection | None) -> ServerTls | None:
        if section is None:
            return None
        tls = cls(section.cert_file, section.key_file, section.client_ca_file, section.ca_file)
        tls.check()
        return tls

    def check(self) -> None:
        for label, path in (("cert_file", self.cert_file), ("key_file", self.key_file)):
            if not Path(path).is_file():
                raise CronframeworkError(f"api.tls.{label}: {path}: no such file")
        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(self.cert_file, self.key_file)
            for label, ca in (("client_ca_file", self.client_ca_file), ("ca_file", self.ca_file)):
                if ca is not None:
                    _load_ca(label, ca)
        except ssl.SSLError as exc:
            raise CronframeworkError(f"api.tls: {self.cert_file} / {self.key_file}: {exc.reason or exc}") from None

    def uvicorn(self) -> dict[str, Any]:
        return {
            "ssl_certfile": self.cert_file,
            "ssl_keyfile": self.key_file,
            "ssl_ca_certs": self.client_ca_file,
            "ssl_cert_reqs": ssl.CERT_REQUIRED if self.client_ca_file else ssl.CERT_NONE,
        }

    def client_context(self) -> ssl.SSLContext:
        """Verifies the other replica against `ca_file` and presents this replica's own pair."""
        context = ssl.create_default_context(cafile=self.ca_file)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def _load_ca(label: str, path: str) -> None:
    try:
        ssl.create_default_context(cafile=path)
    except (OSError, ssl.SSLError) as exc:
        raise CronframeworkError(f"api.tls.{label}: {path}: {getattr(exc, 'strerror', None) or exc}") from None


def client_context(
    ca_file: str | None = None, cert_file: str | None = None, key_file: str | None = None
) -> ssl.SSLContext:
    """For the command line talking to a replica: trust `ca_file` (else the system's), present a pair if given."""
    try:
        context = ssl.create_default_context(cafile=ca_file)
        if cert_file:
            context.load_cert_chain(cert_file, key_file)
    except (OSError, ssl.SSLError) as exc:
        raise CronframeworkError(f"TLS client files: {getattr(exc, 'strerror', None) or exc}") from None
    return context

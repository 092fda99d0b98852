"""Telling a refused TLS handshake (a configuration to fix) from an outage, through the wrappers requests, urllib3
and the backends' SDKs put around the socket's error."""

from __future__ import annotations

import ssl

from cronframework.errors import tls_refusal, transient_kind


def _wrapped(inner: BaseException) -> Exception:
    """As requests raises it: SSLError(MaxRetryError(reason=SSLError(inner))), the SDK's error chained to it."""
    reason = ssl.SSLError(inner)
    retry = Exception("Max retries exceeded")
    retry.reason = reason  # type: ignore[attr-defined]
    try:
        raise ConnectionError(retry)
    except ConnectionError as exc:
        try:
            raise RuntimeError("Error while fetching server API version") from exc
        except RuntimeError as sdk:
            return sdk


def test_an_untrusted_server_certificate_says_why() -> None:
    inner = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    inner.verify_message = "unable to get local issuer certificate"
    assert tls_refusal(_wrapped(inner)) == "certificate not trusted: unable to get local issuer certificate"


def test_a_refused_client_certificate_says_so() -> None:
    inner = ssl.SSLError(1, "tlsv13 alert certificate required")
    inner.reason = "TLSV13_ALERT_CERTIFICATE_REQUIRED"
    assert tls_refusal(_wrapped(inner)) == (
        "the server refused this client's certificate (TLSV13_ALERT_CERTIFICATE_REQUIRED)"
    )


def test_a_handshake_cut_off_is_an_outage_not_a_refusal() -> None:
    inner = ssl.SSLError(8, "EOF occurred in violation of protocol")
    inner.reason = "UNEXPECTED_EOF_WHILE_READING"
    assert tls_refusal(_wrapped(inner)) is None
    assert tls_refusal(ConnectionRefusedError(111, "refused")) is None
    assert transient_kind(ConnectionRefusedError(111, "refused")).__name__ == "BackendUnreachable"

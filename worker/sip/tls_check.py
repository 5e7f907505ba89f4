"""Telling a TLS certificate refusal apart from a network failure, and saying it in one line.

pjsip reports a server certificate that failed verification the way it
reports any transport failure: a local 503 whose reason is
``SSL certificate verification error (PJSIP_TLS_ECERTVERIF)``. Left like that
it reads as ``transient``: the agent retries, the dialer reschedules, and an
impersonated or misconfigured trunk looks like a flaky one. It is a
configuration error instead, so it is recognised here (pure functions) and
explained with what OpenSSL said about the certificate, which pjsip hands to
``Endpoint.onTransportState`` (collected by :class:`TlsVerifyLog`).
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass

from worker.sip.config import SipAccountConfig

# pjsip's error text for PJSIP_TLS_ECERTVERIF (pjsip/sip_errno.c); the symbol is part of the string.
_CERT_FAILURE_MARK = "PJSIP_TLS_ECERTVERIF"
_MAX_KEPT = 8


def is_certificate_failure(status: int, reason: str) -> bool:
    """Whether a locally reported SIP failure is a refused server certificate."""
    return status == 503 and _CERT_FAILURE_MARK in reason


@dataclass(frozen=True)
class TlsVerifyFailure:
    """One TLS connection pjsip closed because the server's certificate did not verify."""

    remote: str
    reasons: tuple[str, ...]


class TlsVerifyLog:
    """The latest verification failures, fed from ``onTransportState`` on the SIP thread."""

    def __init__(self) -> None:
        self._failures: list[TlsVerifyFailure] = []

    def add(self, remote: str, reasons: tuple[str, ...]) -> None:
        self._failures.append(TlsVerifyFailure(remote, reasons))
        del self._failures[:-_MAX_KEPT]

    def latest(self) -> TlsVerifyFailure | None:
        return self._failures[-1] if self._failures else None


def certificate_message(account: SipAccountConfig, failure: TlsVerifyFailure | None) -> str:
    """``trunk 'x' (host 127.0.0.1:5061): the trunk's certificate is not trusted: <why>; <what to do>``."""
    why = "; ".join(failure.reasons) if failure is not None and failure.reasons else "verification failed"
    where = account.first_hop
    ca = account.tls_ca_file or "the system CA store"
    return (
        f"trunk {account.name!r} (host {where}): the trunk's certificate is not trusted: {why} "
        f"(checked against {ca} and the name {where.rsplit(':', 1)[0]!r}); set tls_ca_file "
        "(DIALER_SIP_TLS_CA_FILE) to the CA that issued it, or fix the host name"
    )


def tls_ca_file(account: SipAccountConfig) -> str | None:
    """The trunk's CA file, else the system store's bundle (OpenSSL's default file), else None.

    pjsip verifies only against the file it is given (it has no notion of a
    system store), so "the system store" has to be found and named here.
    """
    if account.tls_ca_file:
        return account.tls_ca_file
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile):
        if candidate and os.path.exists(candidate):
            return candidate
    return None

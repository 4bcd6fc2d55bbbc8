"""The words of a verdict: why a chain is refused, and the facts every check reads the same way.

Shared by :mod:`tlsgate.pki.chain` (the verdict) and :mod:`tlsgate.pki.diagnosis` (the reason):
the certificate's names and who it is, read so that a certificate ``cryptography`` cannot parse
becomes a :class:`VerificationFailed` (``malformed``) instead of an exception.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import StrEnum

from cryptography import x509

from tlsgate.errors import PKIError
from tlsgate.pki.malformed import PARSE_ERRORS, defect
from tlsgate.pki.serial import format_serial

__all__ = [
    "MAX_DEPTH",
    "Reason",
    "Usage",
    "VerificationFailed",
    "VerifiedChain",
    "hostname_matches",
    "malformed",
    "name_of",
    "sans_of",
    "who",
]

#: The most intermediates between a leaf and its trust anchor: cryptography's default
#: ``max_chain_depth`` (Web PKI chains have one to three).
MAX_DEPTH = 8


class Reason(StrEnum):
    """Why a client refuses a certificate; values are stable identifiers for JSON and metrics."""

    EXPIRED = "expired"
    NOT_YET_VALID = "not-yet-valid"
    HOSTNAME_MISMATCH = "hostname-mismatch"
    UNKNOWN_ISSUER = "unknown-issuer"
    SELF_SIGNED = "self-signed"
    REVOKED = "revoked"
    BAD_SIGNATURE = "bad-signature"
    NAME_CONSTRAINTS = "name-constraints"
    WRONG_USAGE = "wrong-usage"
    WEAK_KEY = "weak-key"
    UNSUPPORTED_ALGORITHM = "unsupported-algorithm"
    MALFORMED = "malformed"
    BAD_CRL = "bad-crl"
    INVALID = "invalid"


class Usage(StrEnum):
    SERVER = "server"
    CLIENT = "client"


class VerificationFailed(PKIError):
    """The chain does not verify; ``reason`` says why in a machine-readable way.

    It is the only exception ``verify_chain``, ``check_revocation`` and :func:`hostname_matches`
    raise for anything a peer sent (``diagnose`` returns one): a certificate that cannot even be
    parsed is a verdict (:attr:`Reason.MALFORMED`), not a crash.
    """

    def __init__(self, reason: Reason, message: str, certificate: x509.Certificate | None = None):
        super().__init__(message)
        self.reason = reason
        self.certificate = certificate


@dataclass(frozen=True)
class VerifiedChain:
    """A validated path, leaf first, trust anchor last."""

    certificates: tuple[x509.Certificate, ...]

    @property
    def leaf(self) -> x509.Certificate:
        return self.certificates[0]

    @property
    def anchor(self) -> x509.Certificate:
        return self.certificates[-1]


def who(cert: x509.Certificate) -> str:
    try:
        subject = cert.subject.rfc4514_string()
    except PARSE_ERRORS:
        subject = ""
    return subject or f"serial {format_serial(cert.serial_number)}"


def name_of(cert: x509.Certificate, which: str) -> x509.Name | None:
    """The subject or issuer, or None when it cannot be parsed (then nothing chains by it)."""
    try:
        return cert.subject if which == "subject" else cert.issuer
    except PARSE_ERRORS:
        return None


def malformed(cert: x509.Certificate, role: str) -> VerificationFailed | None:
    problem = defect(cert)
    if problem is None:
        return None
    return VerificationFailed(Reason.MALFORMED, f"{role} {problem}", cert)


def sans_of(cert: x509.Certificate) -> list[x509.GeneralName]:
    try:
        return list(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        return []
    except PARSE_ERRORS:
        raise malformed(cert, "the certificate's") or VerificationFailed(
            Reason.MALFORMED, "the certificate's extensions cannot be read", cert
        ) from None


def hostname_matches(cert: x509.Certificate, hostname: str) -> bool:
    """RFC 6125 matching against SANs only (browsers ignore the CN since 2017).

    Raises :class:`VerificationFailed` (``malformed``) when the certificate's names cannot be read.
    """
    host = hostname.strip().rstrip(".").lower()
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        address = None
    for name in sans_of(cert):
        if address is not None:
            if isinstance(name, x509.IPAddress) and name.value == address:
                return True
            continue
        if not isinstance(name, x509.DNSName):
            continue
        pattern = name.value.lower()
        if pattern == host:
            return True
        if pattern.startswith("*."):
            head, _, rest = host.partition(".")
            if head and rest == pattern[2:]:
                return True
    return False

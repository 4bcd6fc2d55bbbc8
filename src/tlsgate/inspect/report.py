"""What a check found, in one shape for the terminal, JSON, metrics and alerts.

A :class:`Report` is data only: the probe fills it, :mod:`tlsgate.inspect.findings` derives its
findings, and renderers (``tlsgate check``, ``tlsgate monitor``) only read it. The severity of a
report is the worst of its findings and doubles as the Nagios-style exit code (0 OK, 1 WARNING,
2 CRITICAL) that monitoring scripts already understand.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum, StrEnum
from typing import Any

from cryptography import x509

from tlsgate.pki.info import CertInfo

__all__ = [
    "Code",
    "Finding",
    "Negotiated",
    "Offer",
    "Report",
    "Severity",
]


class Severity(IntEnum):
    """Ordered so ``max()`` gives the verdict; the value is the exit code."""

    OK = 0
    WARNING = 1
    CRITICAL = 2

    @property
    def label(self) -> str:
        return self.name.lower()


class Code(StrEnum):
    """Stable identifiers for findings: JSON, alert payloads and tests match on these."""

    # the certificate chain
    EXPIRED = "expired"
    NOT_YET_VALID = "not-yet-valid"
    EXPIRES_SOON = "expires-soon"
    HOSTNAME_MISMATCH = "hostname-mismatch"
    SELF_SIGNED = "self-signed"
    UNKNOWN_ISSUER = "unknown-issuer"
    INCOMPLETE_CHAIN = "incomplete-chain"
    WEAK_KEY = "weak-key"
    WEAK_SIGNATURE = "weak-signature"
    REVOKED = "revoked"
    BAD_SIGNATURE = "bad-signature"
    NAME_CONSTRAINTS = "name-constraints"
    WRONG_USAGE = "wrong-usage"
    NO_SUBJECT_ALT_NAME = "no-subject-alt-name"
    MALFORMED = "malformed"
    INVALID = "invalid"
    # the connection
    LEGACY_TLS = "legacy-tls"
    HANDSHAKE_FAILED = "handshake-failed"
    UNREACHABLE = "unreachable"
    TIMEOUT = "timeout"
    RESET = "connection-reset"
    NOT_TLS = "not-tls"
    CLIENT_CERT_REQUIRED = "client-certificate-required"
    # HTTP (--http)
    NO_HSTS = "no-hsts"
    WEAK_HSTS = "weak-hsts"
    NO_REDIRECT = "no-redirect"
    HTTP_FAILED = "http-failed"
    # files
    INVALID_FILE = "invalid-file"


@dataclass(frozen=True)
class Finding:
    """One thing worth saying, in words a person can act on."""

    severity: Severity
    code: Code
    message: str
    certificate: int | None = None  # index into Report.chain the finding is about

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "severity": self.severity.label,
            "code": self.code.value,
            "message": self.message,
        }
        if self.certificate is not None:
            data["certificate"] = self.certificate
        return data


@dataclass(frozen=True)
class Offer:
    """What our client put in its ClientHello (what a modern browser offers, roughly)."""

    versions: tuple[str, ...]
    ciphers: tuple[str, ...]
    groups: tuple[str, ...]
    servername: str | None
    alpn: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "versions": list(self.versions),
            "ciphers": list(self.ciphers),
            "groups": list(self.groups),
            "servername": self.servername,
            "alpn": list(self.alpn),
        }


@dataclass(frozen=True)
class Negotiated:
    """What the server chose."""

    version: str
    cipher: str
    group: str | None
    alpn: str | None
    ocsp_stapled: bool
    client_certificate_sent: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "cipher": self.cipher,
            "group": self.group,
            "alpn": self.alpn,
            "ocsp_stapled": self.ocsp_stapled,
            "client_certificate_sent": self.client_certificate_sent,
        }


@dataclass(frozen=True)
class Report:
    """Everything one check learned about one target (an endpoint or a certificate file)."""

    target: str
    kind: str  # "endpoint" or "file"
    checked_at: datetime
    duration: float = 0.0
    servername: str | None = None
    address: str | None = None  # the IP:port actually connected to
    trust: str = "system"  # where the trust anchors came from, for the explanation
    offered: Offer | None = None
    negotiated: Negotiated | None = None
    chain: tuple[x509.Certificate, ...] = ()  # as presented, leaf first
    path: tuple[x509.Certificate, ...] = ()  # verified path to a trusted root; () if none
    findings: tuple[Finding, ...] = ()
    hsts: str | None = None  # the Strict-Transport-Security header, when --http
    redirect: str | None = None  # where http:// sent us, when --http
    revocation: str | None = None  # what the OCSP/CRL lookup said, in words
    labels: dict[str, str] = field(default_factory=dict)  # monitor's own target labels
    judged_as: str = "server"  # "client": an SVID, e-mail or client-only certificate, no host

    def replace(self, **changes: Any) -> Report:
        return dataclasses.replace(self, **changes)

    @property
    def severity(self) -> Severity:
        return max((f.severity for f in self.findings), default=Severity.OK)

    @property
    def exit_code(self) -> int:
        return int(self.severity)

    @property
    def reachable(self) -> bool:
        """A chain was obtained: the check itself worked, whatever it found."""
        return bool(self.chain)

    @property
    def leaf(self) -> x509.Certificate | None:
        return self.chain[0] if self.chain else None

    @property
    def leaf_not_after(self) -> datetime | None:
        return self.chain[0].not_valid_after_utc if self.chain else None

    @property
    def chain_not_after(self) -> datetime | None:
        """Earliest notAfter on the verified path (or the presented chain): when it all stops.

        An intermediate that expires before the leaf breaks every site it signed; monitoring only
        the leaf misses that (blackbox_exporter users learned this the hard way).
        """
        certs = self.path or self.chain
        return min((c.not_valid_after_utc for c in certs), default=None)

    def to_json(self) -> dict[str, Any]:
        now = self.checked_at
        data: dict[str, Any] = {
            "target": self.target,
            "kind": self.kind,
            "verdict": self.severity.label,
            "exit_code": self.exit_code,
            "checked_at": now.isoformat(),
            "duration_seconds": round(self.duration, 4),
            "servername": self.servername,
            "address": self.address,
            "trust": self.trust,
            "findings": [f.to_json() for f in self.findings],
            "offered": self.offered.to_json() if self.offered else None,
            "negotiated": self.negotiated.to_json() if self.negotiated else None,
            "chain": [CertInfo.of(c).to_json(now) for c in self.chain],
            "path": [CertInfo.of(c).to_json(now) for c in self.path],
            "verified": bool(self.path),
            "judged_as": self.judged_as,
        }
        if self.leaf_not_after is not None:
            data["leaf_not_after"] = self.leaf_not_after.isoformat()
        if self.chain_not_after is not None:
            data["chain_not_after"] = self.chain_not_after.isoformat()
        if self.hsts is not None or self.redirect is not None:
            data["http"] = {"hsts": self.hsts, "redirect": self.redirect}
        if self.revocation is not None:
            data["revocation"] = self.revocation
        if self.labels:
            data["labels"] = dict(self.labels)
        return data

"""Revocation: reason codes and CRLs (RFC 5280 section 5).

The CRL is a pure function of the revoked entries, the issuer and ``now``; the CA layer decides
which entries go in and keeps the CRL number increasing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509

from tlsgate.errors import ConfigError
from tlsgate.pki.keys import PrivateKey, signature_hash

__all__ = [
    "DEFAULT_CRL_LIFETIME",
    "REASONS",
    "RevokedEntry",
    "build_crl",
    "parse_reason",
]

DEFAULT_CRL_LIFETIME = timedelta(days=7)

#: RFC 5280 reason codes a CA operator may pick (removeFromCRL only exists in delta CRLs).
REASONS: dict[str, x509.ReasonFlags] = {
    "unspecified": x509.ReasonFlags.unspecified,
    "key-compromise": x509.ReasonFlags.key_compromise,
    "ca-compromise": x509.ReasonFlags.ca_compromise,
    "affiliation-changed": x509.ReasonFlags.affiliation_changed,
    "superseded": x509.ReasonFlags.superseded,
    "cessation-of-operation": x509.ReasonFlags.cessation_of_operation,
    "certificate-hold": x509.ReasonFlags.certificate_hold,
    "privilege-withdrawn": x509.ReasonFlags.privilege_withdrawn,
    "aa-compromise": x509.ReasonFlags.aa_compromise,
}


def parse_reason(text: str) -> x509.ReasonFlags:
    """Accept ``key-compromise``, ``keyCompromise``, ``key_compromise`` and RFC 5280's numbers."""
    value = text.strip()
    if value.isdigit():
        codes = {
            0: "unspecified", 1: "key-compromise", 2: "ca-compromise", 3: "affiliation-changed",
            4: "superseded", 5: "cessation-of-operation", 6: "certificate-hold",
            9: "privilege-withdrawn", 10: "aa-compromise",
        }  # fmt: skip
        if int(value) in codes:
            return REASONS[codes[int(value)]]
    key = re.sub(r"(?<=[a-z])(?=[A-Z])", "-", value).lower().replace("_", "-")
    if key in REASONS:
        return REASONS[key]
    raise ConfigError(f"unknown revocation reason {text!r}; choose one of: {', '.join(REASONS)}")


@dataclass(frozen=True)
class RevokedEntry:
    serial: int
    revoked_at: datetime
    reason: x509.ReasonFlags = x509.ReasonFlags.unspecified


def build_crl(
    issuer: x509.Certificate,
    issuer_key: PrivateKey,
    entries: Iterable[RevokedEntry],
    *,
    number: int,
    now: datetime,
    lifetime: timedelta = DEFAULT_CRL_LIFETIME,
) -> x509.CertificateRevocationList:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject)
        .last_update(now)
        .next_update(now + lifetime)
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    for entry in sorted(entries, key=lambda e: e.serial):
        revoked = (
            x509.RevokedCertificateBuilder()
            .serial_number(entry.serial)
            .revocation_date(entry.revoked_at)
        )
        if entry.reason is not x509.ReasonFlags.unspecified:
            # RFC 5280 5.3.1: the reason code should be absent rather than "unspecified".
            revoked = revoked.add_extension(x509.CRLReason(entry.reason), critical=False)
        builder = builder.add_revoked_certificate(revoked.build())
    return builder.sign(issuer_key, signature_hash(issuer_key))

"""A plain summary of a certificate, the one shape every command prints and stores.

``CertInfo`` is what ``ca list``/``ca show`` render, what JSON output contains and what the store
indexes; it is derived from the certificate alone so it can never disagree with it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import ExtendedKeyUsageOID

from tlsgate.pki.keys import describe_key, key_type_of
from tlsgate.pki.malformed import MISSING_OR_MALFORMED, PARSE_ERRORS
from tlsgate.pki.names import display_name
from tlsgate.pki.serial import format_serial

__all__ = ["CertInfo", "format_remaining"]


@dataclass(frozen=True)
class CertInfo:
    serial: int
    subject: str
    issuer: str
    names: tuple[str, ...]
    not_before: datetime
    not_after: datetime
    key_type: str
    key_description: str
    usages: tuple[str, ...]
    is_ca: bool
    sha256: str

    @classmethod
    def of(cls, cert: x509.Certificate) -> CertInfo:
        """The summary; a part that cannot be parsed (a peer's malformed certificate, which the
        verdict reports as ``malformed``) is shown empty or as ``unreadable``, never raised."""
        sans = _extension(cert, x509.SubjectAlternativeName)
        names = tuple(display_name(n) for n in sans) if sans is not None else ()
        eku = _extension(cert, x509.ExtendedKeyUsage)
        usages = tuple(
            label
            for oid, label in (
                (ExtendedKeyUsageOID.SERVER_AUTH, "server"),
                (ExtendedKeyUsageOID.CLIENT_AUTH, "client"),
            )
            if eku is not None and oid in eku
        )
        constraints = _extension(cert, x509.BasicConstraints)
        is_ca = constraints is not None and constraints.ca
        key_type, key_description = _key(cert)
        with warnings.catch_warnings():
            # A zero or negative serial: cryptography warns it will refuse it one day; shown as is.
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            serial = cert.serial_number
        return cls(
            serial=serial,
            subject=_rfc4514(cert, "subject"),
            issuer=_rfc4514(cert, "issuer"),
            names=names,
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            key_type=key_type,
            key_description=key_description,
            usages=usages,
            is_ca=is_ca,
            sha256=cert.fingerprint(hashes.SHA256()).hex(),
        )

    @property
    def serial_hex(self) -> str:
        return format_serial(self.serial)

    @property
    def lifetime(self) -> timedelta:
        return self.not_after - self.not_before

    def remaining(self, now: datetime) -> timedelta:
        return self.not_after - now

    def to_json(self, now: datetime | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "serial": self.serial_hex,
            "subject": self.subject,
            "issuer": self.issuer,
            "names": list(self.names),
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "key_type": self.key_type,
            "usages": list(self.usages),
            "is_ca": self.is_ca,
            "sha256": self.sha256,
        }
        if now is not None:
            data["expires_in_seconds"] = int(self.remaining(now).total_seconds())
        return data


_T = TypeVar("_T", bound=x509.ExtensionType)


def _extension(cert: x509.Certificate, kind: type[_T]) -> _T | None:
    """The extension's value; None when absent or when the certificate's extensions are
    unreadable."""
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except MISSING_OR_MALFORMED:
        return None


def _key(cert: x509.Certificate) -> tuple[str, str]:
    """(key type, description) for any key a certificate can carry, readable or not."""
    try:
        key = cert.public_key()
    except PARSE_ERRORS:
        return "unreadable", "unreadable"
    if isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey):
        return key_type_of(key), describe_key(key)
    if isinstance(key, dsa.DSAPublicKey):  # key_type_of would call it Ed25519
        return f"dsa-{key.key_size}", f"DSA {key.key_size}"
    name = type(key).__name__.removesuffix("PublicKey")
    return name.lower(), name


def _rfc4514(cert: x509.Certificate, which: str) -> str:
    try:
        return (cert.subject if which == "subject" else cert.issuer).rfc4514_string()
    except PARSE_ERRORS:
        return "(unreadable name)"


def format_remaining(delta: timedelta) -> str:
    """``89 days``, ``5 h 3 min``, ``expired 2 days ago``: what a person wants to read."""
    seconds = int(delta.total_seconds())
    past = seconds < 0
    seconds = abs(seconds)
    if seconds >= 2 * 86400:
        text = f"{seconds // 86400} days"
    elif seconds >= 3600:
        text = f"{seconds // 3600} h {seconds % 3600 // 60} min"
    else:
        text = f"{seconds // 60} min"
    return f"expired {text} ago" if past else text

"""A plain summary of a certificate, the one shape every command prints and stores.

``CertInfo`` is what ``ca list``/``ca show`` render, what JSON output contains and what the store
indexes; it is derived from the certificate alone so it can never disagree with it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import ExtendedKeyUsageOID

from tlsgate.pki.keys import describe_key, key_type_of
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
        """The summary of any certificate that parses, malformed extensions or key included:
        ``check`` must describe what it was given before it says what is wrong with it."""
        extensions = _extensions(cert)
        try:
            sans = extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            names = tuple(display_name(n) for n in sans)
        except x509.ExtensionNotFound:
            names = ()
        try:
            eku = extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
            usages = tuple(
                label
                for oid, label in (
                    (ExtendedKeyUsageOID.SERVER_AUTH, "server"),
                    (ExtendedKeyUsageOID.CLIENT_AUTH, "client"),
                )
                if oid in eku
            )
        except x509.ExtensionNotFound:
            usages = ()
        try:
            is_ca = extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            is_ca = False
        key_type, key_description = _key(cert)
        with warnings.catch_warnings():
            # A zero or negative serial: cryptography warns it will refuse it one day; shown as is.
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            serial = cert.serial_number
        return cls(
            serial=serial,
            subject=cert.subject.rfc4514_string(),
            issuer=cert.issuer.rfc4514_string(),
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


def _extensions(cert: x509.Certificate) -> x509.Extensions:
    """The extensions, or none when they do not parse (duplicated, malformed DER)."""
    try:
        return cert.extensions
    except (ValueError, x509.DuplicateExtension):
        return x509.Extensions([])


def _key(cert: x509.Certificate) -> tuple[str, str]:
    """(key type, description) for any key a certificate can carry, readable or not."""
    try:
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm):
        return "unreadable", "a key that does not parse"
    if isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey):
        return key_type_of(key), describe_key(key)
    if isinstance(key, dsa.DSAPublicKey):
        return f"dsa-{key.key_size}", f"DSA {key.key_size}"
    name = type(key).__name__.removesuffix("PublicKey")
    return name.lower(), name


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

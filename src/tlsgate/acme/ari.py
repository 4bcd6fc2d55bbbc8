"""ACME Renewal Information (RFC 9773): when the CA would like a certificate renewed.

A certificate is named by its *CertID*: ``base64url(AKI keyIdentifier) "." base64url(serial)``,
the serial as the bytes of its DER INTEGER (two's complement, a leading zero byte when the top
bit is set). The same string is what a new order's ``replaces`` field carries.

The suggested window starts when the last third of the lifetime begins and ends halfway through
it: a client that picks a random moment in it still has a sixth of the lifetime to retry before
expiry. A revoked certificate gets a window that has already begun ("renew now").
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509

__all__ = ["RenewalWindow", "cert_id", "parse_cert_id", "renewal_window"]

_B64URL = re.compile(r"[A-Za-z0-9_-]+")
#: How soon a client should ask again (RFC 9773 4.3: Retry-After on every answer).
RETRY_AFTER = timedelta(hours=6)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not _B64URL.fullmatch(text):
        raise ValueError("not unpadded base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):  # e.g. a length of 4n+1
        raise ValueError("not unpadded base64url") from None


def _serial_bytes(serial: int) -> bytes:
    return serial.to_bytes(serial.bit_length() // 8 + 1, "big")  # DER INTEGER content, positive


def cert_id(cert: x509.Certificate) -> str:
    """The RFC 9773 CertID of ``cert``; ValueError when it has no authority key identifier."""
    try:
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    except x509.ExtensionNotFound:
        raise ValueError("the certificate has no authority key identifier") from None
    if aki.key_identifier is None:
        raise ValueError("the authority key identifier has no keyIdentifier")
    return f"{_b64(aki.key_identifier)}.{_b64(_serial_bytes(cert.serial_number))}"


def parse_cert_id(text: str) -> tuple[bytes, int]:
    """``(key identifier, serial)`` from a CertID; ValueError for anything malformed."""
    aki_text, dot, serial_text = text.partition(".")
    if not dot or "." in serial_text:
        raise ValueError("a CertID is two base64url parts joined by one dot")
    aki = _unb64(aki_text)
    serial = _unb64(serial_text)
    if serial[0] & 0x80:
        raise ValueError("the serial is negative")
    if len(serial) > 1 and serial[0] == 0 and not serial[1] & 0x80:
        raise ValueError("the serial is not minimally encoded")
    return aki, int.from_bytes(serial, "big")


@dataclass(frozen=True)
class RenewalWindow:
    start: datetime
    end: datetime
    retry_after: timedelta = RETRY_AFTER

    def to_json(self) -> dict[str, object]:
        def stamp(moment: datetime) -> str:
            return moment.strftime("%Y-%m-%dT%H:%M:%SZ")

        return {"suggestedWindow": {"start": stamp(self.start), "end": stamp(self.end)}}


def renewal_window(
    not_before: datetime, not_after: datetime, *, revoked: bool, now: datetime
) -> RenewalWindow:
    if revoked:
        return RenewalWindow(now - timedelta(hours=1), now, retry_after=timedelta(hours=1))
    life = not_after - not_before
    start = not_before + life * 2 / 3
    return RenewalWindow(start, start + life / 6)

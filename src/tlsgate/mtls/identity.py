"""Who a verified client certificate names: the leaf's identities, read once per connection.

The TLS layer has already verified the chain, the validity period and revocation by the time a
certificate gets here; this module only reads what the leaf says, so the policy and the
``x-forwarded-client-cert`` header can be decided from plain values without touching X.509 again.

Every string kept here may end up in a log line, a 403 body or a header sent upstream, so
characters that cannot travel there are escaped when the identity is built: the subject uses
RFC 4514's own ``\\XX`` escapes (it stays a valid RFC 4514 string meaning the same name).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.x509.oid import NameOID

from tlsgate.errors import InvalidIdentity, TlsgateError
from tlsgate.pki.names import parse_spiffe_id

__all__ = ["ClientIdentity", "IdentityError"]


class IdentityError(TlsgateError):
    """A client certificate that cannot be read (undecodable DER or extensions)."""


@dataclass(frozen=True)
class ClientIdentity:
    """What a verified client certificate says about its holder (the leaf only)."""

    sha256: str  # lower-case hex SHA-256 of the DER certificate (XFCC Hash)
    subject: str  # RFC 4514 string of the subject, e.g. "CN=billing,OU=payments,O=Acme"
    spiffe_id: str | None  # the URI SAN if it is a valid SPIFFE ID and the only URI SAN, else None
    uris: tuple[str, ...]  # all URI SANs
    dns: tuple[str, ...]  # DNS SANs (lower-case)
    common_names: tuple[str, ...]
    organizational_units: tuple[str, ...]
    serial: int
    not_after: datetime

    @classmethod
    def from_der(cls, der: bytes) -> ClientIdentity:
        """Read the leaf as the peer sent it; IdentityError when it cannot be decoded.

        The TLS library has parsed it already, but with a different parser: a certificate it
        accepts and ``cryptography`` cannot read is refused (by the caller) rather than guessed at.
        """
        try:
            cert = x509.load_der_x509_certificate(der)
            sans = _sans(cert)
            svid_shape = _svid_shaped(cert)
            subject = _escape_controls(cert.subject.rfc4514_string())
            common_names = _attributes(cert.subject, NameOID.COMMON_NAME)
            units = _attributes(cert.subject, NameOID.ORGANIZATIONAL_UNIT_NAME)
        except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as exc:
            raise IdentityError(f"cannot read the client certificate: {exc}") from None
        uris = tuple(n.value for n in sans if isinstance(n, x509.UniformResourceIdentifier))
        dns = tuple(n.value.lower() for n in sans if isinstance(n, x509.DNSName))
        return cls(
            sha256=hashlib.sha256(der).hexdigest(),
            subject=subject,
            spiffe_id=_spiffe_id(uris) if svid_shape else None,
            uris=uris,
            dns=dns,
            common_names=common_names,
            organizational_units=units,
            serial=cert.serial_number,
            not_after=cert.not_valid_after_utc,
        )


def _sans(cert: x509.Certificate) -> list[x509.GeneralName]:
    try:
        return list(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        return []


def _attributes(name: x509.Name, oid: x509.ObjectIdentifier) -> tuple[str, ...]:
    values = (attribute.value for attribute in name.get_attributes_for_oid(oid))
    return tuple(value if isinstance(value, str) else value.decode("latin-1") for value in values)


def _spiffe_id(uris: tuple[str, ...]) -> str | None:
    """The SPIFFE ID, held to the X.509-SVID rule validators apply: exactly one URI SAN.

    The ID must already be in canonical form (``spiffe://`` in lower case and all), like
    go-spiffe requires: two spellings of one ID would defeat exact-match allow lists.
    """
    if len(uris) != 1:
        return None
    try:
        canonical = parse_spiffe_id(uris[0])
    except InvalidIdentity:
        return None
    return canonical if canonical == uris[0] else None


def _svid_shaped(cert: x509.Certificate) -> bool:
    """The X.509-SVID leaf profile as go-spiffe enforces it: not a CA, signs, but no certificates.

    The extended key usage is left to the TLS handshake, which has checked clientAuth already;
    requiring serverAuth too (which SVIDs carry by convention) would only refuse client-only ones.
    """
    extensions = cert.extensions
    try:
        if extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            return False
    except x509.ExtensionNotFound:
        pass
    try:
        usage = extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return usage.digital_signature and not (usage.key_cert_sign or usage.crl_sign)


def _escape_controls(text: str) -> str:
    """Control and other invisible characters as RFC 4514 ``\\XX`` escapes (of their UTF-8).

    ``rfc4514_string`` leaves a newline or a DEL as it is; a subject carrying one must not be
    able to split a log line or a header. RFC 4514 allows any character as hex pairs, so the
    result still parses to the same name.
    """
    if text.isprintable():
        return text
    return "".join(
        char
        if char.isprintable()
        else "".join(f"\\{byte:02X}" for byte in char.encode("utf-8", "surrogatepass"))
        for char in text
    )

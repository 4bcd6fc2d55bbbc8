"""RFC 8737 tls-alpn-01: the challenge certificate, and the checks that make it a proof.

Shared by the validator (which connects and checks) and by tests and tlsgate's own ACME client
(which serve the certificate). The handshake that fetches the certificate skips chain
verification, because the certificate is self-signed by design; that context is made only by
:func:`challenge_client_context` and its only caller is the tls-alpn-01 validator.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import ssl

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from tlsgate.errors import TlsgateError
from tlsgate.pki.keys import private_key_pem
from tlsgate.pki.names import parse_dns_name
from tlsgate.pki.pem import certificate_pem

__all__ = [
    "ACME_IDENTIFIER_OID",
    "ACME_TLS_ALPN",
    "ChallengeCertificateError",
    "alpn_challenge_certificate",
    "challenge_client_context",
    "check_challenge_certificate",
    "ip_literal",
    "key_authorization_digest",
]

#: RFC 8737 section 6.1: the ALPN protocol a tls-alpn-01 responder must negotiate.
ACME_TLS_ALPN = "acme-tls/1"
#: RFC 8737 section 6.1: id-pe-acmeIdentifier, holding SHA-256 of the key authorization.
ACME_IDENTIFIER_OID = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.31")


class ChallengeCertificateError(TlsgateError):
    """The peer's certificate is not a valid tls-alpn-01 response; the message says why."""


def ip_literal(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address if ``name`` is an IP identifier (RFC 8738), else None."""
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


def _identifier_name(name: str) -> x509.GeneralName:
    """The one subjectAltName a tls-alpn-01 certificate for ``name`` must carry."""
    address = ip_literal(name)
    return x509.IPAddress(address) if address is not None else x509.DNSName(name)


def key_authorization_digest(key_authorization: str) -> bytes:
    return hashlib.sha256(key_authorization.encode("utf-8")).digest()


def _acme_identifier_value(key_authorization: str) -> bytes:
    """The extension's DER value: an OCTET STRING (tag 4, length 32) of the digest."""
    return b"\x04\x20" + key_authorization_digest(key_authorization)


def alpn_challenge_certificate(identifier: str, key_authorization: str) -> tuple[bytes, bytes]:
    """The RFC 8737 self-signed challenge certificate and its key, both PEM.

    For tests and for tlsgate's own ACME client: ECDSA P-256, exactly one subjectAltName
    (dNSName, or iPAddress for an RFC 8738 IP identifier; critical, as the subject is empty)
    and the critical acmeIdentifier extension. Short-lived on purpose.
    """
    san = (
        x509.IPAddress(ipaddress.ip_address(identifier))
        if ip_literal(identifier) is not None
        else x509.DNSName(parse_dns_name(identifier, allow_wildcard=False))
    )
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(x509.Name([]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName([san]), critical=True)
        .add_extension(
            x509.UnrecognizedExtension(
                ACME_IDENTIFIER_OID, _acme_identifier_value(key_authorization)
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return certificate_pem(cert), private_key_pem(key)


def challenge_client_context() -> ssl.SSLContext:
    """The client context for tls-alpn-01, and for nothing else.

    RFC 8737's challenge certificate is self-signed by design: the proof is not a chain to a
    trusted root but the certificate's contents, which :func:`check_challenge_certificate`
    verifies (exactly one dNSName equal to the identifier, a critical acmeIdentifier holding
    SHA-256 of the key authorization). So chain and host name verification are switched off
    here, deliberately and only here; a fresh context per handshake keeps it from being shared.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2  # RFC 8737 section 4
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols([ACME_TLS_ALPN])
    return context


def check_challenge_certificate(der: bytes, name: str, key_authorization: str) -> None:
    """RFC 8737 section 3: the checks that make the unverified handshake a proof."""
    try:
        cert = x509.load_der_x509_certificate(der)
        extensions = cert.extensions
    except (ValueError, x509.DuplicateExtension) as exc:
        raise ChallengeCertificateError(f"the certificate cannot be parsed: {exc}") from None
    try:
        san = extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise ChallengeCertificateError("the certificate has no subjectAltName") from None
    names = list(san)
    expected_name = _identifier_name(name)
    if len(names) != 1 or type(names[0]) is not type(expected_name):
        shown = ", ".join(str(getattr(n, "value", n)) for n in names)
        raise ChallengeCertificateError(
            f"the certificate names [{shown}]; RFC 8737 requires exactly one "
            f"{'iPAddress' if isinstance(expected_name, x509.IPAddress) else 'dNSName'}, {name}",
        )
    seen_name = names[0].value
    if isinstance(seen_name, str):
        seen_name = seen_name.lower().rstrip(".")
    if seen_name != expected_name.value:
        raise ChallengeCertificateError(f"the certificate is for {names[0].value}, not {name}")
    try:
        extension = extensions.get_extension_for_oid(ACME_IDENTIFIER_OID)
    except x509.ExtensionNotFound:
        raise ChallengeCertificateError("the certificate has no acmeIdentifier extension") from None
    if not extension.critical:
        raise ChallengeCertificateError(
            "the certificate's acmeIdentifier extension is not critical"
        )
    value = extension.value
    seen = value.value if isinstance(value, x509.UnrecognizedExtension) else b""
    expected = _acme_identifier_value(key_authorization)
    if seen != expected:
        raise ChallengeCertificateError(
            f"the certificate's acmeIdentifier is {seen.hex()}, expected {expected.hex()} "
            "(OCTET STRING of SHA-256 of the key authorization)",
        )

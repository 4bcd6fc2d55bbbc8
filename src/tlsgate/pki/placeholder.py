"""The certificate ``serve`` presents for a site whose real one has not been issued yet.

An ACME site needs its listeners up *before* its first certificate exists (the CA validates by
connecting to them), so something must answer the handshake meanwhile. A self-signed
certificate that says what it is fails every client's verification loudly (nothing trusts it)
instead of borrowing trust from any CA, and a browser user who looks sees why.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tlsgate.pki.keys import private_key_pem
from tlsgate.pki.names import parse_identities
from tlsgate.pki.pem import certificate_pem
from tlsgate.pki.profiles import backdate
from tlsgate.pki.serial import random_serial

__all__ = ["PLACEHOLDER_SUBJECT", "placeholder_certificate"]

PLACEHOLDER_SUBJECT = "tlsgate placeholder: certificate not issued yet"
_LIFETIME = timedelta(days=1)


def placeholder_certificate(names: Sequence[str], *, now: datetime) -> tuple[bytes, bytes]:
    """A self-signed leaf for ``names`` valid for a day: (certificate PEM, key PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, PLACEHOLDER_SUBJECT)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(random_serial())
        .not_valid_before(now - backdate(_LIFETIME))
        .not_valid_after(now + _LIFETIME)
        .add_extension(x509.SubjectAlternativeName(parse_identities(names)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return certificate_pem(cert), private_key_pem(key)

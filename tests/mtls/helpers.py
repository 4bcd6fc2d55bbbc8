"""Client certificates for the mtls tests, signed by the test CA's intermediate.

``ca.issue`` makes the certificates the CA really hands out; :func:`forge` makes the ones it
never would (several URIs, CA flags, odd subjects), still signed by the same intermediate, so a
test can show what a verified-but-unusual certificate turns into.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tlsgate.ca import CertificateAuthority
from tlsgate.mtls.identity import ClientIdentity
from tlsgate.pki.keys import generate_key, signature_hash
from tlsgate.pki.names import parse_identities
from tlsgate.pki.profiles import LeafProfile
from tlsgate.pki.serial import random_serial

CLIENT = LeafProfile(server=False, client=True)

_KEY = generate_key()


def issued(ca: CertificateAuthority, now: datetime, *names: str) -> bytes:
    """DER of a client certificate exactly as ``tlsgate ca issue --client`` makes it."""
    cert = ca.issue(parse_identities(names), now=now, profile=CLIENT).certificate
    return cert.public_bytes(Encoding.DER)


def identity(ca: CertificateAuthority, now: datetime, *names: str) -> ClientIdentity:
    return ClientIdentity.from_der(issued(ca, now, *names))


def usage(*, sign: bool = True, cert_sign: bool = False, crl_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def subject(cn: Sequence[str] = (), ou: Sequence[str] = (), o: Sequence[str] = ()) -> x509.Name:
    """O, then OU, then CN (the order RFC 4514 prints in reverse: CN first)."""
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, v) for v in o]
    attributes += [x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, v) for v in ou]
    attributes += [x509.NameAttribute(NameOID.COMMON_NAME, v) for v in cn]
    return x509.Name(attributes)


def forge(
    ca: CertificateAuthority,
    now: datetime,
    *,
    name: x509.Name | None = None,
    sans: Sequence[x509.GeneralName] = (),
    is_ca: bool = False,
    key_usage: x509.KeyUsage | None = None,
    serial: int | None = None,
) -> bytes:
    """DER of a leaf the CA would never issue, signed by its intermediate all the same."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(name if name is not None else x509.Name([]))
        .issuer_name(ca.intermediate.subject)
        .public_key(_KEY.public_key())
        .serial_number(serial if serial is not None else random_serial())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    )
    if key_usage is not None:
        builder = builder.add_extension(key_usage, critical=True)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    key = ca.intermediate_key
    return builder.sign(key, signature_hash(key)).public_bytes(Encoding.DER)

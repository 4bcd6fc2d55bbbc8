"""PEM in and out, with errors that say which block is wrong and how.

``cryptography`` reports a truncated file and a file of the wrong type the same way ("unable to
load"); people fixing a deployment need to know which one they have, so the block structure is
checked here first and only then handed to ``cryptography`` for the DER inside.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tlsgate.errors import InvalidPEM

__all__ = [
    "certificate_pem",
    "certificates_pem",
    "load_certificate",
    "load_certificates",
    "load_csr",
    "pem_block_types",
]

# A BEGIN line, or one cut short at the very end of the data (a bundle truncated mid-line).
_BEGIN = re.compile(rb"-----BEGIN(?: ([A-Z0-9 ]+)-----|[A-Z0-9 ]*-{0,4}\s*\Z)")
_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.S)


def pem_block_types(data: bytes) -> list[str]:
    """Names of the complete PEM blocks in ``data``; raises if a block is opened but not closed."""
    begins = _BEGIN.findall(data)
    blocks = _BLOCK.findall(data)
    last_line = data.rstrip().rpartition(b"\n")[2]
    cut_in_begin = bool(last_line) and b"-----BEGIN".startswith(last_line)  # cut at "-----BE"
    if len(begins) != len(blocks) or cut_in_begin:
        raise InvalidPEM("truncated PEM: a BEGIN line has no matching END line")
    return [name.decode() for name, _ in blocks]


def _expect(data: bytes, wanted: Sequence[str], source: str) -> list[str]:
    if b"-----BEGIN" not in data:
        raise InvalidPEM(f"{source}: not PEM (no -----BEGIN line)")
    try:
        types = pem_block_types(data)
    except InvalidPEM as exc:
        raise InvalidPEM(f"{source}: {exc}") from None
    wrong = [t for t in types if t not in wanted]
    if wrong:
        raise InvalidPEM(f"{source}: expected {' or '.join(wanted)}, found {wrong[0]}")
    return types


def load_certificates(data: bytes, *, source: str = "certificate") -> list[x509.Certificate]:
    """Every certificate in a PEM bundle, in file order; at least one."""
    _expect(data, ["CERTIFICATE"], source)
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise InvalidPEM(f"{source}: corrupted certificate ({exc})") from None
    if not certs:  # pragma: no cover - _expect guarantees a block
        raise InvalidPEM(f"{source}: no certificate found")
    return certs


def load_certificate(data: bytes, *, source: str = "certificate") -> x509.Certificate:
    certs = load_certificates(data, source=source)
    if len(certs) != 1:
        raise InvalidPEM(f"{source}: expected one certificate, found {len(certs)}")
    return certs[0]


def load_csr(data: bytes, *, source: str = "CSR") -> x509.CertificateSigningRequest:
    """Load a PEM (or DER) certificate signing request. Its signature is checked in ``csr.py``."""
    if b"-----BEGIN" not in data:
        try:
            return x509.load_der_x509_csr(data)
        except ValueError:
            raise InvalidPEM(f"{source}: not a PEM or DER certificate request") from None
    types = _expect(data, ["CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"], source)
    if len(types) != 1:
        raise InvalidPEM(f"{source}: expected one certificate request, found {len(types)}")
    try:
        return x509.load_pem_x509_csr(data)
    except ValueError as exc:
        raise InvalidPEM(f"{source}: corrupted certificate request ({exc})") from None


def certificate_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def certificates_pem(certs: Sequence[x509.Certificate]) -> bytes:
    return b"".join(certificate_pem(c) for c in certs)

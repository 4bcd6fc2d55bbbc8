"""Trust anchors: the system store by default, or the roots in ``--ca``.

Both the TLS handshake (through a CA file OpenSSL loads) and the pure path validation
(``cryptography`` certificates) must use the very same roots, or the explanation could disagree
with the verdict; a :class:`Trust` carries both forms of one set.
"""

from __future__ import annotations

import ssl
import warnings
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from cryptography import x509
from cryptography.utils import CryptographyDeprecationWarning

from tlsgate.errors import InvalidPEM, TlsgateError

__all__ = ["Trust", "load_trust", "parse_certificates", "system_trust"]


@dataclass(frozen=True)
class Trust:
    label: str  # "system store (/etc/ssl/certs/ca-certificates.crt)" or the --ca path
    roots: tuple[x509.Certificate, ...]
    cafile: Path | None  # the same roots as a file OpenSSL can load


def parse_certificates(data: bytes) -> list[x509.Certificate]:
    """PEM (any number of certificates, other blocks ignored) or a single DER certificate;
    ValueError saying what the bytes are instead. One reader for ``--ca`` and ``check FILE``."""
    if b"-----BEGIN" in data:
        if b"-----BEGIN CERTIFICATE-----" not in data:
            raise ValueError("it has PEM blocks but no CERTIFICATE block (a key or CSR only?)")
        with warnings.catch_warnings():
            # System bundles still carry a few old roots with non-positive serials; they are
            # usable anchors and the warning is about a future cryptography release, not us.
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            return x509.load_pem_x509_certificates(data)
    if not data:
        raise ValueError("the file is empty")
    return [x509.load_der_x509_certificate(data)]


def _read_roots(path: Path) -> tuple[x509.Certificate, ...]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TlsgateError(f"cannot read the CA file {path}: {exc.strerror or exc}") from None
    try:
        return tuple(parse_certificates(data))
    except ValueError as exc:
        raise InvalidPEM(f"{path} is not a CA file (PEM or DER certificates): {exc}") from None


def load_trust(ca: Path | None) -> Trust:
    """The roots in ``ca``, or the system's when ``ca`` is None."""
    if ca is None:
        return system_trust()
    return Trust(str(ca), _read_roots(ca), ca)


@cache
def system_trust() -> Trust:
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile):
        if candidate and Path(candidate).is_file():
            path = Path(candidate)
            return Trust(f"system store ({path})", _read_roots(path), path)
    raise TlsgateError(
        "no system CA bundle found (install the ca-certificates package, or pass --ca FILE)"
    )

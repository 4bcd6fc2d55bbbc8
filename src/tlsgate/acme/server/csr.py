"""Finalize's CSR (RFC 8555 7.4): accepted only for exactly the identifiers of the order.

The names in its subjectAltName together with its common name, as a set, nothing more and
nothing less. Pure: DER in, a :class:`~tlsgate.pki.csr.CheckedCSR` or a ``CSRError`` out.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from cryptography import x509
from cryptography.x509.oid import ExtensionOID, NameOID

from tlsgate.errors import CSRError
from tlsgate.pki.csr import CheckedCSR, check_csr

__all__ = ["check_finalize_csr", "csr_identifiers"]


def csr_identifiers(csr: x509.CertificateSigningRequest) -> set[tuple[str, str]]:
    """The identifiers a CSR asks for: subjectAltName DNS names and IPs, plus the common name."""
    found: set[tuple[str, str]] = set()
    try:
        san = csr.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    except x509.ExtensionNotFound:
        san = None
    if isinstance(san, x509.SubjectAlternativeName):
        for name in san:
            if isinstance(name, x509.DNSName):
                found.add(("dns", name.value.lower()))
            elif isinstance(name, x509.IPAddress):
                found.add(("ip", str(name.value)))
            else:
                found.add((type(name).__name__, str(name.value)))
    for attr in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME):
        value = attr.value if isinstance(attr.value, str) else attr.value.decode()
        try:
            found.add(("ip", str(ipaddress.ip_address(value))))
        except ValueError:
            found.add(("dns", value.lower()))
    return found


def check_finalize_csr(der: bytes, identifiers: Iterable[tuple[str, str]]) -> CheckedCSR:
    """The CSR of a finalize request, if it is sound and names exactly ``identifiers``.

    Raises :class:`~tlsgate.errors.CSRError` (the front end answers ``badCSR``) otherwise.
    """
    try:
        csr = x509.load_der_x509_csr(der)
    except ValueError:
        raise CSRError("the csr field is not a DER certification request") from None
    checked = check_csr(csr)
    wanted = set(identifiers)
    asked = csr_identifiers(csr)
    if asked != wanted:
        extra = sorted(f"{t}:{v}" for t, v in asked - wanted)
        missing = sorted(f"{t}:{v}" for t, v in wanted - asked)
        parts = []
        if extra:
            parts.append("names not in the order: " + ", ".join(extra))
        if missing:
            parts.append("order identifiers missing: " + ", ".join(missing))
        raise CSRError("the CSR does not match the order (" + "; ".join(parts) + ")")
    return checked

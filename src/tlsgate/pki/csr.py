"""Certificate signing requests: build them, and check the ones others send.

A CSR proves possession of a key (its self-signature) and asks for names. Everything a requester
can get wrong is reported precisely, because the person reading the error usually generated the CSR
with a tool they do not control: bad signature, unsupported or weak key, names that cannot be
issued.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import NameOID

from tlsgate.errors import CSRError, InvalidIdentity, InvalidKey
from tlsgate.pki.keys import PrivateKey, PublicKey, check_public_key, signature_hash
from tlsgate.pki.names import parse_identities, parse_identity
from tlsgate.pki.pem import load_csr

__all__ = ["CheckedCSR", "build_csr", "check_csr", "load_and_check_csr"]


@dataclass(frozen=True)
class CheckedCSR:
    """A request whose signature is valid and whose key and names we can issue for."""

    csr: x509.CertificateSigningRequest
    public_key: PublicKey
    names: tuple[x509.GeneralName, ...]


def build_csr(key: PrivateKey, names: Sequence[x509.GeneralName]) -> x509.CertificateSigningRequest:
    """A minimal CSR: SANs only (the CN is the CA's business), signed by ``key``."""
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(x509.SubjectAlternativeName(list(names)), critical=False)
        .sign(key, signature_hash(key))
    )


def _requested_names(csr: x509.CertificateSigningRequest) -> list[str]:
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    except ValueError as exc:  # malformed extension encoding
        raise CSRError(f"malformed extension in CSR ({exc})") from None
    texts: list[str] = []
    if san is not None:
        for name in san:
            if isinstance(name, x509.DNSName | x509.RFC822Name | x509.UniformResourceIdentifier):
                texts.append(name.value)
            elif isinstance(name, x509.IPAddress):
                texts.append(str(name.value))
            else:
                raise CSRError(f"CSR asks for an unsupported name type {type(name).__name__}")
    if not texts:
        # Legacy requests carry the host only in the subject CN.
        for attr in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME):
            value = attr.value if isinstance(attr.value, str) else attr.value.decode()
            texts.append(value)
    return texts


def check_csr(csr: x509.CertificateSigningRequest) -> CheckedCSR:
    if not csr.is_signature_valid:
        raise CSRError(
            "CSR signature is invalid: the request was altered or signed with another key"
        )
    try:
        public_key = check_public_key(csr.public_key())
    except InvalidKey as exc:
        raise CSRError(f"CSR key rejected: {exc}") from None
    except ValueError as exc:
        raise CSRError(f"CSR key cannot be read ({exc})") from None
    texts = _requested_names(csr)
    if not texts:
        raise CSRError("CSR asks for no names (no subjectAltName and no common name)")
    try:
        names = parse_identities(texts)
    except InvalidIdentity as exc:
        raise CSRError(f"CSR name rejected: {exc}") from None
    return CheckedCSR(csr=csr, public_key=public_key, names=tuple(names))


def load_and_check_csr(data: bytes, *, source: str = "CSR") -> CheckedCSR:
    return check_csr(load_csr(data, source=source))


def same_names(a: Sequence[x509.GeneralName], b: Sequence[str]) -> bool:
    """Do the CSR's names equal the identity strings asked for on the command line (as sets)?"""
    return set(a) == {parse_identity(t) for t in b}

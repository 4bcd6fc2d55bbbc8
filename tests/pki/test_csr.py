from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from tlsgate.errors import CSRError, InvalidPEM
from tlsgate.pki.csr import build_csr, check_csr, load_and_check_csr, same_names
from tlsgate.pki.keys import KeyType, generate_key
from tlsgate.pki.names import parse_identities


def csr_pem(csr: x509.CertificateSigningRequest) -> bytes:
    return csr.public_bytes(serialization.Encoding.PEM)


@pytest.mark.parametrize("key_type", list(KeyType))
def test_roundtrip_every_key_type(key_type: KeyType) -> None:
    key = generate_key(key_type)
    names = parse_identities(["a.example", "10.0.0.1"])
    checked = load_and_check_csr(csr_pem(build_csr(key, names)))
    assert list(checked.names) == names
    assert checked.public_key == key.public_key()


def test_bad_signature_is_detected() -> None:
    der = bytearray(
        build_csr(generate_key(), parse_identities(["a.example"])).public_bytes(
            serialization.Encoding.DER
        )
    )
    der[-5] ^= 0x01  # inside the signature value
    with pytest.raises(CSRError, match="signature is invalid"):
        check_csr(x509.load_der_x509_csr(bytes(der)))


def test_weak_rsa_key_rejected() -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("a.example")]), critical=False)
        .sign(weak, hashes.SHA256())
    )
    with pytest.raises(CSRError, match="1024 bits is too weak"):
        check_csr(csr)


def test_unsupported_curve_rejected() -> None:
    key = ec.generate_private_key(ec.SECP521R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("a.example")]), critical=False)
        .sign(key, hashes.SHA512())
    )
    with pytest.raises(CSRError, match="unsupported elliptic curve"):
        check_csr(csr)


def test_legacy_common_name_only() -> None:
    key = generate_key()
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "legacy.example")]))
        .sign(key, hashes.SHA256())
    )
    assert list(check_csr(csr).names) == [x509.DNSName("legacy.example")]


def test_no_names_rejected() -> None:
    key = generate_key()
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .sign(
            key,
            hashes.SHA256(),
        )
    )
    with pytest.raises(CSRError, match="no names"):
        check_csr(csr)


def test_bad_name_in_csr_rejected() -> None:
    key = generate_key()
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("*.*.com")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    with pytest.raises(CSRError, match="wildcard"):
        check_csr(csr)


def test_truncated_and_garbage() -> None:
    pem = csr_pem(build_csr(generate_key(), parse_identities(["a.example"])))
    with pytest.raises(InvalidPEM, match="truncated"):
        load_and_check_csr(pem[: len(pem) // 2])
    with pytest.raises(InvalidPEM):
        load_and_check_csr(b"hello world")


def test_same_names_is_set_equality() -> None:
    names = parse_identities(["a.example", "b.example"])
    assert same_names(names, ["B.example", "a.example."])
    assert not same_names(names, ["a.example"])

"""Order and authorization statuses, and finalize's CSR check (tlsgate.acme.server.status, .csr)."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from tlsgate.acme.server.csr import check_finalize_csr, csr_identifiers
from tlsgate.acme.server.status import abandoned, authorization_status, order_status
from tlsgate.errors import CSRError
from tlsgate.store.acme import AcmeChallenge, ChallengeStatus, ChallengeType

NOW = datetime(2026, 11, 29, tzinfo=UTC)
LATER = NOW + timedelta(days=7)


def test_authorization_status() -> None:
    assert (
        authorization_status("pending", ["pending", "pending"], expires=LATER, now=NOW) == "pending"
    )
    assert authorization_status("pending", ["pending", "valid"], expires=LATER, now=NOW) == "valid"
    assert (
        authorization_status("pending", ["invalid", "pending"], expires=LATER, now=NOW) == "invalid"
    )
    assert authorization_status("pending", ["pending"], expires=NOW, now=NOW) == "expired"
    assert authorization_status("valid", ["valid"], expires=LATER, now=NOW) == "valid"
    assert authorization_status("valid", ["valid"], expires=NOW, now=LATER) == "expired"
    assert authorization_status("deactivated", [], expires=LATER, now=NOW) == "deactivated"


def test_order_status() -> None:
    assert order_status("pending", ["valid", "pending"], expires=LATER, now=NOW) == "pending"
    assert order_status("pending", ["valid", "valid"], expires=LATER, now=NOW) == "ready"
    for dead in ("invalid", "deactivated", "expired", "revoked"):
        assert order_status("pending", ["valid", dead], expires=LATER, now=NOW) == "invalid"
    assert order_status("pending", ["valid"], expires=NOW, now=NOW) == "invalid"
    assert order_status("ready", ["valid"], expires=NOW, now=LATER) == "invalid"
    assert order_status("processing", ["valid"], expires=NOW, now=LATER) == "processing"
    assert order_status("valid", ["expired"], expires=NOW, now=LATER) == "valid"
    assert order_status("pending", [], expires=LATER, now=NOW) == "pending"


def test_abandoned_is_processing_since_before_the_cutoff_or_since_unknown() -> None:
    def challenge(status: ChallengeStatus, since: datetime | None) -> AcmeChallenge:
        return AcmeChallenge("c", "a", ChallengeType.HTTP_01, "tok", status, processing_since=since)

    processing = ChallengeStatus.PROCESSING
    assert abandoned(challenge(processing, NOW - timedelta(minutes=2)), NOW - timedelta(minutes=1))
    assert abandoned(challenge(processing, None), NOW)  # written by a node older than schema 6
    assert not abandoned(challenge(processing, NOW), NOW - timedelta(minutes=1))
    assert not abandoned(challenge(ChallengeStatus.PENDING, None), NOW)
    assert not abandoned(challenge(ChallengeStatus.VALID, NOW - timedelta(days=1)), NOW)


def csr(names: list[x509.GeneralName], cn: str | None = None, key: object | None = None) -> bytes:
    private = key or ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn else [])
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(private, hashes.SHA256()).public_bytes(Encoding.DER)  # type: ignore[arg-type]


ORDER = {("dns", "a.example.test"), ("dns", "*.example.test"), ("ip", "127.0.0.1")}
NAMES: list[x509.GeneralName] = [
    x509.DNSName("a.example.test"),
    x509.DNSName("*.example.test"),
    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
]


def test_exact_match_is_accepted_cn_counts_too() -> None:
    checked = check_finalize_csr(csr(NAMES, cn="a.example.test"), ORDER)
    assert set(checked.names) == set(NAMES)
    assert csr_identifiers(x509.load_der_x509_csr(csr([], cn="only.example.test"))) == {
        ("dns", "only.example.test")
    }
    check_finalize_csr(csr([], cn="only.example.test"), {("dns", "only.example.test")})


@pytest.mark.parametrize(
    ("names", "cn", "message"),
    [
        (NAMES[:2], None, "order identifiers missing: ip:127.0.0.1"),
        ([*NAMES, x509.DNSName("evil.example.test")], None, "names not in the order: dns:evil"),
        (NAMES, "other.example.test", "names not in the order: dns:other.example.test"),
    ],
)
def test_mismatch_is_bad_csr(names: list[x509.GeneralName], cn: str | None, message: str) -> None:
    with pytest.raises(CSRError, match=message):
        check_finalize_csr(csr(names, cn=cn), ORDER)


def test_garbage_and_weak_keys_are_bad_csr() -> None:
    with pytest.raises(CSRError, match="not a DER"):
        check_finalize_csr(b"\x30\x03garbage", ORDER)
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(CSRError, match="key rejected"):
        check_finalize_csr(csr(NAMES, key=weak), ORDER)

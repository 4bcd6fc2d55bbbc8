"""ACME Renewal Information (tlsgate.acme.ari)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tlsgate.acme.ari import cert_id, parse_cert_id, renewal_window

NOW = datetime(2026, 11, 29, tzinfo=UTC)


def certificate(serial: int, *, aki: bool = True) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "t")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(NOW)
        .not_valid_after(NOW + timedelta(days=90))
    )
    if aki:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier(b"\x69\x88\x5b\x6b\x87\x46\x40\x41\xe1\xb3", None, None),
            critical=False,
        )
    return builder.sign(key, hashes.SHA256())


def test_cert_id_matches_rfc_9773_example() -> None:
    # RFC 9773 4.1: keyIdentifier 69:88:5B:6B:87:46:40:41:E1:B3, serial 00:87:65:43:21.
    cert = certificate(0x87654321)
    assert cert_id(cert) == "aYhba4dGQEHhsw.AIdlQyE"
    assert parse_cert_id("aYhba4dGQEHhsw.AIdlQyE") == (
        b"\x69\x88\x5b\x6b\x87\x46\x40\x41\xe1\xb3",
        0x87654321,
    )
    assert parse_cert_id(cert_id(certificate(1)))[1] == 1


def test_cert_id_needs_an_aki() -> None:
    with pytest.raises(ValueError, match="authority key identifier"):
        cert_id(certificate(5, aki=False))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "abc",
        "a.b.c",
        "aYhba4dGQEHhsw.AIdlQyE=",
        "aYhba4dGQEHhsw.gA",
        "aYhba4dGQEHhsw.AAE",
        "a+b.AQ",
    ],
)
def test_malformed_cert_ids(text: str) -> None:
    with pytest.raises(ValueError):
        parse_cert_id(text)


def test_window_is_the_start_of_the_last_third() -> None:
    window = renewal_window(NOW, NOW + timedelta(days=90), revoked=False, now=NOW)
    assert (window.start, window.end) == (NOW + timedelta(days=60), NOW + timedelta(days=75))
    assert window.to_json() == {
        "suggestedWindow": {"start": "2027-01-28T00:00:00Z", "end": "2027-02-12T00:00:00Z"}
    }
    assert window.retry_after == timedelta(hours=6)


def test_revoked_means_renew_now() -> None:
    later = NOW + timedelta(days=3)
    window = renewal_window(NOW, NOW + timedelta(days=90), revoked=True, now=later)
    assert window.start < later and window.end <= later

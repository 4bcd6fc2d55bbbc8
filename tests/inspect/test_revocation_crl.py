"""check's CRL lookup: a fetched CRL that cannot be trusted is "could not find out", not "revoked".

check_revocation now refuses a stale or unusable CRL (``bad-crl``) instead of skipping it; the
lookup must read that refusal as "unknown", neither "revoked" nor "not revoked" (which it said for
a stale CRL before). The CRL is served over loopback HTTP.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.inspect.zoo import _CrlServer
from tests.pki.helpers import Hierarchy, hierarchy
from tlsgate.inspect.revocation import lookup
from tlsgate.pki.keys import generate_key

NOW = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.fixture
def crl_server() -> Iterator[_CrlServer]:
    server = _CrlServer()
    yield server
    server.close()


def leaf_with_crl(pki: Hierarchy, url: str) -> x509.Certificate:
    point = x509.DistributionPoint(
        full_name=[x509.UniformResourceIdentifier(url)],
        relative_name=None,
        reasons=None,
        crl_issuer=None,
    )
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name.from_rfc4514_string("CN=crl.example"))
        .issuer_name(pki.intermediate.subject)
        .public_key(generate_key().public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(hours=1))
        .not_valid_after(NOW + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("crl.example")]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.CRLDistributionPoints([point]), critical=False)
        .sign(pki.intermediate_key, hashes.SHA256())
    )


def crl(pki: Hierarchy, revoked: int, *, last: datetime, next_: datetime) -> bytes:
    built = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(pki.intermediate.subject)
        .last_update(last)
        .next_update(next_)
        .add_extension(x509.CRLNumber(3), critical=False)
        .add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(revoked).revocation_date(last).build()
        )
        .sign(pki.intermediate_key, hashes.SHA256())
    )
    return built.public_bytes(Encoding.DER)


def test_a_stale_crl_is_unknown_not_revoked(crl_server: _CrlServer) -> None:
    """It does not list the leaf, but being out of date it cannot say "not revoked" either."""
    pki = hierarchy(NOW - timedelta(days=30), name="Lookup")
    leaf = leaf_with_crl(pki, crl_server.url)
    crl_server.crl = crl(
        pki, leaf.serial_number + 1, last=NOW - timedelta(days=9), next_=NOW - timedelta(days=2)
    )
    status = asyncio.run(lookup([leaf, pki.intermediate, pki.root], NOW, timeout=10))
    assert crl_server.fetches == 1
    assert not status.revoked and not status.known
    assert "out of date" in status.detail


@pytest.mark.parametrize("stale", [False, True])
def test_a_crl_listing_the_leaf_is_revoked(crl_server: _CrlServer, stale: bool) -> None:
    """The issuer signed "revoked": that holds even in a CRL that is no longer current."""
    pki = hierarchy(NOW - timedelta(days=30), name="Lookup")
    leaf = leaf_with_crl(pki, crl_server.url)
    last, next_ = NOW - timedelta(hours=1), NOW + timedelta(days=2)
    if stale:
        last, next_ = NOW - timedelta(days=9), NOW - timedelta(days=2)
    crl_server.crl = crl(pki, leaf.serial_number, last=last, next_=next_)
    status = asyncio.run(lookup([leaf, pki.intermediate, pki.root], NOW, timeout=10))
    assert status.revoked and status.known

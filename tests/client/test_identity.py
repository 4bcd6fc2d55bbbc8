"""A service's client certificate: issued from the state's CA, stored, reused, replaced, renewed."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from tlsgate.ca import CertificateAuthority
from tlsgate.client.identity import (
    CLIENT_ISSUER,
    ClientCertificate,
    canonical_identity,
    client_renewer,
    current_certificate,
    managed_name,
)
from tlsgate.errors import InvalidIdentity, NotInitialized
from tlsgate.renewal.issuers import InternalIssuer
from tlsgate.store.sqlite import SQLiteStore

ID = "spiffe://example.org/ns/a/sa/client"


def test_an_svid_for_client_use_only(ca: CertificateAuthority, store: SQLiteStore) -> None:
    cert = current_certificate(store, ID, lifetime=timedelta(hours=2))
    leaf = cert.leaf
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert list(san) == [x509.UniformResourceIdentifier(ID)]  # exactly one URI name
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert leaf.not_valid_after_utc - datetime.now(UTC) <= timedelta(hours=2)
    assert leaf.issuer == ca.intermediate.subject
    stored = store.load_managed(managed_name(ID))
    assert stored is not None and stored.issuer == CLIENT_ISSUER == "internal-client"
    assert stored.fullchain_pem == cert.record.fullchain_pem
    # The CA's audit trail says who asked.
    assert ca.certificates()[-1].requester == "client"


def test_reused_while_valid_replaced_when_not(ca: CertificateAuthority, store: SQLiteStore) -> None:
    first = current_certificate(store, ID)
    assert current_certificate(store, ID).serial == first.serial  # a restart reuses it
    # Nearly expired by the time it is asked for: a new one.
    later = datetime.now(UTC) + timedelta(hours=23, minutes=59)
    assert current_certificate(store, ID, now=later).serial != first.serial
    # Asked for a much shorter life than the stored one has: a new one at once.
    short = current_certificate(store, ID, lifetime=timedelta(minutes=1))
    assert short.not_after - datetime.now(UTC) <= timedelta(minutes=1)
    assert current_certificate(store, ID, lifetime=timedelta(minutes=1)).serial == short.serial


def test_a_new_ca_means_a_new_certificate(ca: CertificateAuthority, store: SQLiteStore) -> None:
    first = current_certificate(store, ID)
    other = CertificateAuthority.init(store, now=datetime.now(UTC), name="Other", force=True)
    second = current_certificate(store, ID)
    assert second.serial != first.serial
    second.leaf.verify_directly_issued_by(other.intermediate)


def test_a_server_certificate_under_the_name_is_not_presented(
    ca: CertificateAuthority, store: SQLiteStore
) -> None:
    first = current_certificate(store, ID)
    store.save_managed(replace(first.record, issuer="internal"))
    assert current_certificate(store, ID).serial != first.serial


def test_dns_identities_and_refusals(ca: CertificateAuthority, store: SQLiteStore) -> None:
    cert = current_certificate(store, "Billing.Internal.")
    san = cert.leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert list(san) == [x509.DNSName("billing.internal")]
    assert managed_name("spiffe://example.org/x") == "client:spiffe://example.org/x"
    for bad in ("https://example.org/x", "spiffe://Example.org/x", "*.example.org", "a b", ""):
        with pytest.raises(InvalidIdentity):
            canonical_identity(bad)
    with pytest.raises(InvalidIdentity, match="at least one minute"):
        current_certificate(store, ID, lifetime=timedelta(seconds=30))


def test_no_ca_is_an_error_not_a_new_ca(store: SQLiteStore) -> None:
    with pytest.raises(NotInitialized, match="client identities come from the CA"):
        current_certificate(store, ID)
    assert store.active_authority() is None


def test_the_issuer_keeps_server_certificates_by_default(
    ca: CertificateAuthority, store: SQLiteStore
) -> None:
    server = InternalIssuer(store).issue_now(("svc.internal",), now=datetime.now(UTC))
    eku = server.leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert InternalIssuer(store).name == "internal"
    assert InternalIssuer(store, client=True).name == CLIENT_ISSUER


def test_the_renewal_loop_replaces_a_due_certificate(
    ca: CertificateAuthority, store: SQLiteStore
) -> None:
    """serve's loop, with the client issuer: a certificate past its renewal point is replaced."""
    lifetime = timedelta(minutes=1)
    # Issued 40 s ago (20 s left, past half its life) and stored ten minutes ago: its renewal
    # point, and half of what was left when it was stored, have passed.
    first = current_certificate(
        store, ID, lifetime=lifetime, now=datetime.now(UTC) - timedelta(seconds=40)
    )
    store.save_managed(replace(first.record, updated_at=datetime.now(UTC) - timedelta(minutes=10)))
    renewed: list[ClientCertificate] = []

    async def main() -> None:
        renewer = client_renewer(store, ID, lifetime=lifetime, on_renewed=renewed.append)
        task = asyncio.create_task(renewer.run())
        try:
            async with asyncio.timeout(20):
                while not renewed:
                    await asyncio.sleep(0.05)
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(main())
    (new,) = renewed
    assert new.serial != first.serial and new.identity == ID
    stored = store.load_managed(managed_name(ID))
    assert stored is not None and stored.fullchain_pem == new.record.fullchain_pem
    state = store.load_renewal_state(managed_name(ID))
    assert state is not None and state.issuer == CLIENT_ISSUER and state.last_error is None

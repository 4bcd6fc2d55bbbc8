"""What ``serve`` presents at start-up and after a reload: files, the store, or a placeholder.
(When to renew is the renewer's business: tests/renewal.)"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509

from tests.store.postgres import PostgresServer
from tlsgate.ca import CertificateAuthority
from tlsgate.config import AcmeSettings, SiteConfig, TlsFiles, Upstream
from tlsgate.errors import ConfigError
from tlsgate.pki.keys import private_key_pem
from tlsgate.pki.names import parse_identities
from tlsgate.pki.placeholder import PLACEHOLDER_SUBJECT
from tlsgate.serve.certificates import CertificateManager, certified_names
from tlsgate.store import open_store
from tlsgate.store.base import ManagedCertificate, Store
from tlsgate.store.sqlite import SQLiteStore

SITE = SiteConfig(hosts=("localhost", "app.internal"), upstreams=(Upstream("127.0.0.1", 1),))
ACME = SiteConfig(
    hosts=("www.example.test", "example.test"),
    upstreams=SITE.upstreams,
    issuer="acme",
    acme=AcmeSettings(directory="https://ca.example.test/dir"),
)


def test_creates_ca_issues_and_reuses(store: SQLiteStore, now: datetime) -> None:
    manager = CertificateManager(store, (SITE,))
    first = manager.load_all(now)["localhost"]
    assert store.active_authority() is not None  # the embedded default made a CA
    assert first.source == "internal"
    # The internal CA adds the loopback addresses to localhost, as browsers expect.
    san = first.leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san) == set(parse_identities(["localhost", "app.internal", "127.0.0.1", "::1"]))
    # A restart reuses the stored certificate instead of issuing again, even when its renewal
    # is due: the renewer replaces it in the background.
    late = first.leaf.not_valid_after_utc - timedelta(days=1)
    again = CertificateManager(store, (SITE,)).load_all(late)["localhost"]
    assert again.leaf.serial_number == first.leaf.serial_number
    assert len(store.list_certificates()) == 1
    # Expired: a new one before the first handshake.
    after = first.leaf.not_valid_after_utc + timedelta(seconds=1)
    fresh = CertificateManager(store, (SITE,)).load_all(after)["localhost"]
    assert fresh.leaf.serial_number != first.leaf.serial_number


def test_changed_names_are_reissued(store: SQLiteStore, now: datetime) -> None:
    CertificateManager(store, (SITE,)).load_all(now)
    more = SiteConfig(hosts=("localhost", "other.internal"), upstreams=SITE.upstreams)
    cert = CertificateManager(store, (more,)).load_all(now)["localhost"]
    assert "other.internal" in str(cert.leaf.extensions)


def test_an_acme_site_starts_on_a_placeholder_then_serves_the_stored_one(
    store: SQLiteStore, now: datetime, ca: CertificateAuthority
) -> None:
    assert certified_names(ACME) == ACME.hosts  # exactly the configured names from a public CA
    manager = CertificateManager(store, (ACME,))
    placeholder = manager.load_all(now)["www.example.test"]
    assert placeholder.source == "placeholder"
    assert placeholder.leaf.issuer == placeholder.leaf.subject  # self-signed: trusted by no one
    assert PLACEHOLDER_SUBJECT in placeholder.leaf.subject.rfc4514_string()
    assert store.load_managed("www.example.test") is None  # never stored as if it were real
    issued = ca.issue(parse_identities(ACME.hosts), now=now)
    assert issued.private_key is not None
    store.save_managed(
        ManagedCertificate(
            "www.example.test", issued.fullchain_pem, private_key_pem(issued.private_key),
            issued.certificate.not_valid_after_utc, "acme:https://ca.example.test/dir", now,
        )
    )  # fmt: skip
    changed = manager.reload(now)
    assert [c.leaf.serial_number for c in changed] == [issued.certificate.serial_number]
    assert manager.current["www.example.test"].source == "acme:https://ca.example.test/dir"
    assert manager.reload(now) == []  # nothing new: nothing to swap


def test_file_pair_errors(store: SQLiteStore, tmp_path: Path, now: datetime) -> None:
    site = SiteConfig(
        hosts=("a.example",),
        upstreams=SITE.upstreams,
        tls=TlsFiles(tmp_path / "missing.pem", tmp_path / "key.pem"),
    )
    with pytest.raises(ConfigError, match="cannot read"):
        CertificateManager(store, (site,)).load_all(now)


def test_files_are_reread_and_a_broken_file_keeps_the_current_one(
    store: SQLiteStore, tmp_path: Path, now: datetime, ca: CertificateAuthority
) -> None:
    """A certificate renewed outside tlsgate is picked up without a signal."""
    issued = ca.issue(parse_identities(["a.example"]), now=now)
    assert issued.private_key is not None
    cert, key = tmp_path / "fullchain.pem", tmp_path / "key.pem"
    cert.write_bytes(issued.fullchain_pem)
    key.write_bytes(private_key_pem(issued.private_key))
    site = SiteConfig(hosts=("a.example",), upstreams=SITE.upstreams, tls=TlsFiles(cert, key))
    manager = CertificateManager(store, (site,))
    manager.load_all(now)
    assert manager.has_files
    assert manager.managed() == []  # files are nobody's to renew but their owner's
    assert manager.reload(now) == []  # unchanged: nothing to swap
    renewed = ca.issue(parse_identities(["a.example"]), now=now)
    assert renewed.private_key is not None
    key.write_bytes(b"half-written")
    assert manager.reload(now) == []
    assert manager.file_errors["a.example"]
    assert manager.current["a.example"].leaf.serial_number == issued.certificate.serial_number
    cert.write_bytes(renewed.fullchain_pem)
    key.write_bytes(private_key_pem(renewed.private_key))
    changed = manager.reload(now + timedelta(minutes=1))
    assert [c.leaf.serial_number for c in changed] == [renewed.certificate.serial_number]
    assert "a.example" not in manager.file_errors


def test_nodes_starting_together_issue_an_internal_certificate_once(
    postgres_server: PostgresServer, now: datetime
) -> None:
    """Three cluster nodes on one store: one issues under the lease, the others serve its."""
    url = postgres_server.create_database()
    open_store(url).close()  # migrate once, so the race below is about the certificate
    stores = [open_store(url) for _ in range(3)]
    barrier = threading.Barrier(3)

    def start(store: Store) -> int:
        barrier.wait(timeout=30)
        return CertificateManager(store, (SITE,)).load_all(now)["localhost"].leaf.serial_number

    try:
        with ThreadPoolExecutor(3) as pool:
            serials = list(pool.map(start, stores))
        assert len(set(serials)) == 1, serials
        ca = stores[0].active_authority()
        assert ca is not None
        issued = stores[0].list_certificates(authority_id=ca.id)
        assert [r.serial for r in issued] == serials[:1]
    finally:
        for store in stores:
            store.close()

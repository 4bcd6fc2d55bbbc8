from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tlsgate.ca import CertificateAuthority
from tlsgate.config import SiteConfig, TlsFiles, Upstream
from tlsgate.errors import ConfigError
from tlsgate.pki.keys import private_key_pem
from tlsgate.pki.names import parse_identities
from tlsgate.proxy.certificates import FILE_CHECK, CertificateManager, renewal_time
from tlsgate.store.sqlite import SQLiteStore

SITE = SiteConfig(hosts=("localhost", "app.internal"), upstreams=(Upstream("127.0.0.1", 1),))


def test_renewal_time() -> None:
    start = datetime(2026, 1, 1)
    assert renewal_time(start, start + timedelta(days=90)) == start + timedelta(days=60)
    assert renewal_time(start, start + timedelta(days=6)) == start + timedelta(days=3)


def test_creates_ca_issues_and_reuses(store: SQLiteStore, now: datetime) -> None:
    manager = CertificateManager(store, (SITE,))
    first = manager.load_all(now)["localhost"]
    assert store.active_authority() is not None  # the embedded default made a CA
    assert first.source == "internal"
    assert first.renew_at == renewal_time(
        first.leaf.not_valid_before_utc, first.leaf.not_valid_after_utc
    )
    # A restart reuses the stored certificate instead of issuing again.
    again = CertificateManager(store, (SITE,)).load_all(now + timedelta(days=1))["localhost"]
    assert again.leaf.serial_number == first.leaf.serial_number
    assert len(store.list_certificates()) == 1
    # Due -> renewed.
    later = first.renew_at + timedelta(seconds=1)
    changed = manager.refresh(later)
    assert [c.name for c in changed] == ["localhost"]
    assert manager.current["localhost"].leaf.serial_number != first.leaf.serial_number


def test_changed_names_are_reissued(store: SQLiteStore, now: datetime) -> None:
    CertificateManager(store, (SITE,)).load_all(now)
    more = SiteConfig(hosts=("localhost", "other.internal"), upstreams=SITE.upstreams)
    cert = CertificateManager(store, (more,)).load_all(now)["localhost"]
    assert "other.internal" in str(cert.leaf.extensions)


def test_failed_renewal_keeps_serving(store: SQLiteStore, state_dir: Path, now: datetime) -> None:
    manager = CertificateManager(store, (SITE,))
    current = manager.load_all(now)["localhost"]
    for key in (state_dir / "keys").iterdir():
        key.write_bytes(b"corrupted")  # the CA can no longer sign
    manager._ca = None
    due = current.renew_at + timedelta(seconds=1)
    assert manager.refresh(due) == []
    assert manager.current["localhost"] is current
    assert "private key" in manager.last_error["localhost"]
    # Backed off: no new attempt before the retry time, and the next check waits for it.
    assert manager.retry_at["localhost"] == due + timedelta(minutes=1)
    assert manager.next_check(due) == due + timedelta(minutes=1)
    assert manager.refresh(due + timedelta(seconds=30)) == []
    assert manager.failures["localhost"] == 1


def test_file_pair_errors(store: SQLiteStore, tmp_path: Path, now: datetime) -> None:
    site = SiteConfig(
        hosts=("a.example",),
        upstreams=SITE.upstreams,
        tls=TlsFiles(tmp_path / "missing.pem", tmp_path / "key.pem"),
    )
    with pytest.raises(ConfigError, match="cannot read"):
        CertificateManager(store, (site,)).load_all(now)


def test_files_are_reread_every_minute(
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
    assert manager.next_check(now) == now + FILE_CHECK
    assert manager.refresh(now + FILE_CHECK) == []  # unchanged: nothing to swap
    renewed = ca.issue(parse_identities(["a.example"]), now=now)
    assert renewed.private_key is not None
    cert.write_bytes(renewed.fullchain_pem)
    key.write_bytes(private_key_pem(renewed.private_key))
    changed = manager.refresh(now + 2 * FILE_CHECK)
    assert [c.leaf.serial_number for c in changed] == [renewed.certificate.serial_number]

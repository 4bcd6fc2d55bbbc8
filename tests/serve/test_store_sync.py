"""The master's watch on the store: other nodes' certificates are picked up, each once; an
outage is reported once when it starts and once when it ends, and changes nothing served."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.store.test_sqlite import new_authority, record
from tlsgate.errors import StorageError
from tlsgate.serve.metrics import Metrics
from tlsgate.serve.store_sync import StoreSync
from tlsgate.store.base import ManagedCertificate
from tlsgate.store.health import StoreHealth
from tlsgate.store.sqlite import SQLiteStore

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class Flaky(SQLiteStore):
    down = False

    def reopen(self) -> Flaky:
        return self  # one object, so the test can switch it off

    def managed_fingerprints(self) -> dict[str, str]:
        if self.down:
            raise StorageError("PostgreSQL at db:5432/tlsgate is unreachable: connection refused")
        return dict(super().managed_fingerprints())


def cert(name: str, chain: bytes) -> ManagedCertificate:
    return ManagedCertificate(name, chain, b"key", NOW + timedelta(days=1), "internal", NOW)


def test_changes_are_applied_once_refusals_retried_and_outages_reported(
    state_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = Flaky(state_dir)
    health = StoreHealth(store.location)
    applied: list[bytes] = []
    accept = {"ok": True}

    def apply(record: ManagedCertificate) -> bool:
        applied.append(record.fullchain_pem)
        return accept["ok"]

    sync = StoreSync(store, ["a.example", "b.example"], health, apply)
    metrics = Metrics(store_up=lambda: health.up)

    async def main() -> None:
        await sync.once()
        assert applied == [] and health.up
        store.save_managed(cert("a.example", b"one"))
        store.save_managed(cert("other.example", b"not ours"))  # another site: ignored
        await sync.once()
        await sync.once()
        assert applied == [b"one"]  # once
        accept["ok"] = False  # e.g. not valid yet on this node's clock
        store.save_managed(cert("b.example", b"two"))
        await sync.once()
        await sync.once()
        assert applied == [b"one", b"two", b"two"]  # looked at again until served
        accept["ok"] = True
        await sync.once()
        await sync.once()
        assert applied == [b"one", b"two", b"two", b"two"]

        store.down = True
        for _ in range(3):
            await sync.once()
        assert not health.up
        assert b"tlsgate_store_up 0.0" in metrics.render()
        store.down = False
        await sync.once()
        assert health.up
        assert b"tlsgate_store_up 1.0" in metrics.render()

    try:
        with caplog.at_level(logging.INFO):
            asyncio.run(main())
    finally:
        store.close()
    assert caplog.text.count("is unreachable; serving the certificates held") == 1
    assert "renewals wait: connection refused" in caplog.text  # the database is named once
    assert caplog.text.count("is reachable again") == 1


def test_revocations_are_applied_when_the_store_has_new_ones_and_retried_until_done(
    state_dir: Path,
) -> None:
    store = SQLiteStore(state_dir)
    authority = store.create_authority(new_authority())
    for serial in (1, 2):
        store.add_certificate(record(serial, authority.id))
    health = StoreHealth(store.location)
    calls: list[bool] = []
    outcome = {"ok": True}

    def revoked() -> bool:
        calls.append(outcome["ok"])
        return outcome["ok"]

    # no served certificates at all (a site with file certificates that trusts the internal CA)
    sync = StoreSync(store, [], health, lambda record: True, revoked=revoked)

    async def main() -> None:
        await sync.once()
        assert calls == [True]  # the first look applies what the store holds
        await sync.once()
        assert calls == [True]  # nothing new: nothing done
        store.reopen().revoke_certificate(1, at=NOW, reason="keyCompromise")  # ca revoke
        outcome["ok"] = False  # e.g. the CRL file could not be written
        await sync.once()
        await sync.once()
        assert calls == [True, False, False]  # tried again on every look until it is done
        outcome["ok"] = True
        await sync.once()
        await sync.once()
        assert calls == [True, False, False, True]

    try:
        asyncio.run(main())
    finally:
        store.close()

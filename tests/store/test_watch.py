"""How a node learns that another stored a certificate: fingerprints on every backend, and
PostgreSQL's notifications (SQLite has none: polling the fingerprints is the whole mechanism)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from tlsgate.store import Store, open_store
from tlsgate.store.base import ManagedCertificate, chain_fingerprint
from tlsgate.store.sqlite import SQLiteStore

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def managed(name: str, chain: bytes) -> ManagedCertificate:
    return ManagedCertificate(
        name=name,
        fullchain_pem=chain,
        key_pem=b"key",  # opaque to the store
        not_after=NOW + timedelta(days=90),
        issuer="internal",
        updated_at=NOW,
    )


def test_fingerprints_change_with_the_chain_and_agree_across_backends(store: Store) -> None:
    assert dict(store.managed_fingerprints()) == {}
    store.save_managed(managed("a.example", b"chain one"))
    store.save_managed(managed("b.example", b"chain two"))
    assert dict(store.managed_fingerprints()) == {
        "a.example": chain_fingerprint(b"chain one"),
        "b.example": chain_fingerprint(b"chain two"),
    }
    store.save_managed(managed("a.example", b"chain three"))
    assert store.managed_fingerprints()["a.example"] == chain_fingerprint(b"chain three")


def test_postgres_notifies_listeners_after_commit_sqlite_leaves_it_to_polling(
    store_location: str, backend: str
) -> None:
    store = open_store(store_location)
    other = store.reopen()  # another node
    heard: list[str] = []
    got = threading.Condition()

    def changed(name: str) -> None:
        with got:
            heard.append(name)
            got.notify_all()

    watch = store.watch_certificates(changed)
    try:
        if isinstance(store, SQLiteStore):
            other.save_managed(managed("a.example", b"chain"))
            with got:
                assert not got.wait_for(lambda: heard, timeout=0.3)  # polling only
            return
        with got:  # after (re)connecting: "look at everything", nothing was heard meanwhile
            assert got.wait_for(lambda: heard == [""], timeout=10), heard
        other.save_managed(managed("a.example", b"chain"))
        with got:
            assert got.wait_for(lambda: "a.example" in heard, timeout=10), heard
        # what it hears about is already committed: the new chain is there to read
        assert store.managed_fingerprints()["a.example"] == chain_fingerprint(b"chain")
    finally:
        watch.close()
        other.close()
        store.close()

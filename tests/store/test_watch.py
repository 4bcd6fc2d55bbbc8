"""How a node learns that another stored a certificate or revoked one: fingerprints and the
revocation mark on every backend, and PostgreSQL's notifications (SQLite has none: polling is
the whole mechanism)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from tests.store.postgres import PostgresServer
from tlsgate.store import Store, open_store
from tlsgate.store.base import ManagedCertificate, chain_fingerprint
from tlsgate.store.sqlite import SQLiteStore

from .test_sqlite import new_authority, record

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


def test_the_revocation_mark_changes_with_the_active_cas_revocations_only(store: Store) -> None:
    nothing = store.revocation_mark()  # no CA yet
    first = store.create_authority(new_authority("a"))
    empty = store.revocation_mark()
    assert empty != nothing and store.revocation_mark() == empty  # a read changes nothing
    for serial in (1, 2, 3):
        store.add_certificate(record(serial, first.id))
    assert store.revocation_mark() == empty  # issuing is not revoking
    store.revoke_certificate(2, at=NOW, reason="keyCompromise")
    one = store.revocation_mark()
    assert one not in (empty, nothing)
    store.revoke_certificate(3, at=NOW, reason="superseded", revoked_by="acme:x")
    two = store.revocation_mark()
    assert two not in (empty, one)
    assert store.reopen().revocation_mark() == two  # another process reads the same mark
    second = store.create_authority(new_authority("b"), replace=True)  # a new CA: a new CRL
    assert store.revocation_mark() not in (two, empty)
    store.add_certificate(record(9, second.id))
    before = store.revocation_mark()
    store.revoke_certificate(9, at=NOW, reason="unspecified")
    assert store.revocation_mark() != before


def test_postgres_notifies_a_revocation_after_commit(postgres_server: PostgresServer) -> None:
    """``tlsgate ca revoke`` on another node: serve hears "look at everything" at once (with
    SQLite the revocation mark is polled, as above)."""
    store = open_store(postgres_server.create_database())
    other = store.reopen()
    authority = other.create_authority(new_authority("a"))
    other.add_certificate(record(7, authority.id))
    heard: list[str] = []
    got = threading.Condition()

    def changed(name: str) -> None:
        with got:
            heard.append(name)
            got.notify_all()

    watch = store.watch_certificates(changed)
    try:
        with got:  # connected (it says "look at everything" once then)
            assert got.wait_for(lambda: heard == [""], timeout=10), heard
        before = store.revocation_mark()
        other.revoke_certificate(7, at=NOW, reason="keyCompromise")
        with got:
            assert got.wait_for(lambda: heard == ["", ""], timeout=10), heard
        assert store.revocation_mark() != before  # committed by the time it is heard
    finally:
        watch.close()
        other.close()
        store.close()

"""The Store contract on every backend (the ``store`` fixture), and the SQLite store's own layout
(``sqlite_store``), including several processes at once."""

from __future__ import annotations

import multiprocessing
import sqlite3
import stat
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tlsgate.errors import AlreadyExists, ConfigError, NotFound, StorageError
from tlsgate.store import Store, open_store, resolve_state_dir, resolve_store
from tlsgate.store.base import CertificateRecord, CertStatus, NewAuthority
from tlsgate.store.sqlite import DB_NAME, SQLiteStore

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def new_authority(tag: str = "a") -> NewAuthority:
    return NewAuthority(
        name="t",
        root_pem=b"root",
        intermediate_pem=b"int",
        keys={f"{tag}1": b"root-key", f"{tag}2": b"int-key"},
        root_key_id=f"{tag}1",
        intermediate_key_id=f"{tag}2",
        crl_url=None,
        created_at=NOW,
    )


def record(serial: int, authority_id: int, *, days: int = 90) -> CertificateRecord:
    return CertificateRecord(
        serial=serial,
        authority_id=authority_id,
        names=("a.example",),
        usages=("server",),
        not_before=NOW,
        not_after=NOW + timedelta(days=days),
        issued_at=NOW,
        pem=b"pem",
    )


def test_layout_and_permissions(state_dir: Path) -> None:
    store = SQLiteStore(state_dir)
    store.create_authority(new_authority())
    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((state_dir / DB_NAME).stat().st_mode) == 0o600
    for key in (state_dir / "keys").iterdir():
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert store.load_key("a1") == b"root-key"
    store.close()


def test_authority_lifecycle(store: Store) -> None:
    assert store.active_authority() is None
    first = store.create_authority(new_authority("a"))
    assert first.active and store.active_authority() == first
    with pytest.raises(AlreadyExists):
        store.create_authority(new_authority("b"))
    second = store.create_authority(new_authority("b"), replace=True)
    assert second.id != first.id
    active = store.active_authority()
    assert active is not None and active.id == second.id
    # The replaced CA's key stays on disk with its records.
    assert store.load_key("a1") == b"root-key"


def test_failed_create_keeps_no_key(store: Store) -> None:
    store.create_authority(new_authority("a"))
    with pytest.raises(AlreadyExists):
        store.create_authority(new_authority("b"))
    with pytest.raises(NotFound):
        store.load_key("b1")


def test_failed_create_leaves_no_orphan_key_files(
    sqlite_store: SQLiteStore, state_dir: Path
) -> None:
    store = sqlite_store
    store.create_authority(new_authority("a"))
    with pytest.raises(AlreadyExists):
        store.create_authority(new_authority("b"))
    assert sorted(p.name for p in (state_dir / "keys").iterdir()) == ["a1.pem", "a2.pem"]


def test_certificates(store: Store) -> None:
    auth = store.create_authority(new_authority())
    store.add_certificate(record(0xABC, auth.id, days=10))
    store.add_certificate(record(0x1, auth.id, days=50))
    with pytest.raises(AlreadyExists, match="0ABC"):
        store.add_certificate(record(0xABC, auth.id))
    assert [r.serial for r in store.list_certificates()] == [0xABC, 0x1]
    soon = store.list_certificates(not_after_before=NOW + timedelta(days=20))
    assert [r.serial for r in soon] == [0xABC]
    got = store.get_certificate(0xABC)
    assert got == record(0xABC, auth.id, days=10)
    with pytest.raises(NotFound):
        store.get_certificate(0xDEAD)


def test_revoke(store: Store) -> None:
    auth = store.create_authority(new_authority())
    store.add_certificate(record(7, auth.id))
    revoked = store.revoke_certificate(7, at=NOW, reason="superseded")
    assert revoked == replace(
        record(7, auth.id),
        status=CertStatus.REVOKED,
        revoked_at=NOW,
        revocation_reason="superseded",
        revoked_by="cli",
    )
    with pytest.raises(AlreadyExists, match="already revoked"):
        store.revoke_certificate(7, at=NOW, reason="superseded")
    with pytest.raises(NotFound):
        store.revoke_certificate(8, at=NOW, reason="superseded")
    assert [r.serial for r in store.list_certificates(status=CertStatus.REVOKED)] == [7]


def test_crl_numbers_increase(store: Store) -> None:
    auth = store.create_authority(new_authority())
    numbers = [store.next_crl_number(auth.id) for _ in range(3)]
    assert numbers == [1, 2, 3]
    with pytest.raises(NotFound):
        store.next_crl_number(999)


def test_reopen_keeps_state(store_location: str) -> None:
    s = open_store(store_location)
    auth = s.create_authority(new_authority())
    s.add_certificate(record(1, auth.id))
    s.close()
    s = open_store(store_location)
    assert [r.serial for r in s.list_certificates()] == [1]
    s.close()


def test_newer_schema_is_refused(state_dir: Path) -> None:
    SQLiteStore(state_dir).close()
    db = sqlite3.connect(state_dir / DB_NAME)
    db.execute("PRAGMA user_version = 99")
    db.commit()
    db.close()
    with pytest.raises(StorageError, match="newer tlsgate"):
        SQLiteStore(state_dir)


def test_garbage_database_is_a_clear_error(state_dir: Path) -> None:
    state_dir.mkdir(parents=True)
    (state_dir / DB_NAME).write_bytes(b"this is not a database" * 100)
    with pytest.raises(StorageError, match="cannot open state database"):
        SQLiteStore(state_dir)


def test_open_store_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TLSGATE_STATE", str(tmp_path / "env"))
    assert resolve_state_dir(None) == tmp_path / "env"
    assert resolve_state_dir(str(tmp_path / "opt")) == tmp_path / "opt"
    monkeypatch.delenv("TLSGATE_STATE")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert resolve_state_dir(None) == tmp_path / "xdg" / "tlsgate"
    with pytest.raises(ConfigError, match="unsupported store"):
        open_store("redis://localhost")
    # TLSGATE_STORE (a URL or a directory) wins over TLSGATE_STATE; an explicit location over both
    url = "postgresql://u:secret@db.example/tls"
    monkeypatch.setenv("TLSGATE_STATE", str(tmp_path / "env"))
    monkeypatch.setenv("TLSGATE_STORE", url)
    assert resolve_store(None) == url
    assert resolve_store(str(tmp_path / "opt")) == str(tmp_path / "opt")
    assert resolve_state_dir(None) == tmp_path / "env"  # a database store's local files
    monkeypatch.delenv("TLSGATE_STATE")
    assert resolve_state_dir(url) == tmp_path / "xdg" / "tlsgate"
    monkeypatch.setenv("TLSGATE_STORE", str(tmp_path / "dir"))
    assert resolve_state_dir(None) == tmp_path / "dir"


def _writer(location: str, start: int, count: int) -> None:
    store = open_store(location)
    auth = store.active_authority()
    assert auth is not None
    for serial in range(start, start + count):
        store.add_certificate(record(serial, auth.id))
        if serial % 5 == 0:
            store.next_crl_number(auth.id)
    store.close()


def test_concurrent_processes_do_not_corrupt(store_location: str, backend: str) -> None:
    store = open_store(store_location)
    auth = store.create_authority(new_authority())
    ctx = multiprocessing.get_context("spawn")
    workers = [
        ctx.Process(target=_writer, args=(store_location, i * 1000 + 1, 40)) for i in range(4)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
        assert w.exitcode == 0
    assert len(store.list_certificates()) == 160
    assert store.next_crl_number(auth.id) == 4 * 8 + 1
    store.close()
    if backend != "sqlite":
        return
    db = sqlite3.connect(Path(store_location) / DB_NAME)
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    db.close()


def test_managed_certificates(store: Store) -> None:
    from tlsgate.store.base import ManagedCertificate

    assert store.load_managed("a.example") is None
    first = ManagedCertificate("a.example", b"chain1", b"key1", NOW, "internal", NOW)
    store.save_managed(first)
    assert store.load_managed("a.example") == first
    second = ManagedCertificate("a.example", b"chain2", b"key2", NOW, "internal", NOW)
    store.save_managed(second)
    assert store.load_managed("a.example") == second


def test_managed_keys_are_private_files(sqlite_store: SQLiteStore, state_dir: Path) -> None:
    from tlsgate.store.base import ManagedCertificate

    store = sqlite_store
    for key in (b"key1", b"key2"):
        store.save_managed(ManagedCertificate("a.example", b"c", key, NOW, "internal", NOW))
    keys = list((state_dir / "keys").iterdir())
    assert len(keys) == 1 and stat.S_IMODE(keys[0].stat().st_mode) == 0o600  # old key removed
    keys[0].unlink()
    assert store.load_managed("a.example") is None  # a lost key means: issue again


def _ticket_secret(location: str, out: multiprocessing.Queue[bytes]) -> None:  # spawn target
    store = open_store(location)
    out.put(store.ticket_secret())
    store.close()


def test_ticket_secret_is_made_once_and_kept(store: Store, tmp_path: Path) -> None:
    secret = store.ticket_secret()
    assert len(secret) == 32
    assert store.ticket_secret() == secret
    reopened = store.reopen()
    assert reopened.ticket_secret() == secret  # a restart keeps the same ticket keys
    reopened.close()
    other = SQLiteStore(tmp_path / "other")
    assert other.ticket_secret() != secret
    other.close()


def test_ticket_secret_file_is_private(sqlite_store: SQLiteStore, state_dir: Path) -> None:
    sqlite_store.ticket_secret()
    path = state_dir / "keys" / "session-tickets.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_ticket_secret_race_has_one_winner(store_location: str, backend: str) -> None:
    open_store(store_location).close()  # schema in place; the secret does not exist yet
    ctx = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue[bytes] = ctx.Queue()
    procs = [ctx.Process(target=_ticket_secret, args=(store_location, out)) for _ in range(4)]
    for p in procs:
        p.start()
    secrets = {out.get(timeout=60) for _ in procs}
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert len(secrets) == 1
    if backend == "sqlite":
        keys = Path(store_location) / "keys"
        assert not [p for p in keys.iterdir() if p.name.endswith(".tmp")]


def test_damaged_ticket_secret_is_a_clear_error(sqlite_store: SQLiteStore, state_dir: Path) -> None:
    (state_dir / "keys" / "session-tickets.key").write_bytes(b"short")
    with pytest.raises(StorageError, match=r"damaged .*delete it"):
        sqlite_store.ticket_secret()

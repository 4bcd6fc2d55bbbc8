"""The SQLite store against its contract, including several processes at once."""

from __future__ import annotations

import multiprocessing
import sqlite3
import stat
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tlsgate.errors import AlreadyExists, ConfigError, NotFound, StorageError
from tlsgate.store import open_store, resolve_state_dir
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


def test_authority_lifecycle(store: SQLiteStore) -> None:
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


def test_failed_create_leaves_no_orphan_keys(store: SQLiteStore, state_dir: Path) -> None:
    store.create_authority(new_authority("a"))
    with pytest.raises(AlreadyExists):
        store.create_authority(new_authority("b"))
    assert sorted(p.name for p in (state_dir / "keys").iterdir()) == ["a1.pem", "a2.pem"]


def test_certificates(store: SQLiteStore) -> None:
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


def test_revoke(store: SQLiteStore) -> None:
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


def test_crl_numbers_increase(store: SQLiteStore) -> None:
    auth = store.create_authority(new_authority())
    numbers = [store.next_crl_number(auth.id) for _ in range(3)]
    assert numbers == [1, 2, 3]
    with pytest.raises(NotFound):
        store.next_crl_number(999)


def test_reopen_keeps_state(state_dir: Path) -> None:
    s = SQLiteStore(state_dir)
    auth = s.create_authority(new_authority())
    s.add_certificate(record(1, auth.id))
    s.close()
    s = SQLiteStore(state_dir)
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


def _writer(directory: str, start: int, count: int) -> None:
    store = SQLiteStore(Path(directory))
    auth = store.active_authority()
    assert auth is not None
    for serial in range(start, start + count):
        store.add_certificate(record(serial, auth.id))
        if serial % 5 == 0:
            store.next_crl_number(auth.id)
    store.close()


def test_concurrent_processes_do_not_corrupt(state_dir: Path) -> None:
    store = SQLiteStore(state_dir)
    auth = store.create_authority(new_authority())
    ctx = multiprocessing.get_context("spawn")
    workers = [
        ctx.Process(target=_writer, args=(str(state_dir), i * 1000 + 1, 40)) for i in range(4)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
        assert w.exitcode == 0
    assert len(store.list_certificates()) == 160
    assert store.next_crl_number(auth.id) == 4 * 8 + 1
    db = sqlite3.connect(state_dir / DB_NAME)
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    db.close()
    store.close()


def test_managed_certificates(store: SQLiteStore, state_dir: Path) -> None:
    from tlsgate.store.base import ManagedCertificate

    assert store.load_managed("a.example") is None
    first = ManagedCertificate("a.example", b"chain1", b"key1", NOW, "internal", NOW)
    store.save_managed(first)
    assert store.load_managed("a.example") == first
    second = ManagedCertificate("a.example", b"chain2", b"key2", NOW, "internal", NOW)
    store.save_managed(second)
    assert store.load_managed("a.example") == second
    keys = list((state_dir / "keys").iterdir())
    assert len(keys) == 1 and stat.S_IMODE(keys[0].stat().st_mode) == 0o600  # old key removed
    keys[0].unlink()
    assert store.load_managed("a.example") is None  # a lost key means: issue again


def _ticket_secret(directory: str, out: multiprocessing.Queue[bytes]) -> None:  # spawn target
    store = SQLiteStore(Path(directory))
    out.put(store.ticket_secret())
    store.close()


def test_ticket_secret_is_made_once_and_kept(store: SQLiteStore, state_dir: Path) -> None:
    secret = store.ticket_secret()
    assert len(secret) == 32
    assert store.ticket_secret() == secret
    path = state_dir / "keys" / "session-tickets.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    reopened = SQLiteStore(state_dir)
    assert reopened.ticket_secret() == secret  # a restart keeps the same ticket keys
    reopened.close()
    other = SQLiteStore(state_dir.parent / "other")
    assert other.ticket_secret() != secret
    other.close()


def test_ticket_secret_race_has_one_winner(state_dir: Path) -> None:
    SQLiteStore(state_dir).close()  # schema in place; the secret does not exist yet
    ctx = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue[bytes] = ctx.Queue()
    procs = [ctx.Process(target=_ticket_secret, args=(str(state_dir), out)) for _ in range(4)]
    for p in procs:
        p.start()
    secrets = {out.get(timeout=60) for _ in procs}
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert len(secrets) == 1
    assert not [p for p in (state_dir / "keys").iterdir() if p.name.endswith(".tmp")]


def test_damaged_ticket_secret_is_a_clear_error(store: SQLiteStore, state_dir: Path) -> None:
    (state_dir / "keys" / "session-tickets.key").write_bytes(b"short")
    with pytest.raises(StorageError, match=r"damaged .*delete it"):
        store.ticket_secret()

"""The renewal part of the Store contract on every backend: what the renewal loop, the workers and
`status` share; and the SQLite store's own files and schema upgrade."""

from __future__ import annotations

import multiprocessing
import sqlite3
import stat
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

from tlsgate.errors import StorageError
from tlsgate.store import Store, open_store, sqlite
from tlsgate.store.acme import ChallengeType
from tlsgate.store.base import ManagedCertificate, RenewalState
from tlsgate.store.sqlite import _MIGRATIONS, DB_NAME, SQLiteStore

NOW = datetime(2026, 1, 1, tzinfo=UTC)
DIRECTORY = "https://acme.example/directory"


def full_state(name: str = "a.example") -> RenewalState:
    return RenewalState(
        name=name,
        issuer=f"acme:{DIRECTORY}",
        next_attempt=NOW + timedelta(hours=6),
        reason="backoff",
        failures=3,
        last_attempt=NOW - timedelta(minutes=5),
        last_error="urn:ietf:params:acme:error:connection: cannot reach a.example:80",
        last_success=NOW - timedelta(days=60, microseconds=1),
        ari_window=(NOW + timedelta(days=20), NOW + timedelta(days=25)),
        updated_at=NOW,
    )


def managed(name: str, key: bytes = b"key") -> ManagedCertificate:
    return ManagedCertificate(name, b"chain-" + name.encode(), key, NOW, "internal", NOW)


# -- renewal state -----------------------------------------------------------------------------
def test_renewal_state_round_trip(store: Store) -> None:
    assert store.load_renewal_state("a.example") is None
    assert store.list_renewal_states() == []
    state = full_state()
    store.save_renewal_state(state)
    assert store.load_renewal_state("a.example") == state
    minimal = RenewalState("b.example", "internal", None, "initial")
    store.save_renewal_state(minimal)
    assert store.load_renewal_state("b.example") == minimal


def test_renewal_state_times_come_back_in_utc(store: Store) -> None:
    paris = datetime(2026, 1, 1, 13, 0, tzinfo=timezone(timedelta(hours=1)))
    store.save_renewal_state(RenewalState("a.example", "internal", paris, "lifetime"))
    loaded = store.load_renewal_state("a.example")
    assert loaded is not None and loaded.next_attempt == paris
    assert loaded.next_attempt.tzinfo is UTC


def test_save_renewal_state_replaces_by_name(store: Store) -> None:
    store.save_renewal_state(full_state())
    succeeded = replace(
        full_state(),
        reason="lifetime",
        failures=0,
        last_error=None,
        last_success=NOW,
        ari_window=None,
        next_attempt=NOW + timedelta(days=60),
    )
    store.save_renewal_state(succeeded)
    assert store.load_renewal_state("a.example") == succeeded
    assert store.list_renewal_states() == [succeeded]


def test_list_renewal_states_is_ordered_by_name(store: Store) -> None:
    for name in ("c.example", "a.example", "b.example"):
        store.save_renewal_state(full_state(name))
    assert [s.name for s in store.list_renewal_states()] == ["a.example", "b.example", "c.example"]


# -- served certificates -----------------------------------------------------------------------
def test_list_managed(store: Store) -> None:
    assert store.list_managed() == []
    for name in ("b.example", "a.example", "c.example"):
        store.save_managed(managed(name, key=b"key-" + name.encode()))
    assert store.list_managed() == [
        managed(n, key=b"key-" + n.encode()) for n in ("a.example", "b.example", "c.example")
    ]


def test_list_managed_leaves_out_lost_key_files(sqlite_store: SQLiteStore, state_dir: Path) -> None:
    store = sqlite_store
    for name in ("b.example", "a.example", "c.example"):
        store.save_managed(managed(name, key=b"key-" + name.encode()))
    # A certificate whose key is lost is not served: it must be issued again, as load_managed says.
    lost = list((state_dir / "keys").iterdir())
    assert len(lost) == 3
    key_b = next(p for p in lost if p.read_bytes() == b"key-b.example")
    key_b.unlink()
    assert [m.name for m in store.list_managed()] == ["a.example", "c.example"]


# -- challenge answers -------------------------------------------------------------------------
def test_challenge_answer_round_trip_and_replace(store: Store) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    assert store.challenge_answer("http-01", "tok", now=NOW) is None
    store.put_challenge_answer("http-01", "tok", "tok.thumb", expires_at=later)
    store.put_challenge_answer("tls-alpn-01", "a.example", "alpn-auth", expires_at=later)
    assert store.challenge_answer("http-01", "tok", now=NOW) == "tok.thumb"
    assert store.challenge_answer("tls-alpn-01", "a.example", now=NOW) == "alpn-auth"
    # kinds are separate namespaces
    assert store.challenge_answer("tls-alpn-01", "tok", now=NOW) is None
    store.put_challenge_answer("http-01", "tok", "tok.other", expires_at=later)
    assert store.challenge_answer("http-01", "tok", now=NOW) == "tok.other"
    # the ACME enum's members work as kinds, as the renewal loop may pass them
    assert store.challenge_answer(ChallengeType.HTTP_01, "tok", now=NOW) == "tok.other"
    store.delete_challenge_answer("http-01", "tok")
    assert store.challenge_answer("http-01", "tok", now=NOW) is None
    store.delete_challenge_answer("http-01", "tok")  # missing: no error
    assert store.challenge_answer("tls-alpn-01", "a.example", now=NOW) == "alpn-auth"


def test_challenge_answer_expires(store: Store) -> None:
    expires = datetime.now(UTC) + timedelta(minutes=10)
    store.put_challenge_answer("http-01", "tok", "auth", expires_at=expires)
    assert store.challenge_answer("http-01", "tok", now=expires - timedelta(seconds=1)) == "auth"
    assert store.challenge_answer("http-01", "tok", now=expires) is None
    assert store.challenge_answer("http-01", "tok", now=expires + timedelta(days=1)) is None


def test_put_challenge_answer_sweeps_expired_ones(
    sqlite_store: SQLiteStore, state_dir: Path
) -> None:
    store = sqlite_store
    now = datetime.now(UTC)
    store.put_challenge_answer("http-01", "old", "a", expires_at=now - timedelta(seconds=1))
    store.put_challenge_answer("http-01", "live", "b", expires_at=now + timedelta(hours=1))
    db = sqlite3.connect(state_dir / DB_NAME)
    try:
        keys = [k for (k,) in db.execute("SELECT key FROM challenge_answer ORDER BY key")]
    finally:
        db.close()
    assert keys == ["live"]


def test_challenge_answer_is_one_primary_key_lookup(
    sqlite_store: SQLiteStore, state_dir: Path
) -> None:
    """The workers' request path: a key lookup, never a scan, whatever the table holds."""
    db = sqlite3.connect(state_dir / DB_NAME)
    try:
        plan = db.execute(
            "EXPLAIN QUERY PLAN SELECT value FROM challenge_answer"
            " WHERE kind = ? AND key = ? AND expires_at > ?",
            ("http-01", "tok", "x"),
        ).fetchall()
    finally:
        db.close()
    details = " ".join(row[-1] for row in plan)
    assert "PRIMARY KEY" in details and "SCAN" not in details, details


def test_unknown_challenge_kind_is_refused(store: Store) -> None:
    with pytest.raises(StorageError, match="dns-01"):
        store.put_challenge_answer("dns-01", "a.example", "v", expires_at=NOW)


# -- the ACME client account key ---------------------------------------------------------------
def test_client_account_key_is_made_once_and_kept(store: Store) -> None:
    calls: list[int] = []

    def create() -> bytes:
        calls.append(1)
        return b"-----BEGIN PRIVATE KEY-----\nfirst\n-----END PRIVATE KEY-----\n"

    key = store.client_account_key(DIRECTORY, create)
    assert b"first" in key
    assert store.client_account_key(DIRECTORY, lambda: b"second") == key
    assert calls == [1]
    reopened = store.reopen()
    try:
        assert reopened.client_account_key(DIRECTORY, lambda: b"third") == key
    finally:
        reopened.close()
    # one account per CA: another directory URL gets its own key
    assert store.client_account_key(DIRECTORY + "2", lambda: b"other") == b"other"


def test_client_account_key_file_is_private(sqlite_store: SQLiteStore, state_dir: Path) -> None:
    sqlite_store.client_account_key(DIRECTORY, lambda: b"key")
    files = [p for p in (state_dir / "keys").iterdir() if p.name.startswith("acme-account-")]
    assert len(files) == 1 and stat.S_IMODE(files[0].stat().st_mode) == 0o600


def test_empty_client_account_key_is_refused(store: Store) -> None:
    with pytest.raises(StorageError, match="empty"):
        store.client_account_key(DIRECTORY, lambda: b"")
    assert store.client_account_key(DIRECTORY, lambda: b"key") == b"key"  # nothing was kept


def test_empty_client_account_key_is_a_clear_error(
    sqlite_store: SQLiteStore, state_dir: Path
) -> None:
    store = sqlite_store
    with pytest.raises(StorageError, match="empty"):
        store.client_account_key(DIRECTORY, lambda: b"")
    assert not list((state_dir / "keys").iterdir())  # nothing kept: the next call may create
    store.client_account_key(DIRECTORY, lambda: b"key")
    (path,) = (state_dir / "keys").iterdir()
    path.write_bytes(b"")  # damaged on disk
    with pytest.raises(StorageError, match=r"is empty; delete it"):
        store.client_account_key(DIRECTORY, lambda: b"new")


def _account_key(location: str, barrier: Barrier, out: Queue[bytes]) -> None:  # spawn target
    store = open_store(location)

    def create() -> bytes:
        barrier.wait(timeout=60)  # every process has decided to create before any one writes
        return f"key of process {multiprocessing.current_process().pid}".encode()

    out.put(store.client_account_key(DIRECTORY, create))
    store.close()


def test_client_account_key_race_has_one_winner(store_location: str, backend: str) -> None:
    open_store(store_location).close()
    ctx = multiprocessing.get_context("spawn")
    count = 4
    barrier = ctx.Barrier(count)
    out: Queue[bytes] = ctx.Queue()
    procs = [
        ctx.Process(target=_account_key, args=(store_location, barrier, out)) for _ in range(count)
    ]
    for p in procs:
        p.start()
    keys = {out.get(timeout=60) for _ in procs}
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert len(keys) == 1
    if backend == "sqlite":
        files = (Path(store_location) / "keys").iterdir()
        assert not [p for p in files if p.name.endswith(".tmp")]


# -- migration ---------------------------------------------------------------------------------
def test_schema_3_database_is_upgraded(state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as patch:
        patch.setattr(sqlite, "_MIGRATIONS", _MIGRATIONS[:3])
        old = SQLiteStore(state_dir)
        old.save_managed(managed("a.example"))
        old.close()
    db = sqlite3.connect(state_dir / DB_NAME)
    try:
        assert db.execute("PRAGMA user_version").fetchone() == (3,)
        tables = {t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        db.close()
    assert "renewal_state" not in tables and "managed" in tables

    store = SQLiteStore(state_dir)
    try:
        store.save_renewal_state(full_state())
        assert store.list_renewal_states() == [full_state()]
        store.put_challenge_answer(
            "http-01", "tok", "auth", expires_at=datetime.now(UTC) + timedelta(hours=1)
        )
        assert store.list_managed() == [managed("a.example")]  # kept across the upgrade
    finally:
        store.close()
    db = sqlite3.connect(state_dir / DB_NAME)
    try:
        assert db.execute("PRAGMA user_version").fetchone() == (len(_MIGRATIONS),) == (6,)
    finally:
        db.close()

"""What only the PostgreSQL store has: migrations from many nodes at once, a schema too new,
passwords kept out of messages, and surviving a server restart."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

import psycopg
import pytest

from tests.conftest import free_port
from tests.store.postgres import PostgresServer
from tlsgate.errors import StorageError
from tlsgate.store import open_store
from tlsgate.store.base import NewAuthority
from tlsgate.store.postgres import PostgresStore, describe, redact
from tlsgate.store.postgres_schema import MIGRATIONS

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _authority() -> NewAuthority:
    return NewAuthority("t", b"root", b"int", {"a1": b"k1", "a2": b"k2"}, "a1", "a2", None, NOW)


def _open(url: str, barrier: Barrier, out: Queue[str]) -> None:  # spawn target
    barrier.wait(timeout=60)
    try:
        store = open_store(url)
        store.ticket_secret()
        store.close()
        out.put("ok")
    except Exception as exc:
        out.put(f"{type(exc).__name__}: {exc}")


def test_nodes_starting_at_once_migrate_exactly_once(postgres_server: PostgresServer) -> None:
    url = postgres_server.create_database()
    ctx = multiprocessing.get_context("spawn")
    count = 8
    barrier = ctx.Barrier(count)
    out: Queue[str] = ctx.Queue()
    procs = [ctx.Process(target=_open, args=(url, barrier, out)) for _ in range(count)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert results == ["ok"] * count
    with psycopg.connect(url) as conn:
        versions = conn.execute("SELECT version FROM schema_version ORDER BY version").fetchall()
        secrets = conn.execute("SELECT count(*) FROM secret").fetchone()
    assert versions == [(n,) for n in range(1, len(MIGRATIONS) + 1)]
    assert secrets == (1,)  # and all eight agreed on one ticket secret


def test_newer_schema_is_refused(postgres_server: PostgresServer) -> None:
    url = postgres_server.create_database()
    PostgresStore(url).close()
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO schema_version (version) VALUES (99)")
    with pytest.raises(StorageError, match=r"schema 99, written by a newer tlsgate"):
        PostgresStore(url)


def test_reopening_does_not_migrate_again(postgres_server: PostgresServer) -> None:
    url = postgres_server.create_database()
    store = PostgresStore(url)
    store.create_authority(_authority())
    store.close()
    again = PostgresStore(url)
    assert again.active_authority() is not None
    again.close()


def test_password_never_appears(postgres_server: PostgresServer) -> None:
    url = f"postgresql://tlsgate:s3cret@127.0.0.1:{free_port()}/state?sslmode=disable"
    assert redact(url) == f"postgresql://tlsgate@{url.split('@')[1]}"
    assert "s3cret" not in redact("postgresql://127.0.0.1/state?password=s3cret")
    assert describe(url).endswith("/state")
    unreachable = r"PostgreSQL at 127\.0\.0\.1:\d+/state is unreachable"
    with pytest.raises(StorageError, match=unreachable) as e:
        open_store(url)
    assert "s3cret" not in str(e.value)
    store = open_store(postgres_server.url().replace("postgres@", "postgres:s3cret@"))
    assert "s3cret" not in store.location  # trust auth ignores the password
    store.close()


@pytest.fixture
def own_server(postgres_server: PostgresServer) -> Iterator[PostgresServer]:
    """A server of its own, to stop and restart without disturbing other tests."""
    server = PostgresServer(postgres_server.bindir, free_port())
    server.start()
    yield server
    server.remove()


def test_store_survives_a_restart(own_server: PostgresServer) -> None:
    store = open_store(own_server.create_database())
    authority = store.create_authority(_authority())
    own_server.restart()
    assert store.active_authority() == authority  # the stale connection is replaced
    own_server.stop()
    with pytest.raises(StorageError, match=r"PostgreSQL at 127\.0\.0\.1:\d+/\w+ is unreachable"):
        store.next_crl_number(authority.id)
    own_server.start()
    assert store.next_crl_number(authority.id) == 1  # the failed call did nothing
    store.close()


def test_open_store_takes_postgres_urls(
    postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url = postgres_server.create_database()
    monkeypatch.setenv("TLSGATE_STATE", str(tmp_path / "state"))
    monkeypatch.setenv("TLSGATE_STORE", url.replace("postgresql://", "postgres://"))
    store = open_store()
    assert isinstance(store, PostgresStore)
    store.close()
    assert not (tmp_path / "state").exists()  # no SQLite state was made on the side


def test_a_forked_child_leaves_the_parents_connection_alone(
    postgres_server: PostgresServer,
) -> None:
    store = PostgresStore(postgres_server.create_database())
    (before,) = store._rows("SELECT pg_backend_pid() AS pid")
    pid = os.fork()
    if pid == 0:  # the child: a worker that drops the store it inherited and opens its own
        code = 1
        try:
            child = store.reopen()
            child.ticket_secret()
            child.close()
            store.close()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    (after,) = store._rows("SELECT pg_backend_pid() AS pid")
    assert after == before  # the same session: the child did not end it
    store.close()

"""Store fixtures: the contract tests run against every backend.

``store`` is parametrized over SQLite and PostgreSQL, so a test that asks for it states the
Store contract and both backends must pass it; tests about one backend's own layout (key files,
``PRAGMA``s) ask for ``sqlite_store`` instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.store.postgres import PostgresServer
from tlsgate.store import Store
from tlsgate.store.sqlite import SQLiteStore

BACKENDS = ("sqlite", "postgres")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_location(backend: str, request: pytest.FixtureRequest, state_dir: Path) -> str:
    """Where a fresh, empty store of ``backend`` lives: a directory or a database URL (which
    has no password, so other processes can open it from ``store.location`` alike)."""
    if backend == "sqlite":
        return str(state_dir)
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database()


@pytest.fixture
def store(store_location: str) -> Iterator[Store]:
    from tlsgate.store import open_store

    s = open_store(store_location)
    yield s
    s.close()


@pytest.fixture
def sqlite_store(state_dir: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(state_dir)
    yield s
    s.close()

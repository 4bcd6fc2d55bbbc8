"""Shared fixtures: a real CA in a temporary state directory, and real external tools.

Interop tests drive real programs (openssl, curl). Outside CI a missing program skips the test
with the install hint; in CI (``CI=true``) it fails, because the test script must have installed it.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.store.postgres import postgres_server  # noqa: F401 (a fixture for every test)
from tlsgate.ca import CertificateAuthority
from tlsgate.store.sqlite import SQLiteStore


def free_port() -> int:
    """A loopback port nothing listens on right now (for the servers the tests start)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_tool(name: str) -> str:
    """Path of an external program, or skip (fail in CI) when it is missing."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (scripts/test installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture
def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty state directory, also exported as TLSGATE_STATE for CLI calls."""
    path = tmp_path / "state"
    monkeypatch.setenv("TLSGATE_STATE", str(path))
    monkeypatch.delenv("TLSGATE_STORE", raising=False)  # it would win over TLSGATE_STATE
    monkeypatch.delenv("TLSGATE_CA_PASSPHRASE", raising=False)
    return path


@pytest.fixture
def store(state_dir: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(state_dir)
    yield s
    s.close()


@pytest.fixture
def ca(store: SQLiteStore, now: datetime) -> CertificateAuthority:
    return CertificateAuthority.init(store, now=now, name="Test")

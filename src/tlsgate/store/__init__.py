"""Persistence: where the CA, its certificates, ACME state and renewal state live.

``open_store`` is the one place that turns "where is my state" (``--state DIR``,
``TLSGATE_STATE``, or the XDG default) into a :class:`~tlsgate.store.base.Store`.
"""

from __future__ import annotations

import os
from pathlib import Path

from tlsgate.errors import ConfigError
from tlsgate.store.base import (
    AuthorityRecord,
    CertificateRecord,
    CertStatus,
    NewAuthority,
    Store,
)

__all__ = [
    "AuthorityRecord",
    "CertStatus",
    "CertificateRecord",
    "NewAuthority",
    "Store",
    "default_state_dir",
    "open_store",
    "resolve_state_dir",
]


def default_state_dir() -> Path:
    """``$XDG_DATA_HOME/tlsgate``, falling back to ``~/.local/share/tlsgate``."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "tlsgate"


def resolve_state_dir(option: str | None) -> Path:
    """``--state`` wins over ``TLSGATE_STATE``, which wins over the XDG default."""
    value = option or os.environ.get("TLSGATE_STATE")
    return Path(value).expanduser() if value else default_state_dir()


def open_store(state: str | Path | None = None) -> Store:
    location = str(state) if state is not None else None
    if location and "://" in location:
        scheme = location.split("://", 1)[0]
        raise ConfigError(f"unsupported store {scheme}://; use a directory path for SQLite state")
    from tlsgate.store.sqlite import SQLiteStore

    return SQLiteStore(resolve_state_dir(location))

"""Persistence: where the CA, its certificates, ACME state and renewal state live.

``open_store`` is the one place that turns "where is my state" into a
:class:`~tlsgate.store.base.Store`: an explicit location (``--store URL_OR_DIR`` or ``--state
DIR``), else ``TLSGATE_STORE``, else ``TLSGATE_STATE``, else the XDG default. A directory is the
embedded SQLite store; a ``postgresql://`` (or ``postgres://``) URL is PostgreSQL, for several
nodes sharing one state. psycopg is imported only then, so SQLite users never load it.

Some files are local to a machine whatever the store (the internal CRL file ``serve`` keeps for
its TLS contexts, the OCSP response cache, ``tlsgate cert`` output): :func:`resolve_state_dir`
says where they go. With a directory store it is that directory; with a database store it is
``TLSGATE_STATE``, else the XDG default.
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
    "is_database_url",
    "local_state_dir",
    "open_store",
    "resolve_state_dir",
    "resolve_store",
]

#: URL schemes of the PostgreSQL store (kept here so resolving a location imports no driver).
POSTGRES_SCHEMES = ("postgresql", "postgres")


def default_state_dir() -> Path:
    """``$XDG_DATA_HOME/tlsgate``, falling back to ``~/.local/share/tlsgate``."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "tlsgate"


def is_database_url(location: str | Path | None) -> bool:
    """Whether ``location`` names a database server rather than a directory."""
    return location is not None and "://" in str(location)


def resolve_store(option: str | Path | None) -> str:
    """The store's location: the option, else ``TLSGATE_STORE``, else ``TLSGATE_STATE``, else
    the XDG default directory."""
    value = (
        (str(option) if option else None)
        or os.environ.get("TLSGATE_STORE")
        or os.environ.get("TLSGATE_STATE")
    )
    return value if value else str(default_state_dir())


def resolve_state_dir(option: str | Path | None) -> Path:
    """The local directory: the store's when it is a directory, else (a database store)
    ``TLSGATE_STATE`` or the XDG default."""
    location = resolve_store(option)
    if not is_database_url(location):
        return Path(location).expanduser()
    value = os.environ.get("TLSGATE_STATE")
    return Path(value).expanduser() if value and not is_database_url(value) else default_state_dir()


def local_state_dir(store: Store) -> Path:
    """Where ``store``'s machine-local files go (created 0700 if missing): its own directory,
    or for a database store :func:`resolve_state_dir`'s answer."""
    from tlsgate.store.files import ensure_private_dir

    location = store.location
    if not is_database_url(location):
        return Path(location)
    return ensure_private_dir(resolve_state_dir(location))


def open_store(state: str | Path | None = None) -> Store:
    location = resolve_store(state)
    if is_database_url(location):
        scheme = location.split("://", 1)[0].lower()
        if scheme not in POSTGRES_SCHEMES:
            raise ConfigError(
                f"unsupported store {scheme}://; use postgresql://... or a directory for SQLite"
            )
        try:
            from tlsgate.store.postgres import PostgresStore
        except ImportError as exc:  # psycopg or libpq missing
            raise ConfigError(
                f"the PostgreSQL store needs psycopg 3 and libpq ({exc}); "
                "pip install 'psycopg>=3.1'"
            ) from None
        return PostgresStore(location)
    from tlsgate.store.sqlite import SQLiteStore

    return SQLiteStore(Path(location).expanduser())

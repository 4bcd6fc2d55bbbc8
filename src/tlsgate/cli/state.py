"""``--state DIR`` and ``--store URL_OR_DIR``: the one way every command is told where state is.

Two spellings because they say different things: ``--state`` has always been a directory (the
embedded SQLite store), ``--store`` also takes a ``postgresql://`` URL for state shared by several
nodes. They are mutually exclusive (argparse says so), and what a command hands to
:func:`~tlsgate.store.open_store` is whichever was given, so the precedence (option, then
``TLSGATE_STORE``, then ``TLSGATE_STATE``, then XDG) lives in one place.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tlsgate.store.base import Store

__all__ = ["add_state_options", "existing_state", "open_existing_store", "store_location"]

STORE_HELP = (
    "where the state lives: a directory, or postgresql://USER@HOST/DB shared by several nodes "
    "(default: $TLSGATE_STORE, else $TLSGATE_STATE, else $XDG_DATA_HOME/tlsgate)"
)


def add_state_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--state",
        metavar="DIR",
        help="state directory (default: $TLSGATE_STATE, else $XDG_DATA_HOME/tlsgate)",
    )
    group.add_argument("--store", metavar="URL_OR_DIR", help=STORE_HELP)


def store_location(args: argparse.Namespace) -> str | None:
    """What the user gave (``None``: let the environment and the default decide)."""
    value = getattr(args, "store", None) or getattr(args, "state", None)
    return str(value) if value else None


def existing_state(args: argparse.Namespace) -> str:
    """Where the state is, for a command that only uses state made before (``status``,
    ``ca list``, ``tunnel``...); refuses (exit 2) a directory without a state database.

    :func:`~tlsgate.store.open_store` creates a directory store that is not there, which is
    right for ``ca init`` and ``serve`` but turned a mistyped ``--state`` or ``TLSGATE_STATE``
    into a new empty state and an answer of "nothing here" with exit 0. Nothing is created
    here, and the message names the path and how to make a state; ``tlsgate monitor`` treats
    its store targets the same way. A database URL is returned as it is: a mistyped one fails
    to connect, it does not make a server.
    """
    from tlsgate.errors import NotInitialized
    from tlsgate.store import is_database_url, resolve_store
    from tlsgate.store.sqlite import DB_NAME

    location = resolve_store(store_location(args))
    if not is_database_url(location):
        path = Path(location).expanduser()
        if not (path / DB_NAME).is_file():
            why = "no such directory" if not path.exists() else f"no {DB_NAME} in it"
            raise NotInitialized(
                f"no tlsgate state at {path} ({why}): check --state / TLSGATE_STATE, or create "
                "it with 'tlsgate ca init' (or 'tlsgate serve')"
            )
    return location


def open_existing_store(args: argparse.Namespace) -> Store:
    """:func:`existing_state`, opened."""
    from tlsgate.store import open_store

    return open_store(existing_state(args))

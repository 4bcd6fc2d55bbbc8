"""``--state DIR`` and ``--store URL_OR_DIR``: the one way every command is told where state is.

Two spellings because they say different things: ``--state`` has always been a directory (the
embedded SQLite store), ``--store`` also takes a ``postgresql://`` URL for state shared by several
nodes. They are mutually exclusive (argparse says so), and what a command hands to
:func:`~tlsgate.store.open_store` is whichever was given, so the precedence (option, then
``TLSGATE_STORE``, then ``TLSGATE_STATE``, then XDG) lives in one place.
"""

from __future__ import annotations

import argparse

__all__ = ["add_state_options", "store_location"]

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

"""How PostgreSQL values come back as the records' values, shared by the PostgreSQL modules.

Timestamps are ``TIMESTAMPTZ`` (microseconds, like the records); psycopg returns them in the
session's time zone, which is the server's choice, so they are converted to UTC on the way out
and records compare equal whichever store they came from.
"""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
from psycopg.rows import DictRow

__all__ = ["Cursor", "opt_utc", "utc"]

Cursor = psycopg.Cursor[DictRow]


def utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def opt_utc(value: datetime | None) -> datetime | None:
    return utc(value) if value is not None else None

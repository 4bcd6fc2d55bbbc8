"""How Python values are written to SQLite columns, shared by the SQLite store's modules.

Timestamps are fixed-width ISO 8601 UTC text so that string order is time order (indexes and
``<`` comparisons work on them); serials are upper-case hex of even length, as OpenSSL prints them.
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["dt", "serial_key", "ts"]


def ts(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def dt(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def serial_key(serial: int) -> str:
    text = f"{serial:X}"
    return text if len(text) % 2 == 0 else "0" + text

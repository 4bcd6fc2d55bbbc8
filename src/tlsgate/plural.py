"""Counts in messages: ``1 entry``, ``2 entries``, ``0 certificates``.

One helper rather than ``f"{n} entries"`` here and there, because a message read by a person
("wrote CRL with 1 entries") should not look like a template.
"""

from __future__ import annotations

__all__ = ["count"]


def count(n: int, singular: str, plural: str | None = None) -> str:
    """``n`` and the noun in the right number (``plural`` defaults to ``singular + "s"``)."""
    return f"{n} {singular if n == 1 else (plural or singular + 's')}"

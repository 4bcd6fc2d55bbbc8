"""Anti-replay nonces (RFC 8555 section 6.5): issued unpredictable, accepted at most once.

A nonce is what makes a captured ACME request worthless to replay, so each one is single-use and
short-lived. The book is bounded: a client (or an attacker) asking for nonces and never using them
only pushes out the oldest outstanding ones, whose holders get ``badNonce`` and retry with the
fresh nonce that error carries, which RFC 8555 clients do anyway. Memory stays at ``capacity``
entries whatever the request rate.

:class:`NonceStore` is the whole interface the request verifier needs, so a cluster can later
put the book in PostgreSQL (an ``INSERT`` for issue, a ``DELETE ... RETURNING`` for consume)
without touching the verifier. ``now`` is always passed in (sans-IO: no clock reads here).
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

__all__ = ["NonceBook", "NonceStore"]


class NonceStore(Protocol):
    """Where nonces live: issue a fresh one, consume one at most once."""

    def issue(self, now: datetime) -> str:
        """A fresh base64url nonce (no padding), valid from ``now`` for the store's lifetime."""
        ...

    def consume(self, nonce: str, now: datetime) -> bool:
        """True exactly once for a nonce this store issued and that has not expired."""
        ...


class NonceBook:
    """In-memory :class:`NonceStore` for one process: bounded, expiring, single-use.

    Entries are kept in issue order, so expiry and eviction both only ever look at the front.
    ``token`` is injectable so tests can make nonces predictable; production uses
    :func:`secrets.token_urlsafe` (128 bits, base64url without padding, as RFC 8555 asks).
    """

    def __init__(
        self,
        *,
        capacity: int = 10_000,
        lifetime: timedelta = timedelta(minutes=30),
        token: Callable[[], str] = lambda: secrets.token_urlsafe(16),
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        if lifetime <= timedelta(0):
            raise ValueError("lifetime must be positive")
        self.capacity = capacity
        self.lifetime = lifetime
        self._token = token
        self._expires: OrderedDict[str, datetime] = OrderedDict()

    def issue(self, now: datetime) -> str:
        """Record and return a fresh nonce; drop expired ones and, when full, the oldest."""
        self._expire(now)
        while len(self._expires) >= self.capacity:
            self._expires.popitem(last=False)
        nonce = self._token()
        while nonce in self._expires:  # only an injected token function can repeat itself
            nonce = self._token()
        self._expires[nonce] = now + self.lifetime
        return nonce

    def consume(self, nonce: str, now: datetime) -> bool:
        """Use ``nonce`` up: True if it was outstanding and unexpired, False otherwise."""
        expires = self._expires.pop(nonce, None)
        return expires is not None and now < expires

    def __len__(self) -> int:
        """Outstanding nonces (some may have expired since the last issue)."""
        return len(self._expires)

    def _expire(self, now: datetime) -> None:
        while self._expires:
            first = next(iter(self._expires.values()))
            if first > now:
                break
            self._expires.popitem(last=False)

"""Anti-replay nonces (RFC 8555 section 6.5): issued unpredictable, accepted at most once.

A nonce is what makes a captured ACME request worthless to replay, so each one is single-use and
short-lived. The book is bounded: a client (or an attacker) asking for nonces and never using them
only pushes out the oldest outstanding ones, whose holders get ``badNonce`` and retry with the
fresh nonce that error carries, which RFC 8555 clients do anyway. Memory stays at ``capacity``
entries whatever the request rate.

:class:`NonceStore` is the whole interface the request verifier needs. Two implementations:

- :class:`NonceBook`, in memory: right for one ``ca serve`` process, and the fastest.
- :class:`StoreNonces`, in the shared store (an ``INSERT`` to issue, a ``DELETE ... RETURNING``
  to consume): what several ``ca serve`` nodes behind one name need, because a client takes its
  nonce from whichever node answered last and sends the next request to whichever node the load
  balancer picks. With a NonceBook per node every cross-node request would be a ``badNonce``.

``now`` is always passed in (sans-IO: no clock reads here).
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

from tlsgate.errors import AlreadyExists

__all__ = ["NonceBook", "NonceStore", "SharedNonceTable", "StoreNonces"]


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


class SharedNonceTable(Protocol):
    """The part of :class:`~tlsgate.store.base.Store` that :class:`StoreNonces` uses."""

    def issue_nonce(self, nonce: str, expires: datetime) -> None: ...

    def consume_nonce(self, nonce: str, now: datetime) -> bool: ...

    def purge_nonces(self, now: datetime) -> int: ...


class StoreNonces:
    """:class:`NonceStore` in the shared store, so a nonce from one node is good on every node.

    Single use is the store's promise (``consume_nonce`` is true exactly once, atomically across
    nodes). Every answer hands out a nonce and clients use only the last, so most rows are never
    consumed: they are deleted by :meth:`purge`, which :meth:`issue` runs itself at most once per
    ``purge_every`` (of ``now``), so no node needs a timer and the table holds about
    ``lifetime + purge_every`` of answers. Several nodes purging at once only delete the same
    expired rows. The lifetime is shorter than :class:`NonceBook`'s because those rows cost
    disk and index, and a client holding an expired nonce only retries once (``badNonce``).
    """

    def __init__(
        self,
        table: SharedNonceTable,
        *,
        lifetime: timedelta = timedelta(minutes=10),
        purge_every: timedelta = timedelta(minutes=1),
        token: Callable[[], str] = lambda: secrets.token_urlsafe(16),
    ) -> None:
        if lifetime <= timedelta(0) or purge_every <= timedelta(0):
            raise ValueError("lifetime and purge_every must be positive")
        self.table = table
        self.lifetime = lifetime
        self.purge_every = purge_every
        self._token = token
        self._next_purge: datetime | None = None

    def issue(self, now: datetime) -> str:
        """Record a fresh nonce in the store (and purge expired ones when it is time)."""
        if self._next_purge is None or now >= self._next_purge:
            self.purge(now)
        for _attempt in range(3):
            nonce = self._token()
            try:
                self.table.issue_nonce(nonce, now + self.lifetime)
            except AlreadyExists:  # only an injected token function can repeat itself
                continue
            return nonce
        raise AlreadyExists("could not draw an unused nonce")

    def consume(self, nonce: str, now: datetime) -> bool:
        """Use ``nonce`` up in the store: True once, on whichever node, if it is unexpired."""
        return self.table.consume_nonce(nonce, now)

    def purge(self, now: datetime) -> int:
        """Delete the nonces expired at ``now``; how many there were."""
        self._next_purge = now + self.purge_every
        return self.table.purge_nonces(now)

"""What the ACME server agrees to issue, and how often: identifier policy and rate limits.

Pure decisions (``now`` passed in), so the front end only maps a refusal to the RFC 8555 error
type it names. An identifier is refused before any order exists: a client learns at ``newOrder``
that a name is outside the CA's name constraints or the configured allow list, not after it has
proved control of it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from cryptography import x509

from tlsgate.errors import InvalidIdentity, PolicyDenied
from tlsgate.pki.names import NameConstraints, check_constraints, dns_matches, parse_dns_name

__all__ = [
    "IdentifierPolicy",
    "OrderLimiter",
    "RateLimiter",
    "Refusal",
    "SharedRateTable",
    "StoreRateLimiter",
]

RefusalKind = Literal["malformed", "rejectedIdentifier", "unsupportedIdentifier"]


@dataclass(frozen=True)
class Refusal:
    """Why one identifier of a request is refused; ``kind`` is the RFC 8555 error type."""

    identifier: tuple[str, str]  # (type, value) as the client sent it
    kind: RefusalKind
    detail: str


@dataclass(frozen=True)
class IdentifierPolicy:
    """The CA's name constraints, narrowed by an optional allow list.

    ``allow`` holds DNS names and suffixes (``example.test`` covers it and every name below it;
    a wildcard identifier ``*.a.example.test`` is covered by the same entries as
    ``x.a.example.test``) and IP networks; empty means whatever the constraints permit.
    """

    constraints: NameConstraints = field(default_factory=NameConstraints)
    allow_dns: tuple[str, ...] = ()
    allow_ip: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    max_identifiers: int = 100

    def check(self, identifiers: Sequence[tuple[str, str]]) -> list[Refusal]:
        """Every refusal among ``identifiers`` (empty: all may be ordered)."""
        if not identifiers:
            return [Refusal(("", ""), "malformed", "an order needs at least one identifier")]
        if len(identifiers) > self.max_identifiers:
            detail = f"at most {self.max_identifiers} identifiers per order"
            return [Refusal(identifiers[0], "rejectedIdentifier", detail)]
        refusals = []
        for identifier in identifiers:
            refusal = self._check_one(identifier)
            if refusal is not None:
                refusals.append(refusal)
        return refusals

    def canonical(self, identifier: tuple[str, str]) -> tuple[str, str]:
        """The form stored and compared with CSRs (lower-case A-labels, compressed IPs).

        Call only for identifiers :meth:`check` accepted.
        """
        kind, value = identifier
        if kind == "ip":
            return kind, str(ipaddress.ip_address(value))
        return kind, parse_dns_name(value)

    def _check_one(self, identifier: tuple[str, str]) -> Refusal | None:
        kind, value = identifier
        if kind == "dns":
            return self._check_dns(identifier, value)
        if kind == "ip":
            return self._check_ip(identifier, value)
        return Refusal(identifier, "unsupportedIdentifier", f"identifier type {kind!r}")

    def _check_dns(self, identifier: tuple[str, str], value: str) -> Refusal | None:
        # RFC 8555 7.1.4: the value is the ASCII (A-label) form; no trailing dot, no upper case
        # games: what is ordered is exactly what the certificate will carry.
        if not value.isascii() or value != value.lower() or value.endswith("."):
            return Refusal(
                identifier, "rejectedIdentifier", f"{value!r} is not a lower-case A-label name"
            )
        try:
            name = parse_dns_name(value)
        except InvalidIdentity as exc:
            return Refusal(identifier, "rejectedIdentifier", str(exc))
        if name != value:
            return Refusal(identifier, "rejectedIdentifier", f"{value!r} is not in canonical form")
        try:
            check_constraints([x509.DNSName(name)], self.constraints)
        except PolicyDenied as exc:
            return Refusal(identifier, "rejectedIdentifier", str(exc))
        if self.allow_dns or self.allow_ip:
            base = name[2:] if name.startswith("*.") else name
            if not any(dns_matches(base, allowed) for allowed in self.allow_dns):
                return Refusal(identifier, "rejectedIdentifier", f"{name} is not on the allow list")
        return None

    def _check_ip(self, identifier: tuple[str, str], value: str) -> Refusal | None:
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            return Refusal(identifier, "malformed", f"{value!r} is not an IP address")
        if str(address) != value:  # RFC 8738 3: the textual form, IPv6 compressed
            return Refusal(identifier, "malformed", f"{value!r} is not in canonical form")
        try:
            check_constraints([x509.IPAddress(address)], self.constraints)
        except PolicyDenied as exc:
            return Refusal(identifier, "rejectedIdentifier", str(exc))
        if (self.allow_dns or self.allow_ip) and not any(address in n for n in self.allow_ip):
            return Refusal(identifier, "rejectedIdentifier", f"{value} is not on the allow list")
        return None


class OrderLimiter(Protocol):
    """What the front end asks before a new order: how long must ``key`` wait (0.0: none)?"""

    def take(self, key: str, now: float) -> float: ...


class RateLimiter:
    """A token bucket per key (an account, a client address): ``burst`` at once, then ``rate``
    per second.

    Answers how long to wait instead of a yes/no, because the client is told exactly that
    (``rateLimited`` with ``Retry-After``).
    """

    def __init__(self, rate: float, burst: int) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def take(self, key: str, now: float) -> float:
        """Spend one token for ``key``: 0.0 when allowed, else the seconds until one is free."""
        tokens, at = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + max(0.0, now - at) * self.rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            if len(self._buckets) > 100_000:
                self._forget(now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / self.rate

    def _forget(self, now: float) -> None:
        """Drop buckets that have refilled: they hold no information any more."""
        full = [
            k for k, (t, at) in self._buckets.items() if t + (now - at) * self.rate >= self.burst
        ]
        for key in full:
            del self._buckets[key]


class SharedRateTable(Protocol):
    """The part of :class:`~tlsgate.store.base.Store` that :class:`StoreRateLimiter` uses."""

    def take_rate_token(self, key: str, now: float, *, rate: float, burst: int) -> float: ...


class StoreRateLimiter:
    """:class:`RateLimiter`'s budget kept in the shared store, so it holds across nodes.

    With one in-memory bucket per node, N ``ca serve`` nodes behind a load balancer would let
    an account place N times the configured rate. Here every node spends from one row per key,
    updated atomically by the store (one UPSERT on PostgreSQL), at the cost of one write per
    ``newOrder``, which already writes the order itself. Keys are prefixed (``order:``) so other
    budgets can share the table later.
    """

    def __init__(self, table: SharedRateTable, rate: float, burst: int) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.table = table
        self.rate = rate
        self.burst = burst

    def take(self, key: str, now: float) -> float:
        """Spend one request of ``key``'s shared budget: 0.0 when allowed, else the wait."""
        return self.table.take_rate_token(f"order:{key}", now, rate=self.rate, burst=self.burst)

"""Which site answers a host name, and which upstream gets the next request.

Pure and clock-free (``now`` is passed in) so balancing and passive health are tested without
sleeping. Passive health: an upstream that refused a connection or timed out is skipped for a
cool-down that doubles on each consecutive failure (capped), then tried again by real traffic; if
every upstream is cooling down, the one that recovers first is tried anyway, since refusing all
traffic is worse than one more attempt. Sites and upstreams are what the control plane hands
over; :mod:`tlsgate.proxy.settings` names the fields read of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tlsgate.compiled import compiled_module
from tlsgate.proxy.settings import SiteSettings, UpstreamAddress

__all__ = [
    "Balancer",
    "PureBalancer",
    "PureUpstreamState",
    "Router",
    "UpstreamState",
    "is_local_host",
    "normalize_host",
]

BASE_COOLDOWN = 2.0
MAX_COOLDOWN = 30.0
_LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".test", ".home.arpa", ".lan")


def is_local_host(host: str) -> bool:
    """Names a browser never reaches on the public internet (no HSTS by default for them, and
    the one site answers them when nothing else matches)."""
    if host == "localhost" or host.endswith(_LOCAL_SUFFIXES) or "." not in host:
        return True
    return host.replace(".", "").isdigit() or ":" in host


def normalize_host(value: bytes | str) -> str:
    """``Example.COM:8443`` -> ``example.com``; ``[::1]:443`` -> ``::1``."""
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    text = text.strip().lower()
    if text.startswith("["):
        end = text.find("]")
        return text[1:end] if end > 0 else text
    if text.count(":") == 1:
        text = text.partition(":")[0]
    return text.rstrip(".")


@dataclass(slots=True)
class UpstreamState:
    upstream: UpstreamAddress
    active: int = 0
    failures: int = 0
    down_until: float = 0.0

    def healthy(self, now: float) -> bool:
        return now >= self.down_until


@dataclass
class Balancer:
    """Chooses among one site's upstreams: round robin or least connections, healthy first."""

    states: list[UpstreamState]
    least_conn: bool = False
    _next: int = field(default=0, repr=False)

    @classmethod
    def of(cls, upstreams: Sequence[UpstreamAddress], balance: str = "round_robin") -> Balancer:
        return cls([UpstreamState(u) for u in upstreams], least_conn=balance == "least_conn")

    def pick(self, now: float, *, exclude: UpstreamState | None = None) -> UpstreamState:
        states = self.states
        candidates = [s for s in states if s.healthy(now) and s is not exclude]
        if not candidates:
            others = [s for s in states if s is not exclude] or states
            return min(others, key=lambda s: s.down_until)
        if self.least_conn:
            return min(candidates, key=lambda s: s.active)
        if len(candidates) == 1:
            return candidates[0]
        for _ in range(len(states)):
            state = states[self._next % len(states)]
            self._next += 1
            if state in candidates:
                return state
        return candidates[0]  # pragma: no cover - the loop always finds one

    @staticmethod
    def failed(state: UpstreamState, now: float) -> None:
        state.failures += 1
        state.down_until = now + min(BASE_COOLDOWN * 2 ** (state.failures - 1), MAX_COOLDOWN)

    @staticmethod
    def succeeded(state: UpstreamState) -> None:
        if state.failures:
            state.failures = 0
            state.down_until = 0.0


@dataclass
class Route:
    site: SiteSettings
    balancer: Balancer


class Router:
    """Exact names first, then a wildcard one label up (``*.example.com`` covers ``a.example.com``
    but not ``a.b.example.com``, as certificates do)."""

    def __init__(self, sites: Sequence[SiteSettings]) -> None:
        self.routes = [Route(site, Balancer.of(site.upstreams, site.balance)) for site in sites]
        self._exact: dict[str, Route] = {}
        self._wildcard: dict[str, Route] = {}
        for route in self.routes:
            for host in route.site.hosts:
                if host.startswith("*."):
                    self._wildcard[host[2:]] = route
                else:
                    self._exact[host] = route

    def match(self, host: str) -> Route | None:
        route = self._exact.get(host)
        if route is not None:
            return route
        _, _, parent = host.partition(".")
        return self._wildcard.get(parent) if parent else None

    def route_for(self, host: str, sni: Route | None) -> tuple[Route | None, int]:
        """The route for a request whose Host is ``host`` (normalized; "" when absent) on a
        connection whose handshake chose ``sni`` (None: no SNI or an unknown name).

        Returns ``(route, 0)``, or ``(None, status)`` for the edge to answer itself: 404 for a
        host no site serves, 421 for a Host naming another site than the handshake did.
        """
        route = self.match(host) if host else None
        if route is None and (not host or is_local_host(host)) and sni is None:
            route = self.default
        if route is None and not host:
            route = sni
        if route is None:
            return None, 404
        if sni is not None and route is not sni:
            return None, 421
        return route, 0

    @property
    def default(self) -> Route | None:
        """The route for clients that send no SNI (IP literals): the only site, if only one."""
        return self.routes[0] if len(self.routes) == 1 else None


# The compiled twins (tlsgate.proxy._fast) when built: the compiled connection calls their pick/
# failed/succeeded in C. The pure classes stay the reference (tests run on both).
PureUpstreamState, PureBalancer = UpstreamState, Balancer
if not TYPE_CHECKING and (_fast := compiled_module("tlsgate.proxy._fast")) is not None:
    UpstreamState, Balancer = _fast.UpstreamState, _fast.Balancer

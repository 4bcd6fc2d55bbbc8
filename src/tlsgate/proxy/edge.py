"""What every client connection of one listener shares: routing, upstream pool, limits, logging.

Also the short, generic answers the edge gives itself (404/421/400/502/504...): the client learns
the status and nothing else; internals, upstream addresses and stack traces stay in our log.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING

from tlsgate.config import ClientAuth, HstsPolicy, SiteConfig, Timeouts
from tlsgate.config import Limits as LimitsConfig
from tlsgate.http import Headers, Limits, serialize_response_head
from tlsgate.proxy.routing import Router, is_local_host
from tlsgate.proxy.upstream import UpstreamPool
from tlsgate.serve.metrics import Metrics

if TYPE_CHECKING:
    from tlsgate.proxy.protocol import ClientProtocol

__all__ = ["AccessRecord", "Edge", "error_response"]


def error_response(status: int, *, close: bool = True, detail: str = "") -> bytes:
    """A short text answer; ``detail`` (a 403's reason) must be safe to show the client."""
    phrase = HTTPStatus(status).phrase
    body = f"{status} {phrase}{': ' + detail if detail else ''}\n".encode()
    headers: Headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
    ]
    if close:
        headers.append((b"connection", b"close"))
    return serialize_response_head(status, phrase.encode(), headers) + body


@dataclass(slots=True)
class AccessRecord:
    """One access-log line: one per request the edge answered or cut short (per connection
    for TCP sites). ``method`` and ``target`` are None for a request refused before its request
    line was read whole; ``error`` says in words why the edge answered it itself."""

    client: str
    method: str | None
    target: str | None
    host: str
    status: int
    bytes_sent: int
    upstream: str
    duration: float
    error: str = ""
    site: str = ""


@dataclass
class Edge:
    """Everything a connection needs, shared by all connections of one worker's listener."""

    router: Router
    pool: UpstreamPool
    timeouts: Timeouts
    limits: LimitsConfig
    port: int
    trusted_proxies: tuple[object, ...] = ()
    log: Callable[[AccessRecord], None] | None = None
    metrics: Metrics | None = None
    draining: bool = False
    connections: set[ClientProtocol] = field(default_factory=set)
    parser_limits: Limits = field(init=False)
    hsts: dict[int, bytes | None] = field(default_factory=dict)
    #: id(site) -> its client-certificate settings, for sites that ask for client certificates
    client_auth: dict[int, ClientAuth] = field(init=False)

    def __post_init__(self) -> None:
        self.client_auth = {
            id(route.site): auth
            for route in self.router.routes
            if (auth := route.site.client_auth) is not None and auth.mode != "off"
        }
        self.parser_limits = Limits(
            max_header_bytes=self.limits.max_header_bytes,
            max_headers=self.limits.max_headers,
            max_body_bytes=self.limits.max_body_bytes,
        )

    def hsts_for(self, site: SiteConfig) -> bytes | None:
        key = id(site)
        if key not in self.hsts:
            policy = site.hsts
            if policy is None and not site.hsts_explicit:
                public = [h for h in site.hosts if not is_local_host(h.removeprefix("*."))]
                policy = HstsPolicy() if public else None
            self.hsts[key] = policy.header_value() if policy is not None else None
        return self.hsts[key]

"""What every client connection of one listener shares: routing, upstream pool, limits, logging.

Also the short, generic answers the edge gives itself (404/421/400/502/504...): the client learns
the status and nothing else; internals, upstream addresses and stack traces stay in our log.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING

from tlsgate.http import Headers, Limits, serialize_response_head
from tlsgate.proxy.access_log import AccessRecord
from tlsgate.proxy.routing import Router
from tlsgate.proxy.settings import (
    ClientCertPolicy,
    EdgeMetrics,
    LimitSettings,
    SiteSettings,
    TimeoutSettings,
)
from tlsgate.proxy.upstream import UpstreamPool

if TYPE_CHECKING:
    from tlsgate.proxy.h2_connection import H2Connection
    from tlsgate.proxy.h2c_upstream import H2cPool
    from tlsgate.proxy.protocol import ClientProtocol

__all__ = ["Edge", "error_fields", "error_response"]


def error_fields(status: int, detail: str = "") -> tuple[Headers, bytes]:
    """The edge's own short text answer, as fields and a body (HTTP/1.1 and HTTP/2 send the
    same); ``detail`` (a 403's reason) must be safe to show the client."""
    body = f"{status} {HTTPStatus(status).phrase}{': ' + detail if detail else ''}\n".encode()
    headers: Headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
    ]
    return headers, body


def error_response(status: int, *, close: bool = True, detail: str = "") -> bytes:
    """:func:`error_fields` as HTTP/1.1 bytes."""
    headers, body = error_fields(status, detail)
    if close:
        headers.append((b"connection", b"close"))
    return serialize_response_head(status, HTTPStatus(status).phrase.encode(), headers) + body


@dataclass
class Edge:
    """Everything a connection needs, shared by all connections of one worker's listener.

    Plain values from the control plane: the routing table, the settings as
    :mod:`tlsgate.proxy.settings` names them, and callables to report to (``log``,
    ``metrics``); nothing here reads a file, the store or the configuration itself.
    """

    router: Router
    pool: UpstreamPool
    timeouts: TimeoutSettings
    limits: LimitSettings
    port: int
    trusted_proxies: tuple[object, ...] = ()
    log: Callable[[AccessRecord], None] | None = None
    metrics: EdgeMetrics | None = None
    draining: bool = False
    connections: set[ClientProtocol | H2Connection] = field(default_factory=set)
    parser_limits: Limits = field(init=False)
    #: id(site) -> its Strict-Transport-Security value, for the sites that send one (derived
    #: from each site's HSTS policy and names by the control plane: tlsgate.serve.hsts)
    hsts: Mapping[int, bytes] = field(default_factory=dict)
    #: id(site) -> its client-certificate settings, for sites that ask for client certificates
    client_auth: dict[int, ClientCertPolicy] = field(init=False)
    #: The compiled connections' answers remembered across connections (who a peer address
    #: is, the route of a server name or Host: proxy/_fast_memo.pxi); None until the first.
    fast_memo: object = field(default=None, init=False, repr=False, compare=False)
    #: Connections to h2c:// upstreams (made at the first h2c request).
    h2c_pool: H2cPool | None = field(default=None, init=False, repr=False, compare=False)

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

    def hsts_for(self, site: SiteSettings) -> bytes | None:
        return self.hsts.get(id(site))

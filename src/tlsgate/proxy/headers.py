"""Header rewriting between client and upstream: what the app may believe about the request.

The seed's point about TLS termination is that the app sees plain http while the user came over
https; ``X-Forwarded-*`` and RFC 7239 ``Forwarded`` are how the app learns the truth. Those
headers are only as trustworthy as the hop that set them, so a client's own copies are dropped
unless it is one of ``trusted_proxies`` (another balancer in front of us), in which case we append
to them instead. Hop-by-hop headers (RFC 9110 7.6.1) describe one connection and never cross us.

The functions that run per request exist twice with one interface: here (the reference, and the
fallback) and compiled in ``_fast.pyx`` (the same bytes, serialized in one C pass); the module
exports the compiled ones unless :mod:`tlsgate.compiled` says pure (``PURE`` keeps these, for the
differential tests).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tlsgate.compiled import compiled_module
from tlsgate.http import (
    BodyKind,
    Headers,
    Request,
    Response,
    serialize_request_head,
    serialize_response_head,
)

__all__ = [
    "HOP_BY_HOP",
    "PURE",
    "XFCC",
    "ClientInfo",
    "forwarded_request_headers",
    "is_trusted",
    "request_head",
    "response_head",
    "response_headers",
]

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"trailer",
    }
)
#: Envoy's header for the client certificate's identity; only the edge may set it.
XFCC = b"x-forwarded-client-cert"
_FORWARDING = frozenset(
    {
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"x-forwarded-port",
        b"forwarded",
    }
)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """What we know first-hand about the connection a request came in on."""

    address: str  # peer IP
    port: int  # our listening port
    proto: bytes = b"https"


def is_trusted(address: str, trusted: Sequence[Network]) -> bool:
    if not trusted:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in trusted)


def _connection_tokens(headers: Headers) -> set[bytes]:
    tokens: set[bytes] = set()
    for name, value in headers:
        if name == b"connection":
            tokens.update(t.strip().lower() for t in value.split(b",") if t.strip())
    return tokens


def _forwarded_for(address: str) -> bytes:
    # RFC 7239 6: IPv6 addresses are bracketed and the value quoted.
    return f'"[{address}]"'.encode() if ":" in address else address.encode()


def forwarded_request_headers(
    headers: Headers,
    client: ClientInfo,
    *,
    host: bytes,
    trusted: bool,
    upgrade: bytes | None = None,
    via: bool = False,
    client_cert: bytes | None = None,
) -> Headers:
    """The headers to send upstream for a client request.

    ``upgrade`` keeps ``Connection: upgrade`` / ``Upgrade`` for a protocol switch (WebSocket),
    the one case where hop-by-hop headers must be passed on. ``X-Forwarded-Client-Cert`` from
    the client is always dropped: the upstream gets ``client_cert`` (the edge's own, from a
    verified certificate, see :mod:`tlsgate.mtls.xfcc`) or nothing, never a forged identity.
    """
    drop = HOP_BY_HOP | _connection_tokens(headers)
    out: Headers = []
    prior_for: list[bytes] = []
    prior_forwarded: list[bytes] = []
    kept_forwarding: dict[bytes, bytes] = {}
    for name, value in headers:
        if name in drop:
            continue
        if name == XFCC:
            continue
        if name in _FORWARDING:
            if trusted:
                if name == b"x-forwarded-for":
                    prior_for.append(value)
                elif name == b"forwarded":
                    prior_forwarded.append(value)
                else:
                    kept_forwarding.setdefault(name, value)
            continue
        out.append((name, value))
    if upgrade is not None:
        out.append((b"connection", b"upgrade"))
        out.append((b"upgrade", upgrade))
    address = client.address.encode()
    out.append((b"x-forwarded-for", b", ".join([*prior_for, address])))
    out.append((b"x-forwarded-proto", kept_forwarding.get(b"x-forwarded-proto", client.proto)))
    out.append((b"x-forwarded-host", kept_forwarding.get(b"x-forwarded-host", host)))
    out.append(
        (b"x-forwarded-port", kept_forwarding.get(b"x-forwarded-port", str(client.port).encode()))
    )
    element = b"for=" + _forwarded_for(client.address) + b";proto=" + client.proto
    if host:
        element += b';host="' + host.replace(b'"', b"") + b'"'
    out.append((b"forwarded", b", ".join([*prior_forwarded, element])))
    if via:
        out.append((b"via", b"1.1 tlsgate"))
    if client_cert is not None:
        out.append((XFCC, client_cert))
    return out


def request_head(
    request: Request,
    client: ClientInfo,
    *,
    host: bytes,
    trusted: bool,
    via: bool = False,
    client_cert: bytes | None = None,
    chunked: bool = False,
) -> bytes:
    """The head sent upstream for a client request: :func:`forwarded_request_headers` (the
    request's own upgrade kept), ``Transfer-Encoding: chunked`` when ``chunked`` (the body is
    re-framed), serialized (refusing header injection)."""
    headers = forwarded_request_headers(
        request.headers,
        client,
        host=host,
        trusted=trusted,
        upgrade=request.upgrade,
        via=via,
        client_cert=client_cert,
    )
    if chunked:
        headers.append((b"transfer-encoding", b"chunked"))
    return serialize_request_head(request.method, request.target, headers)


def response_headers(
    headers: Headers,
    *,
    hsts: bytes | None,
    via: bool = False,
    upgrade: bytes | None = None,
) -> Headers:
    """Upstream response headers for the client: hop-by-hop removed, HSTS added if missing."""
    drop = HOP_BY_HOP | _connection_tokens(headers)
    out: Headers = [(n, v) for n, v in headers if n not in drop]
    if upgrade is not None:
        out.append((b"connection", b"upgrade"))
        out.append((b"upgrade", upgrade))
    if hsts is not None and not any(n == b"strict-transport-security" for n, _ in out):
        out.append((b"strict-transport-security", hsts))
    if via:
        out.append((b"via", b"1.1 tlsgate"))
    return out


def response_head(
    response: Response,
    request: Request,
    *,
    hsts: bytes | None,
    via: bool = False,
    close: bool = False,
) -> tuple[bytes, bool, bool]:
    """The final response's head for the client: ``(head, rechunk, close)``.

    ``rechunk``: the body is re-framed as chunked (an HTTP/1.1 client of a body that ends when the
    upstream closes keeps its connection that way). ``close``: the client connection ends after
    this response; ``close`` passed in asks for it (draining), and the request or the framing can
    force it.
    """
    status = response.status
    upgrade = None
    if status == 101:
        for name, value in response.headers:
            if name == b"upgrade":
                upgrade = value
    headers = response_headers(response.headers, hsts=hsts, via=via, upgrade=upgrade)
    until_close = response.body is BodyKind.UNTIL_CLOSE
    rechunk = response.body is BodyKind.CHUNKED or (until_close and request.version == b"1.1")
    if rechunk:
        headers.append((b"transfer-encoding", b"chunked"))
    if (
        close
        or not request.keep_alive
        # after an upgrade request that was not switched, the request parser cannot go on
        or (request.upgrade is not None and status != 101)
        or (until_close and request.version != b"1.1")
    ):
        close = True
        if status != 101:
            headers.append((b"connection", b"close"))
    return serialize_response_head(status, response.reason, headers), rechunk, close


#: The pure implementations, whichever this module exports.
PURE: dict[str, Callable[..., Any]] = {
    "forwarded_request_headers": forwarded_request_headers,
    "request_head": request_head,
    "response_headers": response_headers,
    "response_head": response_head,
}
if not TYPE_CHECKING and (_fast := compiled_module("tlsgate.proxy._fast")) is not None:
    forwarded_request_headers = _fast.forwarded_request_headers
    request_head = _fast.request_head
    response_headers = _fast.response_headers
    response_head = _fast.response_head

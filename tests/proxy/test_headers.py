from __future__ import annotations

import ipaddress
from typing import Any

from tlsgate.http import BodyKind, Request, Response
from tlsgate.proxy.headers import (
    ClientInfo,
    forwarded_request_headers,
    is_trusted,
    response_head,
    response_headers,
)

CLIENT = ClientInfo("203.0.113.7", 443)


def names(headers: list[tuple[bytes, bytes]]) -> list[bytes]:
    return [n for n, _ in headers]


def test_spoofed_forwarding_headers_are_replaced() -> None:
    incoming = [
        (b"host", b"example.com"),
        (b"x-forwarded-for", b"1.2.3.4"),
        (b"x-forwarded-proto", b"http"),
        (b"forwarded", b"for=1.2.3.4"),
        (b"connection", b"keep-alive, x-drop"),
        (b"x-drop", b"1"),
        (b"te", b"trailers"),
        (b"accept", b"*/*"),
    ]
    out = dict(forwarded_request_headers(incoming, CLIENT, host=b"example.com", trusted=False))
    assert out[b"x-forwarded-for"] == b"203.0.113.7"
    assert out[b"x-forwarded-proto"] == b"https"
    assert out[b"x-forwarded-host"] == b"example.com"
    assert out[b"x-forwarded-port"] == b"443"
    assert out[b"forwarded"] == b'for=203.0.113.7;proto=https;host="example.com"'
    assert b"x-drop" not in out and b"connection" not in out and b"te" not in out
    assert out[b"accept"] == b"*/*"


def test_trusted_proxy_chain_is_appended() -> None:
    incoming = [
        (b"x-forwarded-for", b"198.51.100.1"),
        (b"x-forwarded-proto", b"https"),
        (b"forwarded", b"for=198.51.100.1"),
    ]
    out = dict(
        forwarded_request_headers(incoming, ClientInfo("::1", 8443), host=b"h", trusted=True)
    )
    assert out[b"x-forwarded-for"] == b"198.51.100.1, ::1"
    assert out[b"forwarded"] == b'for=198.51.100.1, for="[::1]";proto=https;host="h"'


def test_upgrade_is_the_one_hop_by_hop_passed() -> None:
    incoming = [(b"connection", b"Upgrade"), (b"upgrade", b"websocket")]
    out = forwarded_request_headers(
        incoming, CLIENT, host=b"h", trusted=False, upgrade=b"websocket"
    )
    assert (b"connection", b"upgrade") in out and (b"upgrade", b"websocket") in out


def test_is_trusted() -> None:
    nets = (ipaddress.ip_network("10.0.0.0/8"),)
    assert is_trusted("10.1.2.3", nets)
    assert not is_trusted("11.1.2.3", nets)
    assert not is_trusted("garbage", nets)
    assert not is_trusted("10.1.2.3", ())


def test_response_headers_hsts_and_hop_by_hop() -> None:
    upstream = [(b"keep-alive", b"timeout=5"), (b"content-type", b"text/html")]
    out = response_headers(upstream, hsts=b"max-age=63072000", via=True)
    assert names(out) == [b"content-type", b"strict-transport-security", b"via"]
    own = response_headers([(b"strict-transport-security", b"max-age=1")], hsts=b"max-age=2")
    assert own == [(b"strict-transport-security", b"max-age=1")]


def _request(version: bytes = b"1.1", keep_alive: bool = True, upgrade: bytes | None = None) -> Any:
    return Request(
        b"GET", b"/", version, [(b"host", b"h")], BodyKind.NONE, None, keep_alive, upgrade
    )


def _response(status: int = 200, body: BodyKind = BodyKind.LENGTH, headers: Any = ()) -> Any:
    return Response(status, b"", b"1.1", list(headers), body, None, True)


def test_response_head_framing_and_close() -> None:
    head, rechunk, close = response_head(
        _response(headers=[(b"content-length", b"2"), (b"connection", b"keep-alive")]),
        _request(),
        hsts=b"max-age=1",
    )
    assert head == (
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nstrict-transport-security: max-age=1\r\n\r\n"
    )
    assert (rechunk, close) == (False, False)
    # A body that ends at the upstream's close is re-chunked for an HTTP/1.1 client...
    head, rechunk, close = response_head(
        _response(body=BodyKind.UNTIL_CLOSE), _request(), hsts=None
    )
    assert b"transfer-encoding: chunked" in head and (rechunk, close) == (True, False)
    # ...and ends the connection of an HTTP/1.0 one.
    head, rechunk, close = response_head(
        _response(body=BodyKind.UNTIL_CLOSE), _request(b"1.0", keep_alive=False), hsts=None
    )
    assert b"connection: close" in head and (rechunk, close) == (False, True)
    # Draining, or an upgrade request answered without switching: the connection ends.
    assert response_head(_response(), _request(), hsts=None, close=True)[2]
    head, _, close = response_head(_response(), _request(upgrade=b"websocket"), hsts=None)
    assert close and b"connection: close" in head
    # 101 keeps the upgrade headers and never says close.
    switched = _response(
        101, BodyKind.NONE, [(b"upgrade", b"websocket"), (b"connection", b"upgrade")]
    )
    head, _, close = response_head(switched, _request(upgrade=b"websocket"), hsts=None)
    assert b"upgrade: websocket" in head and b"connection: upgrade" in head and not close


def test_a_client_certificate_header_from_the_client_never_passes() -> None:
    forged = (b"x-forwarded-client-cert", b"Hash=00;URI=spiffe://example.org/ns/ops/sa/admin")
    incoming = [(b"host", b"example.com"), forged, (b"X-Forwarded-Client-Cert".lower(), b"x")]
    for trusted in (False, True):  # not even from a trusted proxy: identity is the edge's own
        out = forwarded_request_headers(incoming, CLIENT, host=b"example.com", trusted=trusted)
        assert b"x-forwarded-client-cert" not in names(out)
    ours = b'Hash=ab;Subject="CN=web";URI=spiffe://example.org/ns/prod/sa/web'
    out = forwarded_request_headers(
        incoming, CLIENT, host=b"example.com", trusted=False, client_cert=ours
    )
    assert [v for n, v in out if n == b"x-forwarded-client-cert"] == [ours]

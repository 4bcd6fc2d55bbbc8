"""The request target's forms (RFC 9112 3.2): what the parser hands the proxy, and what it refuses.

The proxy forwards origin-form only and routes by one authority: an absolute-form target's
authority replaces Host (RFC 9112 3.2.2), so the upstream never sees two that disagree.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.http.test_http import parse, refused
from tests.serve.test_responder import FakeTransport
from tlsgate.config import SiteConfig, Upstream
from tlsgate.http import RemoteProtocolError, Request
from tlsgate.http.target import split_target
from tlsgate.proxy.redirect import RedirectProtocol
from tlsgate.proxy.routing import Router, normalize_host

ABSOLUTE = {
    # target -> (target forwarded, Host forwarded)
    b"http://other.example/x?y=1": (b"/x?y=1", b"other.example"),
    b"https://other.example": (b"/", b"other.example"),
    b"HTTPS://Other.Example:8443/a": (b"/a", b"Other.Example:8443"),
    b"http://other.example?q": (b"/?q", b"other.example"),
    b"http://[::1]:8443/v6": (b"/v6", b"[::1]:8443"),
    b"http://127.0.0.1/ip": (b"/ip", b"127.0.0.1"),
    b"http://a.example//two": (b"//two", b"a.example"),
}


@pytest.mark.parametrize("target", sorted(ABSOLUTE))
def test_absolute_form_becomes_origin_form_and_its_authority_replaces_host(target: bytes) -> None:
    forwarded, host = ABSOLUTE[target]
    data = b"GET " + target + b" HTTP/1.1\r\nHost: served.example\r\nAccept: */*\r\n\r\n"
    request = parse(data)[0]
    assert isinstance(request, Request)
    assert request.target == forwarded
    assert request.headers == [(b"host", host), (b"accept", b"*/*")]


def test_absolute_form_without_host_on_http10_gets_one() -> None:
    request = parse(b"GET http://a.example/x HTTP/1.0\r\n\r\n")[0]
    assert isinstance(request, Request)
    assert (request.target, request.headers) == (b"/x", [(b"host", b"a.example")])


def test_options_asterisk_is_forwarded_as_it_is() -> None:
    request = parse(b"OPTIONS * HTTP/1.1\r\nHost: a.example\r\n\r\n")[0]
    assert isinstance(request, Request)
    assert (request.target, request.headers) == (b"*", [(b"host", b"a.example")])


def test_options_absolute_form_with_an_empty_path_is_asterisk_form() -> None:
    # RFC 9112 3.2.4: the last proxy sends "*" for OPTIONS http://host (no path, no query).
    request = parse(b"OPTIONS http://a.example:8443 HTTP/1.1\r\nHost: b.example\r\n\r\n")[0]
    assert isinstance(request, Request)
    assert (request.target, request.headers) == (b"*", [(b"host", b"a.example:8443")])
    assert split_target(b"OPTIONS", b"http://a.example/") == (b"/", b"a.example")


def test_origin_form_is_untouched() -> None:
    request = parse(b"GET /a?b HTTP/1.1\r\nHost: a.example\r\n\r\n")[0]
    assert isinstance(request, Request)
    assert (request.target, request.headers) == (b"/a?b", [(b"host", b"a.example")])


REFUSED = {
    b"GET * HTTP/1.1": "asterisk-form target on a method other than options",
    b"POST * HTTP/1.1": "asterisk-form target on a method other than options",
    b"GET ftp://a.example/ HTTP/1.1": "request target scheme is not http or https",
    b"GET ws://a.example/ HTTP/1.1": "request target scheme is not http or https",
    b"GET https://user:pw@a.example/ HTTP/1.1": "userinfo in the request target",
    b"GET https://@a.example/ HTTP/1.1": "userinfo in the request target",
    b"GET http:///x HTTP/1.1": "invalid host in the request target",
    b"GET http://a.example:/x HTTP/1.1": "invalid host in the request target",
    b"GET http://a.example:http/x HTTP/1.1": "invalid host in the request target",
    b"GET http://a%2eexample/ HTTP/1.1": "invalid host in the request target",
    b"GET http://[zz::1]/ HTTP/1.1": "invalid host in the request target",
    b"GET http://[::1/ HTTP/1.1": "invalid host in the request target",
    b"GET http://a.example:0/ HTTP/1.1": "invalid port in the request target",
    b"GET http://a.example:65536/ HTTP/1.1": "invalid port in the request target",
    b"GET http://a.example#f HTTP/1.1": "invalid request target",
    b"GET a.example:443 HTTP/1.1": "invalid request target",
    b"GET http:/a.example HTTP/1.1": "invalid request target",
    b"CONNECT a.example:443 HTTP/1.1": "connect is not supported",
}


@pytest.mark.parametrize("line", sorted(REFUSED))
def test_other_targets_are_refused(line: bytes) -> None:
    status = 501 if line.startswith(b"CONNECT") else 400
    error = refused(line + b"\r\nHost: a.example\r\n\r\n", status)
    assert str(error) == REFUSED[line]


def test_split_target_refuses_what_llhttp_might_let_through() -> None:
    # The parser only calls it for targets not starting with "/"; it stands on its own anyway.
    for target in (b"", b"x", b"**", b"http://a.example/#f", b"1http://a/"):
        with pytest.raises(RemoteProtocolError) as info:
            split_target(b"GET", target)
        assert info.value.status == 400


def test_the_authority_is_routed_and_checked_against_sni_as_host_is() -> None:
    """The protocol routes by the Host the parser hands it: the target's authority."""
    upstream = Upstream("127.0.0.1", 1)
    router = Router(
        [
            SiteConfig(hosts=("a.example",), upstreams=(upstream,)),
            SiteConfig(hosts=("b.example",), upstreams=(upstream,)),
        ]
    )
    a, _ = router.routes

    def route(target: bytes, sni: object) -> tuple[object, int]:
        request = parse(b"GET " + target + b" HTTP/1.1\r\nHost: a.example\r\n\r\n")[0]
        assert isinstance(request, Request)
        host = dict(request.headers)[b"host"]
        return router.route_for(normalize_host(host), sni)  # type: ignore[arg-type]

    assert route(b"https://A.example:443/x", a) == (a, 0)
    # Host names a (the handshake's site), the target names b: the target wins, and b is not
    # the site the handshake chose, as for a Host naming b.
    assert route(b"https://b.example/x", a) == (None, 421)
    # A site this listener does not serve: 404, as for such a Host.
    assert route(b"https://c.example/x", a) == (None, 404)


def test_the_plain_http_listener_redirects_to_the_targets_authority_and_path() -> None:
    # The port-80 listener parses with the same parser: an absolute-form request is redirected
    # to its own authority and path (before: to Host's name, path dropped).
    async def run() -> bytes:
        protocol = RedirectProtocol(8443, idle=30)
        transport = FakeTransport()
        protocol.connection_made(transport)  # type: ignore[arg-type]
        protocol.data_received(
            b"GET http://a.example/x?y HTTP/1.1\r\nHost: b.example\r\nConnection: close\r\n\r\n"
        )
        protocol.connection_lost(None)
        return transport.written

    out = asyncio.run(run())
    assert out.startswith(b"HTTP/1.1 308")
    assert b"\r\nlocation: https://a.example:8443/x?y\r\n" in out

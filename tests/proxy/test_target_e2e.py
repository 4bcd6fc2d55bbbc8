"""Request-target forms through a real ``tlsgate serve``: the upstream sees one authority.

The upstream here answers with the bytes of the head it received, so what is asserted is what
crossed the wire, not what a parser made of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import Serve, config_text
from .test_smuggling_e2e import exchange
from .upstream_app import run_raw_upstream

pytestmark = pytest.mark.interop


@pytest.fixture
def raw_upstream() -> Iterator[tuple[int, list[bytes]]]:
    with run_raw_upstream() as upstream:
        yield upstream


@pytest.fixture
def two_sites(serve_factory: Any, raw_upstream: tuple[int, list[bytes]]) -> Serve:
    port = raw_upstream[0]
    config = config_text(
        f'["localhost"] -> http://127.0.0.1:{port}', f'["app.test"] -> http://127.0.0.1:{port}'
    )
    serve: Serve = serve_factory(config=config)
    return serve


def head_lines(head: bytes) -> list[bytes]:
    return head.rstrip(b"\r\n").split(b"\r\n")


def test_absolute_form_is_forwarded_in_origin_form_with_one_authority(
    two_sites: Serve, raw_upstream: tuple[int, list[bytes]]
) -> None:
    _, heads = raw_upstream
    # Host names the other served site; the target's authority, which the handshake (SNI
    # localhost) covers, is the one that counts (RFC 9112 3.2.2).
    out = exchange(
        two_sites,
        b"GET https://LOCALHOST:%d/abs?q=1 HTTP/1.1\r\nHost: app.test\r\n"
        b"Connection: close\r\n\r\n" % two_sites.port,
    )
    assert out.startswith(b"HTTP/1.1 200"), out[:200]
    assert len(heads) == 1
    lines = head_lines(heads[0])
    assert lines[0] == b"GET /abs?q=1 HTTP/1.1"
    hosts = [line for line in lines if line.lower().startswith(b"host:")]
    assert hosts == [b"host: LOCALHOST:%d" % two_sites.port]
    assert b"app.test" not in heads[0]  # not in Host, X-Forwarded-Host or Forwarded either


REFUSED = [
    # Host and SNI name localhost; the target names another site: misdirected, as that Host.
    (b"GET http://app.test/x HTTP/1.1", 421),
    # ...or a site this listener does not serve, as such a Host.
    (b"GET http://other.example/x HTTP/1.1", 404),
    (b"GET ftp://localhost/x HTTP/1.1", 400),
    (b"GET https://user@localhost/x HTTP/1.1", 400),
    (b"GET http://local%68ost/x HTTP/1.1", 400),
    (b"GET * HTTP/1.1", 400),
    (b"CONNECT localhost:443 HTTP/1.1", 501),
]


def test_other_authorities_and_forms_never_reach_the_upstream_options_asterisk_does(
    two_sites: Serve, raw_upstream: tuple[int, list[bytes]]
) -> None:
    _, heads = raw_upstream
    # One server for all cases (each its own connection): starting serve is the expensive part.
    for request_line, status in REFUSED:
        out = exchange(
            two_sites, request_line + b"\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        assert out.startswith(b"HTTP/1.1 %d" % status), (request_line, out[:200])
        assert heads == [], request_line
    # OPTIONS * is forwarded as it is, and OPTIONS with an empty path becomes it (RFC 9112 3.2.4).
    for target in (b"*", b"https://localhost"):
        heads.clear()
        out = exchange(
            two_sites,
            b"OPTIONS " + target + b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        )
        assert out.startswith(b"HTTP/1.1 200"), (target, out[:200])
        lines = head_lines(heads[0])
        assert lines[0] == b"OPTIONS * HTTP/1.1"
        assert [line for line in lines if line.lower().startswith(b"host:")] == [b"host: localhost"]

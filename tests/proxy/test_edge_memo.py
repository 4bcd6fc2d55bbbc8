"""What the compiled connections remember across connections (proxy/_fast_memo.pxi) gives the
answers computing them afresh gives, and stays bounded.

Who a peer address is (trusted proxy or not, its share of the forwarding headers), the route a
server name chooses, and a Host's route and status are remembered per edge. Real TLS clients
(blocking ``ssl`` sockets in a thread) make several connections through an in-process edge on
OpenSSL on the socket: the second connection, served from the tables, must get exactly what
the first did, and a flood of distinct Host values must not grow them past their bound.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from datetime import datetime

import pytest

from tests.proxy.edge_helpers import HeadAnswerer, upstream_and_edge
from tests.proxy.test_socket_tls import client_context, listening, run, site_context
from tlsgate.ca import CertificateAuthority
from tlsgate.proxy import _fast
from tlsgate.proxy.protocol import ClientProtocol

pytestmark = pytest.mark.compiled_only


class EchoHead(HeadAnswerer):
    """Answers each request with 200 and its head as the body (what the edge forwarded)."""

    def answer(self, head: bytes) -> None:
        self.transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(head), head))


def exchanges(ctx: ssl.SSLContext, port: int, requests: list[bytes]) -> list[tuple[int, bytes]]:
    """The requests on one keep-alive connection (SNI a.example.test): (status, body) each."""
    answers = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="a.example.test") as tls:
            stream = tls.makefile("rb")
            for request in requests:
                tls.sendall(request)
                status = int(stream.readline().split()[1])
                length = 0
                while (line := stream.readline()) not in (b"\r\n", b""):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                answers.append((status, stream.read(length)))
    return answers


def get(host: bytes, extra: bytes = b"") -> bytes:
    return b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n" + extra + b"\r\n"


@pytest.mark.parametrize("trusted", [True, False], ids=["trusted-peer", "untrusted-peer"])
def test_remembered_answers_are_the_computed_ones(
    trusted: bool, ca: CertificateAuthority, now: datetime
) -> None:
    server_ctx = site_context(ca, now, "a.example.test")
    client_ctx = client_context(ca)

    async def body() -> None:
        requests = [
            get(b"a.example.test", b"X-Forwarded-For: 203.0.113.9\r\n"),
            get(b"b.example.test"),  # another site than the handshake named
            get(b"nowhere.example.test"),  # no site
            get(b"A.Example.Test.:443"),  # the first Host, written otherwise
        ]
        trust = (ipaddress.ip_network("127.0.0.0/8"),) if trusted else ()
        async with upstream_and_edge(
            EchoHead, "a.example.test", "b.example.test", trusted_proxies=trust
        ) as edge:
            async with listening("socket", server_ctx, lambda: ClientProtocol(edge)) as port:
                first = await asyncio.to_thread(exchanges, client_ctx, port, requests)
                second = await asyncio.to_thread(exchanges, client_ctx, port, requests)
        assert first == second  # the second connection's answers came from the tables
        assert [status for status, _ in first] == [200, 421, 404, 200]
        head = first[0][1].lower()
        if trusted:
            assert b"x-forwarded-for: 203.0.113.9, 127.0.0.1\r\n" in head
        else:
            assert b"x-forwarded-for: 127.0.0.1\r\n" in head
        assert b'forwarded: for=127.0.0.1;proto=https;host="a.example.test"' in head
        assert b'host="A.Example.Test.:443"' in first[3][1]  # forwarded as the client wrote it
        assert isinstance(edge.fast_memo, _fast._EdgeMemo)
        assert edge.fast_memo.sizes() == {"clients": 2, "sni_routes": 1, "host_routes": 4}

    run(body)


def test_the_tables_stay_bounded(ca: CertificateAuthority, now: datetime) -> None:
    """More distinct Host values than a table holds: every one still answered right (404), the
    table emptied and refilled rather than grown."""
    server_ctx = site_context(ca, now, "a.example.test")
    client_ctx = client_context(ca)
    flood = [get(b"h%d.example.test" % i) for i in range(_fast.MEMO_MAX + 100)]

    async def body() -> None:
        async with upstream_and_edge(EchoHead, "a.example.test") as edge:
            async with listening("socket", server_ctx, lambda: ClientProtocol(edge)) as port:
                answers = await asyncio.to_thread(exchanges, client_ctx, port, flood)
                assert [status for status, _ in answers] == [404] * len(flood)
                assert isinstance(edge.fast_memo, _fast._EdgeMemo)
                sizes = edge.fast_memo.sizes()
                assert 0 < sizes["host_routes"] <= _fast.MEMO_MAX
                ((status, _),) = await asyncio.to_thread(
                    exchanges, client_ctx, port, [get(b"a.example.test")]
                )
                assert status == 200

    run(body)

"""Response bodies relayed byte for byte, whichever way they go.

On OpenSSL on the socket, the compiled upstream connection relays a Content-Length body from its
read buffer straight into OpenSSL (the parser only counts it, ``skip_body``), copying only what
the client's socket cannot take at once; a chunked body goes through the parser's Data events
and is re-framed. Real TLS clients (blocking ``ssl`` sockets in a thread) fetch bodies that end
in odd places, first reading nothing for a while (so the proxy is paused and copies what
waits), then everything; each body must arrive exactly (SHA-256), the connection must carry the
next request, and both transports (the socket's and the event loop's TLS) must agree.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import socket
import ssl
import time
from datetime import datetime

import pytest

from tests.proxy.edge_helpers import HeadAnswerer, upstream_and_edge
from tests.proxy.test_socket_tls import KINDS, client_context, listening, run, site_context
from tlsgate.ca import CertificateAuthority
from tlsgate.proxy.protocol import ClientProtocol

SIZES = [1, 16 * 1024 - 1, 16 * 1024 + 7, 300_001, 5 * 1024 * 1024 + 13]


def body_of(size: int) -> bytes:
    return random.Random(size).randbytes(size)


class Bodies(HeadAnswerer):
    """``GET /length/N`` or ``GET /chunked/N``: N pseudo-random bytes, written in uneven
    pieces (so that reads end anywhere in the body)."""

    def answer(self, head: bytes) -> None:
        kind, size = head.split(b" ")[1].split(b"/")[1:3]
        asyncio.get_running_loop().create_task(self.send(kind, int(size)))

    async def send(self, kind: bytes, size: int) -> None:
        body = body_of(size)
        chunked = kind == b"chunked"
        framing = b"transfer-encoding: chunked" if chunked else b"content-length: %d" % size
        self.transport.write(b"HTTP/1.1 200 OK\r\n" + framing + b"\r\n\r\n")
        pieces = random.Random(-size)
        at = 0
        while at < size:
            piece = body[at : at + pieces.randint(1, 200_000)]
            at += len(piece)
            self.transport.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            await asyncio.sleep(0)
        if chunked:
            self.transport.write(b"0\r\n\r\n")


def fetch(ctx: ssl.SSLContext, port: int, paths: list[str], stall: float) -> list[bytes]:
    """The paths on one keep-alive connection; before reading the first response the client
    reads nothing for ``stall`` seconds. Returns each de-chunked body."""
    bodies = []
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        with ctx.wrap_socket(raw, server_hostname="a.example.test") as tls:
            stream = tls.makefile("rb")
            for path in paths:
                tls.sendall(b"GET %s HTTP/1.1\r\nHost: a.example.test\r\n\r\n" % path.encode())
                if stall:
                    time.sleep(stall)
                    stall = 0
                assert stream.readline().startswith(b"HTTP/1.1 200 ")
                length, chunked = None, False
                while (line := stream.readline()) not in (b"\r\n", b""):
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"transfer-encoding":
                        chunked = b"chunked" in value.lower()
                if not chunked:
                    assert length is not None
                    bodies.append(stream.read(length))
                    continue
                body = b""
                while size := int(stream.readline().split(b";")[0], 16):
                    body += stream.read(size)
                    assert stream.read(2) == b"\r\n"
                assert stream.readline() == b"\r\n"
                bodies.append(body)
    return bodies


@pytest.mark.parametrize("kind", KINDS)
def test_bodies_arrive_exactly(kind: str, ca: CertificateAuthority, now: datetime) -> None:
    server_ctx = site_context(ca, now, "a.example.test")
    client_ctx = client_context(ca)
    paths = [f"/{framing}/{size}" for size in SIZES for framing in ("length", "chunked")]

    async def body() -> None:
        async with upstream_and_edge(Bodies, "a.example.test") as edge:
            async with listening(kind, server_ctx, lambda: ClientProtocol(edge)) as port:
                # The largest body first, read late: the proxy is paused with records waiting.
                first = await asyncio.to_thread(
                    fetch, client_ctx, port, [paths[-2], paths[-1]], 0.5
                )
                rest = await asyncio.to_thread(fetch, client_ctx, port, paths, 0.0)
        for path, got in zip([paths[-2], paths[-1], *paths], first + rest, strict=True):
            size = int(path.rsplit("/", 1)[1])
            assert len(got) == size, path
            assert hashlib.sha256(got).digest() == hashlib.sha256(body_of(size)).digest(), path

    run(body)

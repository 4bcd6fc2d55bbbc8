"""A closed connection is freed when it closes, not by the garbage collector.

A reference cycle per connection (the protocol and its deadline's callback, the protocol and its
transport) leaves every closed connection, its TLS state included, for Python's cycle collector:
a collection every few hundred connections under handshake load (4 % of a worker's CPU,
measured) and memory held in between. The real client protocol serves real TLS clients
(blocking ``ssl`` sockets in a thread, so the client side adds no garbage of its own) through an
in-process edge, with the collector switched off; afterwards the collector must find nothing.

On the compiled data plane only: the pure twin's request framer is a cycle by design (httptools
calls back into it through hooks it holds); it is the reference, not the path under load.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import ssl
from datetime import datetime

import pytest

from tests.proxy.edge_helpers import upstream_and_edge
from tests.proxy.test_access_log import Upstream200
from tests.proxy.test_socket_tls import client_context, listening, run, site_context
from tlsgate.ca import CertificateAuthority
from tlsgate.pki.keys import private_key_pem
from tlsgate.pki.names import parse_identities
from tlsgate.proxy.protocol import ClientProtocol
from tlsgate.tls.context import load_chain_into, new_server_context

CONNECTIONS = 30


def one_request(ctx: ssl.SSLContext, port: int, close: bool) -> bytes:
    """A request on a fresh connection; ``close``: ``Connection: close``, else the client hangs
    up after the response."""
    header = b"Connection: close\r\n" if close else b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="a.example.test") as tls:
            tls.sendall(b"GET / HTTP/1.1\r\nHost: a.example.test\r\n" + header + b"\r\n")
            out = b""
            while not out.endswith(b"ok"):
                chunk = tls.recv(4096)
                if not chunk:
                    break
                out += chunk
            return out


@pytest.mark.compiled_only
@pytest.mark.parametrize("close", [True, False], ids=["connection-close", "client-hangs-up"])
@pytest.mark.parametrize("kind", ["socket", "loop"])
def test_closed_connections_leave_no_cycles(
    kind: str, close: bool, ca: CertificateAuthority, now: datetime
) -> None:
    server_ctx = site_context(ca, now, "a.example.test")
    client_ctx = client_context(ca)

    async def body() -> None:
        async with upstream_and_edge(Upstream200, "a.example.test") as edge:
            async with listening(kind, server_ctx, lambda: ClientProtocol(edge)) as port:
                # One round first: the pool's upstream connection, caches, lazy imports.
                assert (await asyncio.to_thread(one_request, client_ctx, port, close)).endswith(
                    b"ok"
                )
                for _ in range(50):
                    await asyncio.sleep(0.01)
                    if not edge.connections:
                        break
                gc.collect()
                gc.disable()
                try:
                    for _ in range(CONNECTIONS):
                        out = await asyncio.to_thread(one_request, client_ctx, port, close)
                        assert out.startswith(b"HTTP/1.1 200 ") and out.endswith(b"ok")
                    for _ in range(200):  # every connection's end reached the protocol
                        await asyncio.sleep(0.01)
                        if not edge.connections:
                            break
                    assert not edge.connections
                    await asyncio.sleep(0.05)
                    found = gc.collect()
                finally:
                    gc.enable()
                assert found == 0, f"{found} objects in cycles after {CONNECTIONS} connections"

    run(body)


def h2_request_bytes() -> bytes:
    """A client preface, SETTINGS and one GET with END_STREAM, encoded once (outside the
    measured part: the h2 package's own objects are not the server's garbage)."""
    import h2.config
    import h2.connection

    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    conn.send_headers(
        1,
        [(":method", "GET"), (":scheme", "https"), (":authority", "a.example.test"),
         (":path", "/")],
        end_stream=True,
    )  # fmt: skip
    return conn.data_to_send()


def one_h2_request(ctx: ssl.SSLContext, port: int, request: bytes, wait: bool) -> bytes:
    """``wait``: read until the response's body, then hang up; else hang up at once (the stream
    is abandoned in flight)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="a.example.test") as tls:
            assert tls.selected_alpn_protocol() == "h2"
            tls.sendall(request)
            out = b""
            while wait and b"ok" not in out:
                chunk = tls.recv(4096)
                if not chunk:
                    break
                out += chunk
            return out


@pytest.mark.compiled_only
@pytest.mark.parametrize("wait", [True, False], ids=["answered", "abandoned"])
def test_closed_h2_connections_leave_no_cycles(
    wait: bool, ca: CertificateAuthority, now: datetime
) -> None:
    """An HTTP/2 connection and its streams are freed when it closes: a cycle per stream (its
    deadline held its bound method) kept the connection and its session's queued response
    bytes until a full collection, and a client abandoning streams of large responses grew a
    worker by ~15 MiB per 100 streams."""
    issued = ca.issue(parse_identities(["a.example.test"]), now=now)
    assert issued.private_key is not None
    server_ctx = new_server_context(alpn=("h2", "http/1.1"))
    load_chain_into(server_ctx, issued.fullchain_pem, private_key_pem(issued.private_key))
    client_ctx = client_context(ca)
    client_ctx.set_alpn_protocols(["h2"])
    request = h2_request_bytes()

    async def body() -> None:
        async with upstream_and_edge(Upstream200, "a.example.test") as edge:
            async with listening("socket", server_ctx, lambda: ClientProtocol(edge)) as port:
                await asyncio.to_thread(one_h2_request, client_ctx, port, request, True)
                for _ in range(100):
                    await asyncio.sleep(0.02)
                    if not edge.connections:
                        break
                gc.collect()
                gc.disable()
                try:
                    for _ in range(CONNECTIONS):
                        await asyncio.to_thread(one_h2_request, client_ctx, port, request, wait)
                    for _ in range(300):
                        await asyncio.sleep(0.01)
                        if not edge.connections:
                            break
                    assert not edge.connections
                    await asyncio.sleep(1.2)  # (the streams' deadline sweep, once a second)
                    found = gc.collect()
                finally:
                    gc.enable()
                assert found == 0, f"{found} objects in cycles after {CONNECTIONS} connections"

    run(body)

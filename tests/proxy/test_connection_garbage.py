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
from tlsgate.proxy.protocol import ClientProtocol

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

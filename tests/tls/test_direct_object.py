"""Server connections wrapped by ``wrap_bio`` read and write through OpenSSL's C methods.

A handshake and a round trip of application data run through two memory BIO pairs, the way
uvloop's and asyncio's TLS transports drive a server connection, with the server's object made
by :func:`new_server_context`'s ``DirectSSLObject``.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import cast

from tests.tls.tls_helpers import Exchange, self_signed
from tlsgate.tls.context import new_server_context
from tlsgate.tls.direct_object import DirectSSLObject


def test_server_objects_use_the_c_methods_and_still_speak_tls(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    server_ctx = new_server_context()
    server_ctx.load_cert_chain(cert, key)
    assert server_ctx.sslobject_class is DirectSSLObject
    exchange = Exchange(server_ctx, ssl.create_default_context(cafile=cert))
    server, client = exchange.server, exchange.client
    assert isinstance(server, DirectSSLObject)
    inner = server._sslobj  # type: ignore[attr-defined]
    # Bound to the C object: no Python frame per record.
    assert server.read == inner.read and server.write == inner.write
    assert server.pending == inner.pending
    assert type(server.read).__name__ == "builtin_function_or_method"

    exchange.handshake()  # (ends with one byte from the server, read by the client)
    assert server.version() in ("TLSv1.2", "TLSv1.3")
    client.write(b"ping" * 1000)
    exchange.pump()
    buf = bytearray(8192)
    got = b""
    while len(got) < 4000:
        n = cast(int, server.read(len(buf), buf))  # (into a buffer: a count)
        got += bytes(buf[:n])
    assert got == b"ping" * 1000
    assert server.pending() == 0
    assert server.write(b"pong") == 4
    exchange.pump()
    assert client.read(100) == b"pong"

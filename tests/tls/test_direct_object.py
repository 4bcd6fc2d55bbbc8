"""Server connections wrapped by ``wrap_bio`` read and write through OpenSSL's C methods.

A handshake and a round trip of application data run through two memory BIO pairs, the way
uvloop's and asyncio's TLS transports drive a server connection, with the server's object made
by :func:`new_server_context`'s ``DirectSSLObject``.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import cast

from tests.tls.tls_helpers import self_signed
from tlsgate.tls.context import new_server_context
from tlsgate.tls.direct_object import DirectSSLObject


def pump(source: ssl.MemoryBIO, sink: ssl.MemoryBIO) -> None:
    data = source.read()
    if data:
        sink.write(data)


def test_server_objects_use_the_c_methods_and_still_speak_tls(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    server_ctx = new_server_context()
    server_ctx.load_cert_chain(cert, key)
    assert server_ctx.sslobject_class is DirectSSLObject
    client_ctx = ssl.create_default_context(cafile=cert)

    s_in, s_out, c_in, c_out = (ssl.MemoryBIO() for _ in range(4))
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname="localhost")
    assert isinstance(server, DirectSSLObject)
    inner = server._sslobj  # type: ignore[attr-defined]
    # Bound to the C object: no Python frame per record.
    assert server.read == inner.read and server.write == inner.write
    assert server.pending == inner.pending
    assert type(server.read).__name__ == "builtin_function_or_method"

    done = {"server": False, "client": False}
    for _ in range(10):
        for name, obj in (("client", client), ("server", server)):
            if not done[name]:
                try:
                    obj.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        pump(c_out, s_in)
        pump(s_out, c_in)
        if all(done.values()):
            break
    assert all(done.values())
    assert server.version() in ("TLSv1.2", "TLSv1.3")

    client.write(b"ping" * 1000)
    pump(c_out, s_in)
    buf = bytearray(8192)
    got = b""
    while len(got) < 4000:
        n = cast(int, server.read(len(buf), buf))  # (into a buffer: a count)
        got += bytes(buf[:n])
    assert got == b"ping" * 1000
    assert server.pending() == 0
    assert server.write(b"pong") == 4
    pump(s_out, c_in)
    assert client.read(100) == b"pong"

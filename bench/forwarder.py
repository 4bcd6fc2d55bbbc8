"""The ceiling of the stack: a TLS terminator on uvloop that forwards bytes and does nothing else.

Not a proxy anyone should run: no HTTP parsing, no header rewriting, one upstream connection per
client connection, no limits, no timeouts. It exists to answer one question for the proxy
benchmark: how close to nginx can *any* proxy built on Python's ``ssl`` + uvloop get on this
machine? Run it through the harness like any proxy under test::

    .venv/bin/python bench/proxy.py --label forwarder \\
        --proxy-cmd '{root}/.venv/bin/python {root}/bench/forwarder.py {cert} {key} {port} \\
                     {upstream_port}'

Whatever tlsgate does per request (parse, route, rewrite, log) costs on top of these figures.
"""

from __future__ import annotations

import asyncio
import ssl
import sys

import uvloop


class _Upstream(asyncio.Protocol):
    def __init__(self, client: _Client) -> None:
        self.client = client

    def data_received(self, data: bytes) -> None:
        if self.client.transport is not None:
            self.client.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.client.transport is not None:
            self.client.transport.close()


class _Client(asyncio.Protocol):
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.transport: asyncio.WriteTransport | None = None
        self.upstream: asyncio.WriteTransport | None = None
        self.pending: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_connection(
            lambda: _Upstream(self), "127.0.0.1", self.upstream_port
        )
        self.upstream = transport
        for data in self.pending:
            transport.write(data)
        self.pending.clear()

    def data_received(self, data: bytes) -> None:
        if self.upstream is None:
            self.pending.append(data)
        else:
            self.upstream.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.upstream is not None:
            self.upstream.close()


async def _serve(cert: str, key: str, port: int, upstream_port: int) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Client(upstream_port), "127.0.0.1", port, ssl=ctx)
    await server.serve_forever()


def main() -> None:
    if len(sys.argv) != 5:
        sys.exit("usage: forwarder.py CERT KEY PORT UPSTREAM_PORT")
    cert, key, port, upstream_port = sys.argv[1:]
    uvloop.run(_serve(cert, key, int(port), int(upstream_port)))


if __name__ == "__main__":
    main()

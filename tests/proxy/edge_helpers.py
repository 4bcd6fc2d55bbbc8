"""An in-process edge in front of an in-process upstream, for tests that drive the real client
protocol (compiled or pure, as the run selects) with real TLS clients."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from tlsgate.config import Limits, SiteConfig, Timeouts, Upstream
from tlsgate.proxy.edge import Edge
from tlsgate.proxy.routing import Router
from tlsgate.proxy.upstream import UpstreamPool


class HeadAnswerer(asyncio.Protocol):
    """An upstream that answers each request head (bodies are not expected) with
    :meth:`answer`."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
            self.answer(head)

    def answer(self, head: bytes) -> None:
        raise NotImplementedError


@asynccontextmanager
async def upstream_and_edge(
    upstream: Callable[[], asyncio.Protocol],
    *hosts: str,
    trusted_proxies: tuple[object, ...] = (),
) -> AsyncIterator[Edge]:
    """An upstream server of ``upstream`` protocols on 127.0.0.1 and an edge (port 443,
    30 s timeouts) with one site per name in ``hosts``, all sent to it."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(upstream, "127.0.0.1", 0)
    target = (Upstream("127.0.0.1", server.sockets[0].getsockname()[1]),)
    edge = Edge(
        router=Router([SiteConfig(hosts=(host,), upstreams=target) for host in hosts]),
        pool=UpstreamPool(loop),
        timeouts=Timeouts(header=30, idle=30, upstream_response=30),
        limits=Limits(),
        port=443,
        trusted_proxies=trusted_proxies,
    )
    try:
        yield edge
    finally:
        edge.pool.close()
        server.close()

"""Connections to the plain-HTTP services behind the edge, kept alive and pooled.

A new TCP connection per request would double the work of every proxied request and exhaust
ephemeral ports under load, so finished connections go back to a per-upstream pool and the next
request takes the most recently used one (warmest, least likely to have been closed by the
upstream's own idle timeout). A pooled connection that the upstream closed while idle is noticed
by ``connection_lost`` and never handed out.
"""

from __future__ import annotations

import asyncio
import socket
from collections import defaultdict
from typing import cast

from tlsgate.config import Upstream
from tlsgate.proxy.flow import EventChannel, WriteGate
from tlsgate.proxy.http import Limits, RemoteProtocolError, ResponseParser

__all__ = ["UpstreamConnection", "UpstreamPool"]

MAX_IDLE_PER_UPSTREAM = 128
IDLE_TIMEOUT = 30.0


class UpstreamConnection(asyncio.Protocol):
    def __init__(self, loop: asyncio.AbstractEventLoop, upstream: Upstream) -> None:
        self.loop = loop
        self.upstream = upstream
        self.parser = ResponseParser(Limits(max_header_bytes=64 * 1024, max_headers=200))
        self.events = EventChannel(loop)
        self.gate = WriteGate(loop)
        self.transport: asyncio.Transport | None = None
        self.tunnel: asyncio.Transport | None = None  # set after 101: raw bytes go to the client
        self.reused = False
        self._idle_handle: asyncio.TimerHandle | None = None

    # -- asyncio callbacks -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's SSL transport is not an asyncio.Transport subclass, but has its interface.
        self.transport = cast(asyncio.Transport, transport)
        self.events.attach(self.transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        if self.tunnel is not None:
            self.tunnel.write(data)
            return
        try:
            events = self.parser.feed(data)
        except RemoteProtocolError as exc:
            self.events.fail(exc)
            return
        self.events.push(events)

    def eof_received(self) -> bool | None:
        if self.tunnel is None:
            try:
                self.events.push(self.parser.feed_eof())
            except RemoteProtocolError as exc:
                self.events.fail(exc)
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.events.close()
        self.gate.close()
        if self.tunnel is not None:
            self.tunnel.close()
        if self._idle_handle is not None:
            self._idle_handle.cancel()

    def pause_writing(self) -> None:
        self.gate.pause()

    def resume_writing(self) -> None:
        self.gate.resume()

    # -- use -----------------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self.events.closed

    def write(self, data: bytes) -> None:
        if self.transport is not None and data:
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class UpstreamPool:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._idle: defaultdict[Upstream, list[UpstreamConnection]] = defaultdict(list)

    async def acquire(self, upstream: Upstream, timeout: float) -> UpstreamConnection:
        """A ready connection: a pooled one if any is still open, else a new one.

        Raises OSError or TimeoutError when the upstream cannot be reached.
        """
        idle = self._idle.get(upstream)
        while idle:
            conn = idle.pop()
            if conn._idle_handle is not None:
                conn._idle_handle.cancel()
                conn._idle_handle = None
            if not conn.closed and not conn.events.pending:
                conn.reused = True
                return conn
            conn.close()
        async with asyncio.timeout(timeout):
            _, protocol = await self.loop.create_connection(
                lambda: UpstreamConnection(self.loop, upstream), upstream.host, upstream.port
            )
        return protocol

    def release(self, conn: UpstreamConnection) -> None:
        """Return a connection whose exchange completed cleanly; anything else is closed."""
        idle = self._idle[conn.upstream]
        if conn.closed or conn.events.pending or len(idle) >= MAX_IDLE_PER_UPSTREAM:
            conn.close()
            return
        conn._idle_handle = self.loop.call_later(IDLE_TIMEOUT, self._expire, conn)
        idle.append(conn)

    def _expire(self, conn: UpstreamConnection) -> None:
        idle = self._idle.get(conn.upstream)
        if idle and conn in idle:
            idle.remove(conn)
        conn.close()

    def close(self) -> None:
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()

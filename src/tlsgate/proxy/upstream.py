"""Connections to the plain-HTTP services behind the edge, kept alive and pooled.

A new TCP connection per request would double the work of every proxied request and exhaust
ephemeral ports under load, so finished connections go back to a per-upstream pool and the next
request takes the most recently used one (warmest, least likely to have been closed by the
upstream's own idle timeout). A pooled connection that the upstream closed while idle is noticed
by ``connection_lost`` and never handed out.

A connection does not decide anything: it parses what the upstream sends (sans-IO
:class:`~tlsgate.http.ResponseParser`) and hands the events to its current *owner*, the
client connection whose exchange it carries, in the same callback. No queue and no task sit in
between, because on the hot path each of them costs more than parsing the response.
"""

from __future__ import annotations

import asyncio
import socket
from collections import defaultdict
from typing import TYPE_CHECKING, Protocol, cast

from tlsgate.compiled import compiled_module
from tlsgate.http import Event, Limits, RemoteProtocolError, ResponseParser
from tlsgate.proxy.settings import UpstreamAddress

__all__ = [
    "PureUpstreamConnection",
    "PureUpstreamPool",
    "UpstreamConnection",
    "UpstreamOwner",
    "UpstreamPool",
]

#: Idle connections kept per upstream. An HTTP/2 client runs up to 128 streams on one
#: connection, each needing an HTTP/1.1 upstream connection of its own while in flight; a pool
#: smaller than the streams in flight would open a new connection for most of them.
MAX_IDLE_PER_UPSTREAM = 512
H2C_ONLY = "this upstream speaks HTTP/2 (h2c://): only HTTP/2 clients reach it"
IDLE_TIMEOUT = 30.0
_RESPONSE_LIMITS = Limits(max_header_bytes=64 * 1024, max_headers=200)


class UpstreamOwner(Protocol):
    """The exchange a connection is carrying: it gets every event as the bytes arrive."""

    def upstream_events(self, conn: UpstreamConnection, events: list[Event]) -> None: ...

    def upstream_failed(self, conn: UpstreamConnection, error: RemoteProtocolError) -> None: ...

    def upstream_closed(self, conn: UpstreamConnection) -> None: ...

    def upstream_flow(self, conn: UpstreamConnection, paused: bool) -> None: ...


class UpstreamConnection(asyncio.Protocol):
    __slots__ = (
        "closed",
        "idle_since",
        "owner",
        "parser",
        "read_paused",
        "reused",
        "transport",
        "tunnel",
        "upstream",
        "write_paused",
    )

    def __init__(self, upstream: UpstreamAddress) -> None:
        self.upstream = upstream
        self.parser = ResponseParser(_RESPONSE_LIMITS)
        self.transport: asyncio.Transport | None = None
        self.owner: UpstreamOwner | None = None
        self.tunnel: asyncio.Transport | None = None  # set after 101: raw bytes go to the client
        self.reused = False
        self.closed = False
        self.write_paused = False
        self.read_paused = False
        self.idle_since = 0.0

    # -- asyncio callbacks -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        if self.tunnel is not None:
            self.tunnel.write(data)
            return
        owner = self.owner
        try:
            events = self.parser.feed(data)
        except RemoteProtocolError as exc:
            if owner is not None:
                owner.upstream_failed(self, exc)
            else:
                self.close()
            return
        if owner is not None:
            owner.upstream_events(self, events)

    def eof_received(self) -> bool | None:
        owner = self.owner
        if self.tunnel is None and owner is not None:
            try:
                events = self.parser.feed_eof()
            except RemoteProtocolError as exc:
                owner.upstream_failed(self, exc)
                return None
            if events:
                owner.upstream_events(self, events)
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.tunnel is not None:
            self.tunnel.close()
        owner = self.owner
        if owner is not None:
            self.owner = None
            owner.upstream_closed(self)

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.owner is not None:
            self.owner.upstream_flow(self, True)

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.owner is not None:
            self.owner.upstream_flow(self, False)

    # -- use -----------------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        if self.transport is not None and data:
            self.transport.write(data)

    def pause_reading(self) -> None:
        if self.transport is not None and not self.closed and not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.closed and self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()

    def close(self) -> None:
        self.owner = None
        if self.transport is not None:
            self.transport.close()


class UpstreamPool:
    """Idle connections per upstream, most recently used last.

    Expiry is one sweep every half ``IDLE_TIMEOUT`` rather than a timer per pooled connection:
    a connection goes in and out of the pool on every request, and a timer each time would cost
    more than the rest of the bookkeeping.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._idle: defaultdict[UpstreamAddress, list[UpstreamConnection]] = defaultdict(list)
        self._sweeper: asyncio.TimerHandle | None = None

    def take(self, upstream: UpstreamAddress) -> UpstreamConnection | None:
        """A pooled connection that is still open, or None (then :meth:`connect`)."""
        idle = self._idle.get(upstream)
        while idle:
            conn = idle.pop()
            if not conn.closed:
                conn.reused = True
                return conn
        return None

    async def connect(self, upstream: UpstreamAddress, timeout: float) -> UpstreamConnection:
        """A new connection; raises OSError or TimeoutError when the upstream is unreachable."""
        if getattr(upstream, "h2c", False):  # (an address without the field is HTTP/1.1)
            # An HTTP/1.1 client's request to a gRPC (h2c) service: the service would answer
            # with an HTTP/2 preface nobody here could read.
            raise ConnectionRefusedError(H2C_ONLY)
        async with asyncio.timeout(timeout):
            _, protocol = await self.loop.create_connection(
                lambda: UpstreamConnection(upstream), upstream.host, upstream.port
            )
        return protocol

    def release(self, conn: UpstreamConnection) -> None:
        """Return a connection whose exchange completed cleanly; anything else is closed."""
        conn.owner = None
        conn.resume_reading()
        idle = self._idle[conn.upstream]
        if (
            conn.closed
            or conn.write_paused
            or not conn.parser.reusable
            or len(idle) >= MAX_IDLE_PER_UPSTREAM
        ):
            conn.close()
            return
        conn.idle_since = self.loop.time()
        idle.append(conn)
        if self._sweeper is None:
            self._sweeper = self.loop.call_later(IDLE_TIMEOUT / 2, self._sweep)

    def _sweep(self) -> None:
        self._sweeper = None
        oldest = self.loop.time() - IDLE_TIMEOUT
        left = False
        for idle in self._idle.values():
            stale = 0
            while stale < len(idle) and (idle[stale].idle_since < oldest or idle[stale].closed):
                stale += 1
            for conn in idle[:stale]:
                conn.close()
            del idle[:stale]
            left = left or bool(idle)
        if left:
            self._sweeper = self.loop.call_later(IDLE_TIMEOUT / 2, self._sweep)

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()


PureUpstreamConnection = UpstreamConnection
PureUpstreamPool = UpstreamPool
if not TYPE_CHECKING and (_fast := compiled_module("tlsgate.proxy._fast")) is not None:
    UpstreamConnection = _fast.UpstreamConnection
    UpstreamPool = _fast.UpstreamPool

"""Upstreams that speak HTTP/2 in clear text (``h2c://``, prior knowledge): gRPC services.

gRPC needs what HTTP/1.1 cannot carry to it: trailers on every response (``grpc-status``) and
bodies streaming both ways at once. So an HTTP/2 client stream to an ``h2c`` site is relayed as
an HTTP/2 stream to the upstream, its trailers intact, over a connection shared by many streams
(one connection per upstream and worker, a second one only when the upstream's
``SETTINGS_MAX_CONCURRENT_STREAMS`` is reached).

The frame work is the ``h2`` package in client mode: these connections carry few, long requests
(RPCs), not the edge's per-request hot path. Flow control is passed through: the upstream's
response DATA is acknowledged only once the client's side has room for it, and the client's
request DATA is acknowledged (by the stream) only once frames for it went to the upstream.
"""

from __future__ import annotations

import asyncio
import socket
from collections import defaultdict, deque
from typing import Protocol, cast

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions

from tlsgate.http.events import Headers
from tlsgate.proxy.settings import UpstreamAddress

__all__ = ["H2cConnection", "H2cOwner", "H2cPool"]

#: Streams per connection when the upstream has not said (h2's default for the remote side is
#: unbounded; grpc-go announces 100 or more).
_DEFAULT_STREAMS = 100
#: The connection window the edge grants an upstream for response bodies.
_CONNECTION_WINDOW = 16 * 1024 * 1024


class H2cOwner(Protocol):
    """The client stream a relayed upstream stream answers to."""

    def h2c_response(self, status: int, headers: Headers, ended: bool) -> None: ...

    def h2c_data(self, data: bytes, flow: int) -> None: ...

    def h2c_trailers(self, headers: Headers) -> None: ...

    def h2c_end(self) -> None: ...

    def h2c_failed(self, reason: str) -> None: ...

    def h2c_sent(self, size: int) -> None:
        """``size`` request body bytes went to the upstream as frames."""


class _Out:
    __slots__ = ("chunks", "end", "trailers")

    def __init__(self) -> None:
        self.chunks: deque[bytes] = deque()
        self.end = False
        self.trailers: Headers | None = None


class H2cConnection(asyncio.Protocol):
    def __init__(self, upstream: UpstreamAddress, pool: H2cPool) -> None:
        self.upstream = upstream
        self.pool = pool
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None)
        )
        self.transport: asyncio.Transport | None = None
        self.owners: dict[int, H2cOwner] = {}
        self.closed = False
        self._out: dict[int, _Out] = {}

    @property
    def has_room(self) -> bool:
        limit = self.conn.remote_settings.max_concurrent_streams or _DEFAULT_STREAMS
        return not self.closed and len(self.owners) < min(limit, _DEFAULT_STREAMS * 10)

    # -- asyncio callbacks ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.conn.initiate_connection()
        self.conn.increment_flow_control_window(_CONNECTION_WINDOW - 65_535)
        self._flush()

    def data_received(self, data: bytes) -> None:
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self._flush()
            self._fail_all(f"bad HTTP/2 from the upstream: {exc}")
            self.close()
            return
        for event in events:
            self._on(event)
        self._pump()
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail_all("upstream closed the connection")
        self.transport = None

    # -- what a stream does ----------------------------------------------------------------------
    def open(self, owner: H2cOwner, fields: Headers, end: bool) -> int:
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(sid, fields, end_stream=end)
        self.owners[sid] = owner
        self._flush()
        return sid

    def send(self, sid: int, data: bytes, end: bool) -> None:
        out = self._out.get(sid)
        if out is None:
            out = self._out[sid] = _Out()
        if data:
            out.chunks.append(data)
        out.end = out.end or end
        self._pump()
        self._flush()

    def send_trailers(self, sid: int, fields: Headers) -> None:
        out = self._out.get(sid)
        if out is None:
            out = self._out[sid] = _Out()
        out.trailers = fields
        out.end = True
        self._pump()
        self._flush()

    def consumed(self, sid: int, size: int) -> None:
        if size <= 0 or self.closed:
            return
        try:
            self.conn.acknowledge_received_data(size, sid)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            return
        self._flush()

    def cancel(self, sid: int, code: int = h2.errors.ErrorCodes.CANCEL) -> None:
        """The client went (or the exchange failed): the upstream stops working on it."""
        self.owners.pop(sid, None)
        self._out.pop(sid, None)
        if self.closed:
            return
        try:
            self.conn.reset_stream(sid, code)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            pass
        self._flush()

    def close(self) -> None:
        self.closed = True
        self.pool.forget(self)
        if self.transport is not None:
            self.transport.close()

    # -- inside --------------------------------------------------------------------------------
    def _on(self, event: h2.events.Event) -> None:
        sid = getattr(event, "stream_id", None)
        owner = self.owners.get(sid) if sid else None
        if isinstance(event, h2.events.ResponseReceived | h2.events.InformationalResponseReceived):
            if owner is None:
                return
            fields = list(event.headers or ())
            status = int(dict(fields).get(b":status", b"0"))
            ended = event.stream_ended is not None if hasattr(event, "stream_ended") else False
            rest = [(n, v) for n, v in fields if n[:1] != b":"]
            if ended:
                self.owners.pop(sid, None)  # type: ignore[arg-type]
            owner.h2c_response(status, rest, ended)
        elif isinstance(event, h2.events.DataReceived):
            length = event.flow_controlled_length or 0
            if owner is None:
                self.consumed(sid or 0, length)
                return
            owner.h2c_data(bytes(event.data or b""), length)
        elif isinstance(event, h2.events.TrailersReceived):
            if owner is not None:
                self.owners.pop(sid, None)  # type: ignore[arg-type]
                owner.h2c_trailers(list(event.headers or ()))
        elif isinstance(event, h2.events.StreamEnded):
            if owner is not None:
                self.owners.pop(sid, None)  # type: ignore[arg-type]
                owner.h2c_end()
        elif isinstance(event, h2.events.StreamReset):
            self._out.pop(sid or 0, None)
            if owner is not None:
                self.owners.pop(sid, None)  # type: ignore[arg-type]
                owner.h2c_failed(f"upstream reset the stream (error {event.error_code})")
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.closed = True
            self.pool.forget(self)
            last = event.last_stream_id or 0
            for s in [s for s in self.owners if s > last]:  # never processed: may go elsewhere
                self._out.pop(s, None)
                self.owners.pop(s).h2c_failed("upstream sent GOAWAY before this stream")

    def _pump(self) -> None:
        conn = self.conn
        for sid in list(self._out):
            out = self._out[sid]
            owner = self.owners.get(sid)
            try:
                while out.chunks:
                    room = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size)
                    if room <= 0:
                        break
                    piece = out.chunks[0]
                    if len(piece) > room:
                        out.chunks[0] = piece[room:]
                        piece = piece[:room]
                    else:
                        out.chunks.popleft()
                    last = out.end and not out.chunks and out.trailers is None
                    conn.send_data(sid, piece, end_stream=last)
                    if owner is not None:
                        owner.h2c_sent(len(piece))
                    if last:
                        del self._out[sid]
                if sid in self._out and not out.chunks and out.end:
                    if out.trailers is not None:
                        conn.send_headers(sid, out.trailers, end_stream=True)
                    else:
                        conn.end_stream(sid)
                    del self._out[sid]
            except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
                self._out.pop(sid, None)

    def _flush(self) -> None:
        data = self.conn.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _fail_all(self, reason: str) -> None:
        self.closed = True
        self.pool.forget(self)
        owners, self.owners = self.owners, {}
        self._out.clear()
        for owner in owners.values():
            owner.h2c_failed(reason)


class H2cPool:
    """A worker's h2c connections, per upstream."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._conns: defaultdict[UpstreamAddress, list[H2cConnection]] = defaultdict(list)

    def take(self, upstream: UpstreamAddress) -> H2cConnection | None:
        for conn in self._conns.get(upstream, ()):
            if conn.has_room:
                return conn
        return None

    async def connect(self, upstream: UpstreamAddress, timeout: float) -> H2cConnection:
        """A new connection (kept for the next streams); OSError or TimeoutError when the
        upstream is unreachable."""
        async with asyncio.timeout(timeout):
            _, protocol = await self.loop.create_connection(
                lambda: H2cConnection(upstream, self), upstream.host, upstream.port
            )
        self._conns[upstream].append(protocol)
        return protocol

    def forget(self, conn: H2cConnection) -> None:
        conns = self._conns.get(conn.upstream)
        if conns is not None and conn in conns:
            conns.remove(conn)

    def close(self) -> None:
        for conns in list(self._conns.values()):
            for conn in list(conns):
                conn.close()
        self._conns.clear()

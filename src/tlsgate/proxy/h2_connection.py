"""One client connection that chose HTTP/2 (ALPN ``h2``): a session and its streams.

The HTTP/1.1 client protocol is made before the handshake; when the handshake picks ``h2`` it
hands its transport to this class (``transport.set_protocol``), with what it learned of the
peer (its address, whether it is a trusted proxy, the SNI's route, the client certificate's
identity): those are per connection and hold for every stream.

This class does not speak HTTP/2 itself: bytes go to the sans-IO session
(:mod:`tlsgate.http.h2_session`, libnghttp2 or its pure twin), its events go to the streams
(:class:`~tlsgate.proxy.h2_stream.H2Stream`, one exchange each), and whatever the session has
to send is written once per callback. Its own concerns are the connection's: the idle timeout
while no stream is open, the transport's back-pressure (all streams' upstreams stop being read
while the client's socket is full), a graceful GOAWAY when the worker drains, and the end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import cast

from tlsgate.http.h2_events import (
    NO_ERROR,
    ConnectionEnded,
    DataReceived,
    H2Event,
    H2Settings,
    RequestReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)
from tlsgate.http.h2_session import H2Session, H2SessionAPI
from tlsgate.mtls.identity import ClientIdentity
from tlsgate.proxy.deadline import Deadline
from tlsgate.proxy.edge import Edge
from tlsgate.proxy.flow import DEADLINE_IDLE
from tlsgate.proxy.h2_stream import H2Stream
from tlsgate.proxy.headers import ClientInfo
from tlsgate.proxy.routing import Route

__all__ = ["SWEEP", "H2Connection", "StreamDeadline", "h2_settings"]

#: Seconds between looks at the streams' deadlines.
SWEEP = 1.0


def h2_settings(edge: Edge) -> H2Settings:
    """The session's settings from the edge's limits: a header block may be as large as an
    HTTP/1.1 head may (its decoded size, which is what the limit protects)."""
    return H2Settings(max_header_list_size=edge.limits.max_header_bytes)


class H2Connection(asyncio.Protocol):
    def __init__(
        self,
        edge: Edge,
        client: ClientInfo,
        trusted: bool,
        sni_route: Route | None,
        identity: ClientIdentity | None,
    ) -> None:
        self.edge = edge
        self.loop = asyncio.get_running_loop()
        self.client = client
        self.trusted = trusted
        self.sni_route = sni_route
        self.identity = identity
        self.session: H2SessionAPI = H2Session(h2_settings(edge))
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, H2Stream] = {}
        self.tunnel = None  # (lifecycle.drain asks every connection)
        self.closed = False
        self.write_paused = False
        self._going_away = False
        self._closing = False
        self._flush_soon = False
        self._timed: set[StreamDeadline] = set()  # the streams' deadlines, swept each second
        self._sweeper: asyncio.TimerHandle | None = None
        self._deadline = Deadline(self.loop, self._on_idle)

    @property
    def busy(self) -> bool:
        """Streams are in flight (a drain waits for them)."""
        return bool(self.streams)

    # -- asyncio callbacks ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.edge.connections.add(self)
        if self.edge.metrics is not None:
            self.edge.metrics.connected()
        self.session.initiate()
        self._flush_now()
        self._deadline.set(self.edge.timeouts.header, DEADLINE_IDLE)

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        events = self.session.receive(data, self.loop.time())
        self._dispatch(events)
        if self.edge.draining:
            self.drain_notice()
        if self.session.ended and not self.streams:
            self.close()  # (its GOAWAY is written first)
        else:
            self.flush()

    def eof_received(self) -> bool | None:
        return None  # the client is done: close (its streams are abandoned in connection_lost)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.edge.connections.discard(self)
        self._deadline.close()
        self._timed.clear()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for stream in list(self.streams.values()):
            stream.client_reset()
        self.streams.clear()
        self.transport = None

    def pause_writing(self) -> None:
        self.write_paused = True
        for stream in self.streams.values():
            stream.connection_paused(True)

    def resume_writing(self) -> None:
        self.write_paused = False
        for stream in list(self.streams.values()):
            stream.connection_paused(False)

    # -- the session's events ------------------------------------------------------------------
    def _dispatch(self, events: list[H2Event]) -> None:
        streams = self.streams
        count = len(events)
        for i, event in enumerate(events):
            if isinstance(event, RequestReceived):
                sid = event.stream_id
                following = events[i + 1] if i + 1 < count else None
                ended = isinstance(following, StreamEnded) and following.stream_id == sid
                stream = streams[sid] = H2Stream(self, sid)
                self._deadline.clear()
                stream.begin(event.headers, ended)
            elif isinstance(event, DataReceived):
                known = streams.get(event.stream_id)
                if known is None:  # (a stream already answered: its body is dropped)
                    self.session.consumed(event.stream_id, event.flow_length)
                else:
                    known.data(event.data, event.flow_length)
            elif isinstance(event, StreamEnded):
                if (known := streams.get(event.stream_id)) is not None:
                    known.end()
            elif isinstance(event, TrailersReceived):
                if (known := streams.get(event.stream_id)) is not None:
                    known.trailers(event.headers)
            elif isinstance(event, WindowUpdated):
                if event.stream_id == 0:
                    for known in list(streams.values()):
                        known.window_opened()
                elif (known := streams.get(event.stream_id)) is not None:
                    known.window_opened()
            elif isinstance(event, StreamReset):
                if (known := streams.pop(event.stream_id, None)) is not None:
                    known.client_reset()
                    self._idle_if_empty()
            elif isinstance(event, ConnectionEnded):
                if not (event.remote and event.error_code == NO_ERROR):
                    # A connection error (ours or the client's): every stream is abandoned.
                    for known in list(streams.values()):
                        known.client_reset()
                    streams.clear()

    # -- what the streams call ---------------------------------------------------------------
    def flush(self) -> None:
        """Write what the session has to send, once per turn of the event loop: the responses
        of the streams that upstream reads completed in one turn leave as one TLS write (one
        record, one system call) instead of one each."""
        if not self._flush_soon and not self.closed:
            self._flush_soon = True
            self.loop.call_soon(self._flush_now)

    def _flush_now(self) -> None:
        self._flush_soon = False
        data = self.session.data_to_send()
        transport = self.transport
        if data and transport is not None and not self.closed:
            transport.write(data)

    def deadline(self, stream: H2Stream) -> StreamDeadline:
        return StreamDeadline(self, stream._on_deadline)

    def stream_done(self, stream: H2Stream) -> None:
        if self.streams.get(stream.stream_id) is stream:
            del self.streams[stream.stream_id]
        self._idle_if_empty()

    def drain_notice(self) -> None:
        """The worker is stopping: GOAWAY once, so the client opens no new stream here; the
        streams in flight finish (lifecycle.drain waits for them, then closes)."""
        if not self._going_away:
            self._going_away = True
            self.session.goaway(NO_ERROR)
            self._flush_now()

    def close(self) -> None:
        """End the connection now (a drain past its deadline, or nothing left to serve)."""
        if self.closed or self._closing:
            return
        self._closing = True
        for stream in list(self.streams.values()):
            x = stream._x
            if x is not None:
                stream._abort(x, 503, "the server is shutting down")
        self.session.goaway(NO_ERROR)
        self._flush_now()
        if self.transport is not None:
            self.transport.close()

    # -- inside --------------------------------------------------------------------------------
    def _idle_if_empty(self) -> None:
        if self.streams or self.closed or self._closing:
            return
        if self.session.ended or self.edge.draining:
            self.close()
            return
        self._deadline.set(self.edge.timeouts.idle, DEADLINE_IDLE)

    def _sweep(self) -> None:
        self._sweeper = None
        if self.closed:
            return
        now = self.loop.time()
        for deadline in [d for d in self._timed if d.at <= now]:
            deadline.fire()
        if self._timed and not self.closed:
            self._sweeper = self.loop.call_later(SWEEP, self._sweep)

    def _on_idle(self, kind: int) -> None:
        if not self.streams and not self.closed:
            self.close()


def _never(kind: int) -> None:
    """A closed deadline's callback."""


class StreamDeadline:
    """A stream's deadline (proxy/deadline.py's interface), without a loop timer of its own:
    the connection sweeps its streams' deadlines once a second. A timer per stream cost a
    ``call_at`` and a cancel per request; a second's precision is plenty for timeouts of
    seconds to minutes."""

    __slots__ = ("_conn", "_on_expiry", "at", "kind")

    def __init__(self, conn: H2Connection, on_expiry: Callable[[int], None]) -> None:
        self._conn = conn
        self._on_expiry = on_expiry
        self.at = 0.0
        self.kind = 0

    def set(self, seconds: float, kind: int) -> None:
        conn = self._conn
        self.at = conn.loop.time() + seconds
        self.kind = kind
        conn._timed.add(self)
        if conn._sweeper is None and not conn.closed:
            conn._sweeper = conn.loop.call_later(SWEEP, conn._sweep)

    def clear(self) -> None:
        self.kind = 0
        self._conn._timed.discard(self)

    cancel = clear

    def close(self) -> None:
        """For good: it forgets its stream, whose bound method it held (a reference cycle
        would keep the stream, its connection and the session's queued bytes alive until the
        garbage collector's next full pass)."""
        self.clear()
        self._on_expiry = _never

    def fire(self) -> None:
        kind, self.kind = self.kind, 0
        self._conn._timed.discard(self)
        if kind:
            self._on_expiry(kind)

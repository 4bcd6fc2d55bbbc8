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

__all__ = ["H2Connection", "h2_settings"]


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
        self.flush()
        self._deadline.set(self.edge.timeouts.header, DEADLINE_IDLE)

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        events = self.session.receive(data, self.loop.time())
        self._dispatch(events)
        if self.edge.draining:
            self.drain_notice()
        self.flush()
        if self.session.ended and not self.streams:
            self.close()

    def eof_received(self) -> bool | None:
        return None  # the client is done: close (its streams are abandoned in connection_lost)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.edge.connections.discard(self)
        self._deadline.close()
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
        """Write what the session has to send (one write per callback)."""
        data = self.session.data_to_send()
        transport = self.transport
        if data and transport is not None and not self.closed:
            transport.write(data)

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
            self.flush()

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
        self.flush()
        if self.transport is not None:
            self.transport.close()

    # -- inside --------------------------------------------------------------------------------
    def _idle_if_empty(self) -> None:
        if self.streams or self.closed or self._closing:
            return
        if self.session.ended or self.edge.draining:
            self.flush()
            self.close()
            return
        self._deadline.set(self.edge.timeouts.idle, DEADLINE_IDLE)

    def _on_idle(self, kind: int) -> None:
        if not self.streams and not self.closed:
            self.close()

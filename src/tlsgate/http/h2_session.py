"""An HTTP/2 server session, sans-IO: client bytes in, :mod:`~tlsgate.http.h2_events` out.

One interface (:class:`H2SessionAPI`), two twins: ``_h2.pyx`` drives libnghttp2 and is what the
edge runs; :class:`PureH2Session` drives the pure-Python ``h2`` package and stays the reference
and the fallback (``TLSGATE_PURE=1``, or the extension not built). ``H2Session`` is the one
:mod:`tlsgate.compiled` picks. The session owns HTTP/2's rules: framing, HPACK, flow control,
stream states, RFC 9113 section 8's checks of a request's fields. The edge owns what a request
means. What the twins decide alike: the flood budgets (:mod:`~tlsgate.http.h2_floods`), a
graceful GOAWAY that lets streams in flight finish, and which requests reach the edge.

Outgoing data is queued per stream and leaves as the client's windows allow: ``send_data``
never fails for flow control, and :meth:`buffered` is what the edge reads to stop reading an
upstream whose client is slow.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Protocol

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import h2.stream
from hyperframe.frame import GoAwayFrame

from tlsgate.compiled import compiled_module
from tlsgate.http.events import Headers
from tlsgate.http.h2_events import (
    ENHANCE_YOUR_CALM,
    NO_ERROR,
    REFUSED_STREAM,
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
from tlsgate.http.h2_floods import FloodGuard

__all__ = ["H2Session", "H2SessionAPI", "PureH2Session"]


class H2SessionAPI(Protocol):
    """What both twins offer. Every call on a stream that is gone is a no-op: the edge may
    answer a stream the client has just reset."""

    def __init__(self, settings: H2Settings | None = None) -> None: ...

    def initiate(self) -> None:
        """Queue the server's connection preface (its SETTINGS)."""

    def receive(self, data: bytes, now: float) -> list[H2Event]:
        """The events ``data`` makes; a connection error ends the list with ConnectionEnded
        (its GOAWAY queued)."""

    def respond(self, stream_id: int, status: int, headers: Headers, end_stream: bool) -> None:
        """A response head (or a 1xx when ``status`` < 200); names lower-case, no
        connection-specific fields."""

    def send_data(self, stream_id: int, data: bytes, end_stream: bool) -> None: ...

    def send_trailers(self, stream_id: int, headers: Headers) -> None:
        """Trailers after the queued data; they end the stream."""

    def reset(self, stream_id: int, error_code: int) -> None:
        """RST_STREAM. With NO_ERROR after a complete response (the client is still sending a
        body nobody reads, RFC 9113 8.1), it follows the response's queued bytes."""

    def consumed(self, stream_id: int, size: int) -> None:
        """``size`` bytes of DataReceived.flow_length were delivered: re-open the windows."""

    def buffered(self, stream_id: int) -> int:
        """Response bytes queued on the stream, not yet sent for lack of window."""

    def goaway(self, error_code: int = NO_ERROR) -> None:
        """GOAWAY with the last stream seen: no new streams, those in flight finish (with
        NO_ERROR); any other code ends the connection."""

    def data_to_send(self) -> bytes: ...

    @property
    def open_streams(self) -> int:
        """Streams not yet closed both ways."""

    @property
    def ended(self) -> bool:
        """A connection error or a GOAWAY either way: accept no new streams."""


class _Outgoing:
    """A stream's response bytes waiting for window, and how it ends."""

    __slots__ = ("chunks", "end", "size", "stop", "trailers")

    def __init__(self) -> None:
        self.chunks: deque[bytes] = deque()
        self.size = 0
        self.end = False
        self.trailers: Headers | None = None
        self.stop = False  # RST_STREAM(NO_ERROR) once the response is sent (RFC 9113 8.1)


def _idle_kind(event: object) -> str:
    """The frame type of an event that carries no request, or ""."""
    if isinstance(event, h2.events.PingReceived):
        return "PING"
    if isinstance(event, h2.events.RemoteSettingsChanged):
        return "SETTINGS"
    if isinstance(event, h2.events.PriorityUpdated):
        return "PRIORITY"
    if isinstance(event, h2.events.UnknownFrameReceived):
        return "unknown"
    return ""


class PureH2Session:
    """The reference twin, on the ``h2`` package (python-hyper)."""

    def __init__(self, settings: H2Settings | None = None) -> None:
        self.settings = settings = settings or H2Settings()
        config = h2.config.H2Configuration(
            client_side=False,
            header_encoding=None,
            validate_inbound_headers=True,
            normalize_inbound_headers=False,
            validate_outbound_headers=True,
            normalize_outbound_headers=False,
        )
        conn = self._conn = h2.connection.H2Connection(config)
        conn.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: settings.max_concurrent_streams,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: settings.initial_window_size,
                h2.settings.SettingCodes.MAX_FRAME_SIZE: settings.max_frame_size,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: settings.max_header_list_size,
            },
        )
        conn.max_inbound_frame_size = settings.max_frame_size
        conn.decoder.max_header_list_size = settings.max_header_list_size
        self._floods = FloodGuard(settings)
        self._out: dict[int, _Outgoing] = {}
        self._extra = bytearray()  # frames h2 must not know it sent (a graceful GOAWAY)
        self._goaway_last: int | None = None  # the last stream a graceful GOAWAY admitted
        self._ended = False
        self._open: set[int] = set()

    # -- the interface ---------------------------------------------------------------------
    def initiate(self) -> None:
        conn = self._conn
        conn.initiate_connection()
        extra = self.settings.connection_window - 65_535
        if extra > 0:
            conn.increment_flow_control_window(extra)

    @property
    def open_streams(self) -> int:
        return len(self._open)

    @property
    def ended(self) -> bool:
        return self._ended or self._goaway_last is not None

    def receive(self, data: bytes, now: float) -> list[H2Event]:
        if self._ended:
            return []
        out: list[H2Event] = []
        try:
            events = self._conn.receive_data(data)
        except h2.exceptions.ProtocolError as exc:  # h2 queued its GOAWAY
            self._ended = True
            code = int(getattr(exc, "error_code", h2.errors.ErrorCodes.PROTOCOL_ERROR))
            out.append(ConnectionEnded(code, self._conn.highest_inbound_stream_id, False, str(exc)))
            return out
        for event in events:
            reason = self._translate(event, now, out)
            if reason:
                self._conn.close_connection(
                    ENHANCE_YOUR_CALM, last_stream_id=self._conn.highest_inbound_stream_id
                )
                self._ended = True
                out.append(
                    ConnectionEnded(
                        ENHANCE_YOUR_CALM, self._conn.highest_inbound_stream_id, False, reason
                    )
                )
                break
        self._pump()
        return out

    def respond(self, stream_id: int, status: int, headers: Headers, end_stream: bool) -> None:
        if stream_id not in self._open or self._ended:
            return
        block = [(b":status", str(status).encode()), *headers]
        try:
            self._conn.send_headers(stream_id, block, end_stream=end_stream)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            return
        if end_stream:
            self._finished(stream_id)

    def send_data(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        if stream_id not in self._open or self._ended:
            return
        out = self._out.get(stream_id)
        if out is None:
            out = self._out[stream_id] = _Outgoing()
        if data:
            out.chunks.append(data)
            out.size += len(data)
        out.end = out.end or end_stream
        self._pump()

    def send_trailers(self, stream_id: int, headers: Headers) -> None:
        if stream_id not in self._open or self._ended:
            return
        out = self._out.get(stream_id)
        if out is None:
            out = self._out[stream_id] = _Outgoing()
        out.trailers = headers
        out.end = True
        self._pump()

    def reset(self, stream_id: int, error_code: int) -> None:
        if stream_id not in self._open or self._ended:
            return
        out = self._out.get(stream_id)
        if error_code == NO_ERROR and out is not None and out.end:
            out.stop = True  # after the complete response: once it is all sent
            return
        self._out.pop(stream_id, None)
        self._open.discard(stream_id)
        try:
            self._conn.reset_stream(stream_id, error_code)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            pass

    def consumed(self, stream_id: int, size: int) -> None:
        if size <= 0 or self._ended:
            return
        try:
            self._conn.acknowledge_received_data(size, stream_id)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            pass

    def buffered(self, stream_id: int) -> int:
        out = self._out.get(stream_id)
        return out.size if out is not None else 0

    def goaway(self, error_code: int = NO_ERROR) -> None:
        if self._ended:
            return
        last = self._conn.highest_inbound_stream_id
        if error_code != NO_ERROR:
            self._conn.close_connection(error_code, last_stream_id=last)
            self._ended = True
            return
        if self._goaway_last is None:
            # h2 would close the whole connection on its own GOAWAY (and refuse the frames of
            # streams still in flight), so this one is written beside it.
            self._goaway_last = last
            frame = GoAwayFrame(0)
            frame.last_stream_id = last
            frame.error_code = NO_ERROR
            self._extra += frame.serialize()

    def data_to_send(self) -> bytes:
        data = self._conn.data_to_send()
        if self._extra:
            data = bytes(self._extra) + data
            self._extra.clear()
        return data

    # -- inside ------------------------------------------------------------------------------
    def _translate(self, event: h2.events.Event, now: float, out: list[H2Event]) -> str:
        """Append ``event``'s translation to ``out``; a flood's reason ends the connection."""
        floods = self._floods
        if isinstance(event, h2.events.RequestReceived):
            sid = event.stream_id
            assert sid is not None
            if self._goaway_last is not None and sid > self._goaway_last:
                # After a graceful GOAWAY a new stream is refused, not served.
                self._conn.reset_stream(sid, REFUSED_STREAM)
                return ""
            self._open.add(sid)
            out.append(RequestReceived(sid, list(event.headers or ())))
        elif isinstance(event, h2.events.DataReceived):
            sid = event.stream_id
            assert sid is not None
            length = event.flow_controlled_length or 0
            if sid not in self._open:
                self.consumed(sid, length)
                return ""
            if not event.data and event.stream_ended is None:
                reason = floods.idle_frame(now, "empty DATA")
                if reason:
                    return reason
            if event.data or length:
                out.append(DataReceived(sid, bytes(event.data or b""), length))
        elif isinstance(event, h2.events.TrailersReceived):
            sid = event.stream_id
            assert sid is not None
            if sid in self._open:
                out.append(TrailersReceived(sid, list(event.headers or ())))
        elif isinstance(event, h2.events.StreamEnded):
            sid = event.stream_id
            assert sid is not None
            if sid in self._open:
                out.append(StreamEnded(sid))
        elif isinstance(event, h2.events.StreamReset):
            sid = event.stream_id
            assert sid is not None
            known = sid in self._open
            self._open.discard(sid)
            self._out.pop(sid, None)
            if event.remote_reset:
                reason = floods.reset(now)
                if reason:
                    return reason
            if known:
                out.append(StreamReset(sid, int(event.error_code or 0), bool(event.remote_reset)))
        elif isinstance(event, h2.events.WindowUpdated):
            out.append(WindowUpdated(event.stream_id or 0))
        elif isinstance(event, h2.events.ConnectionTerminated):
            self._ended = True
            out.append(
                ConnectionEnded(
                    int(event.error_code or 0), event.last_stream_id or 0, True, "client GOAWAY"
                )
            )
        else:
            kind = _idle_kind(event)
            if kind:
                return floods.idle_frame(now, kind)
        return ""

    def _finished(self, stream_id: int) -> None:
        """Our half ended; the stream is gone once the client's half is too (h2 knows)."""
        self._out.pop(stream_id, None)
        stream = self._conn.streams.get(stream_id)
        if stream is None or stream.closed:
            self._open.discard(stream_id)

    def _pump(self) -> None:
        """Move queued response bytes into frames as far as the windows allow."""
        if not self._out or self._ended:
            self._sweep()
            return
        conn = self._conn
        frame = conn.max_outbound_frame_size
        for sid in list(self._out):
            out = self._out[sid]
            try:
                while out.chunks:
                    window = min(conn.local_flow_control_window(sid), frame)
                    if window <= 0:
                        break
                    chunk = out.chunks[0]
                    if len(chunk) > window:
                        out.chunks[0] = chunk[window:]
                        chunk = chunk[:window]
                    else:
                        out.chunks.popleft()
                    out.size -= len(chunk)
                    last = out.end and not out.chunks and out.trailers is None
                    conn.send_data(sid, chunk, end_stream=last)
                if not out.chunks and out.end:
                    if out.trailers is not None:
                        conn.send_headers(sid, out.trailers, end_stream=True)
                    elif out.size == 0 and not self._sent_end(sid):
                        conn.end_stream(sid)
                    self._finished(sid)
                    if out.stop and sid in self._open:
                        self._open.discard(sid)
                        conn.reset_stream(sid, NO_ERROR)
            except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
                self._out.pop(sid, None)
                self._open.discard(sid)
        self._sweep()

    def _sent_end(self, stream_id: int) -> bool:
        stream = self._conn.streams.get(stream_id)
        return stream is None or stream.state_machine.state in (
            h2.stream.StreamState.HALF_CLOSED_LOCAL,
            h2.stream.StreamState.CLOSED,
        )

    def _sweep(self) -> None:
        """Forget streams h2 has closed both ways (the client's END_STREAM after ours)."""
        if not self._open:
            return
        streams = self._conn.streams
        for sid in [s for s in self._open if s not in self._out]:
            stream = streams.get(sid)
            if stream is None or stream.closed:
                self._open.discard(sid)


H2Session: type[H2SessionAPI] = PureH2Session
if not TYPE_CHECKING and (_fast := compiled_module("tlsgate.http._h2")) is not None:
    H2Session = _fast.H2Session

"""HTTP/2 at the edge, sans-IO: the events a server session emits, its settings, error codes.

A session (:mod:`tlsgate.http.h2_session`) turns the client's bytes into these events and the
edge's answers into bytes; it never touches a socket. Two sessions implement it with one face:
``_h2.pyx`` drives libnghttp2 (the C library behind curl's and Apache's HTTP/2) and
``h2_session.PureH2Session`` the pure-Python ``h2`` package, the reference and the fallback.
Both emit exactly these classes, so the proxy and the differential test see one vocabulary.

Per stream the order is: :class:`RequestReceived`, any :class:`DataReceived`, at most one
:class:`TrailersReceived`, then :class:`StreamEnded` (the client's half is done). A
:class:`StreamReset` can come at any point and ends the stream both ways.
"""

from __future__ import annotations

from dataclasses import dataclass

from tlsgate.http.events import Headers

__all__ = [
    "CANCEL",
    "ENHANCE_YOUR_CALM",
    "FLOW_CONTROL_ERROR",
    "FRAME_SIZE_ERROR",
    "INTERNAL_ERROR",
    "NO_ERROR",
    "PROTOCOL_ERROR",
    "REFUSED_STREAM",
    "STREAM_CLOSED",
    "ConnectionEnded",
    "DataReceived",
    "H2Event",
    "H2Settings",
    "RequestReceived",
    "StreamEnded",
    "StreamReset",
    "TrailersReceived",
    "WindowUpdated",
]

# RFC 9113 section 7 error codes (the ones the edge sends or reads).
NO_ERROR = 0x0
PROTOCOL_ERROR = 0x1
INTERNAL_ERROR = 0x2
FLOW_CONTROL_ERROR = 0x3
STREAM_CLOSED = 0x5
FRAME_SIZE_ERROR = 0x6
REFUSED_STREAM = 0x7
CANCEL = 0x8
ENHANCE_YOUR_CALM = 0xB


@dataclass(frozen=True, slots=True)
class H2Settings:
    """What the edge announces and enforces per connection.

    The windows bound memory: a client can have at most ``initial_window_size`` unacknowledged
    bytes per stream and ``connection_window`` in all, and the edge acknowledges them only as the
    upstream takes them, so a slow upstream slows the client instead of filling the worker.
    The flood budgets are token buckets (a burst, then so many per second): client resets of
    streams (rapid reset, CVE-2023-44487) and frames that cost work but carry no request
    (PING, SETTINGS, PRIORITY, empty DATA, WINDOW_UPDATE on idle streams). Past a budget the
    connection ends with GOAWAY ``ENHANCE_YOUR_CALM``.
    """

    max_concurrent_streams: int = 128
    initial_window_size: int = 65_535
    connection_window: int = 1024 * 1024
    max_frame_size: int = 16_384
    #: Decoded header bytes per request (names + values + 32 per field, RFC 9113 6.5.2).
    max_header_list_size: int = 64 * 1024
    #: HEADERS + CONTINUATION frames of one header block: the CONTINUATION flood bound.
    max_header_frames: int = 32
    reset_burst: int = 200
    resets_per_second: float = 100.0
    idle_frame_burst: int = 1000
    idle_frames_per_second: float = 200.0


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """A request's header block, pseudo-headers first, names lower-case, as the client sent
    them (already checked against RFC 9113 section 8 by the session)."""

    stream_id: int
    headers: Headers


@dataclass(frozen=True, slots=True)
class DataReceived:
    """Request body bytes. ``flow_length`` (the data and any padding) must be handed back with
    :meth:`consumed` once the bytes are delivered: that is what re-opens the client's window."""

    stream_id: int
    data: bytes
    flow_length: int


@dataclass(frozen=True, slots=True)
class TrailersReceived:
    stream_id: int
    headers: Headers


@dataclass(frozen=True, slots=True)
class StreamEnded:
    """The client's half of the stream is complete (END_STREAM)."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class StreamReset:
    """The stream is gone: reset by the client (``remote``) or refused by the session for a
    stream error (a malformed request, a flow-control violation); nothing more is sent on it."""

    stream_id: int
    error_code: int
    remote: bool


@dataclass(frozen=True, slots=True)
class WindowUpdated:
    """The client opened a window (``stream_id`` 0: the connection's): queued data may move."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class ConnectionEnded:
    """The connection is over: the client sent GOAWAY (``remote``), or the session found a
    connection error and queued its GOAWAY (flush :meth:`data_to_send`, then close)."""

    error_code: int
    last_stream_id: int
    remote: bool
    reason: str


H2Event = (
    RequestReceived
    | DataReceived
    | TrailersReceived
    | StreamEnded
    | StreamReset
    | WindowUpdated
    | ConnectionEnded
)

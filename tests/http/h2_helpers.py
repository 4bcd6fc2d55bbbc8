"""Both HTTP/2 session twins, and the clients the h2 tests drive them with, in memory.

``twin_class`` names a twin: ``"pure"`` (:class:`~tlsgate.http.h2_session.PureH2Session`) or
``"compiled"`` (``tlsgate.http._h2.H2Session``, skipped when not built, except under
``CI=true``, where that fails: CI must test what it ships). :class:`Pair` joins a session to a
real client state machine (the ``h2`` package, client side), pumping bytes both ways as
aioquic's tests do, no sockets; :class:`Raw` writes frames the ``h2`` client would refuse to
(malformed requests, floods) with ``hpack`` and ``hyperframe``; :func:`frames` reads the
session's output back, to see what went on the wire.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

import h2.config
import h2.connection
import h2.events
import hpack
import pytest
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    ExtensionFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    PriorityFrame,
    RstStreamFrame,
    SettingsFrame,
)

from tlsgate.http.events import Headers
from tlsgate.http.h2_events import H2Event, H2Settings
from tlsgate.http.h2_session import H2SessionAPI, PureH2Session

TWINS = ("compiled", "pure")
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
REQUEST: Headers = [
    (b":method", b"GET"),
    (b":scheme", b"https"),
    (b":path", b"/"),
    (b":authority", b"a.example"),
]


Factory = Callable[[H2Settings | None], H2SessionAPI]

if TYPE_CHECKING:  # the compiled class's stub has the interface's face
    from tlsgate.http import _h2

    _COMPILED: Factory = _h2.H2Session


def twin_class(name: str) -> Factory:
    """The session class of the named twin."""
    if name == "pure":
        return PureH2Session
    try:
        module = importlib.import_module("tlsgate.http._h2")
    except ImportError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the compiled HTTP/2 session is not built: {exc}")
        pytest.skip(f"the compiled HTTP/2 session is not built: {exc}")
    cls: Factory = module.H2Session
    return cls


def new_session(name: str, settings: H2Settings | None = None) -> H2SessionAPI:
    session: H2SessionAPI = twin_class(name)(settings)
    session.initiate()
    return session


def frames(data: bytes) -> list[Frame]:
    """The frames in a session's output (which always ends on a frame boundary)."""
    out: list[Frame] = []
    view = memoryview(data)
    while view:
        frame, length = Frame.parse_frame_header(view[:9])
        frame.parse_body(view[9 : 9 + length])
        out.append(frame)
        view = view[9 + length :]
    assert not view, "a partial frame"
    return out


def refusals(data: bytes) -> list[tuple[str, int, int]]:
    """RST_STREAM as ("RST", stream, code) and GOAWAY as ("GOAWAY", last stream, code)."""
    out: list[tuple[str, int, int]] = []
    for frame in frames(data):
        if isinstance(frame, RstStreamFrame):
            out.append(("RST", frame.stream_id, frame.error_code))
        elif isinstance(frame, GoAwayFrame):
            out.append(("GOAWAY", frame.last_stream_id, frame.error_code))
    return out


class Pair:
    """A server session and an ``h2`` client, bytes pumped between them in memory."""

    def __init__(self, twin: str, settings: H2Settings | None = None) -> None:
        self.server = new_session(twin, settings)
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self.client = h2.connection.H2Connection(config)
        self.client.initiate_connection()
        self.now = 0.0
        self.events: list[H2Event] = []  # everything the server emitted
        self.client_events: list[h2.events.Event] = []
        self.wire = b""  # everything the server sent

    def to_server(self) -> list[H2Event]:
        events = self.server.receive(self.client.data_to_send(), self.now)
        self.events += events
        return events

    def to_client(self) -> list[h2.events.Event]:
        data = self.server.data_to_send()
        self.wire += data
        events = self.client.receive_data(data)
        self.client_events += events
        return events

    def pump(self) -> None:
        """Until neither side has anything more to say."""
        for _ in range(10_000):
            server = self.to_server()
            client = self.to_client()
            if not server and not client and not self.client.data_to_send(0):
                return
        raise AssertionError("the sessions never go quiet")

    def request(self, stream_id: int, fields: Headers = REQUEST, end: bool = True) -> None:
        self.client.send_headers(stream_id, fields, end_stream=end)


class Raw:
    """A client that writes frames itself; one HPACK encoder for the connection."""

    def __init__(self) -> None:
        self.encoder = hpack.Encoder()

    def preface(self) -> bytes:
        return PREFACE + SettingsFrame(0).serialize()

    def block(self, fields: Headers) -> bytes:
        return self.encoder.encode(fields)

    def headers(
        self,
        stream_id: int,
        fields: Headers | bytes,
        end_stream: bool = True,
        end_headers: bool = True,
        priority: bool = False,
    ) -> bytes:
        frame = HeadersFrame(stream_id)
        frame.data = fields if isinstance(fields, bytes) else self.block(fields)
        for flag, on in (
            ("END_STREAM", end_stream),
            ("END_HEADERS", end_headers),
            ("PRIORITY", priority),
        ):
            if on:
                frame.flags.add(flag)
        return frame.serialize()

    @staticmethod
    def continuation(stream_id: int, block: bytes, end_headers: bool = False) -> bytes:
        frame = ContinuationFrame(stream_id)
        frame.data = block
        if end_headers:
            frame.flags.add("END_HEADERS")
        return frame.serialize()

    @staticmethod
    def data(stream_id: int, data: bytes, end_stream: bool = False) -> bytes:
        frame = DataFrame(stream_id)
        frame.data = data
        if end_stream:
            frame.flags.add("END_STREAM")
        return frame.serialize()

    @staticmethod
    def idle(kind: str, n: int) -> bytes:
        """``n`` frames that carry no request."""
        one: Frame
        if kind == "PING":
            one = PingFrame(0)
        elif kind == "SETTINGS":
            one = SettingsFrame(0)
        elif kind == "PRIORITY":
            one = PriorityFrame(1)
            one.depends_on = 0
            one.stream_weight = 15
        else:
            one = ExtensionFrame(0x20, 0, body=b"x")
            one.body_len = 1  # (its serialize() reads this, which only parsing sets)
        return one.serialize() * n

"""A small HTTP/2 test client on the ``h2`` package: real TLS to ``serve`` (verified against the
test CA, ALPN ``h2``), frames visible to the test. Blocking, one socket, bounded waits."""

from __future__ import annotations

import socket
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import h2.exceptions
from hyperframe.frame import Frame

Fields = list[tuple[bytes, bytes]]


@dataclass
class Reply:
    headers: Fields = field(default_factory=list)
    informational: list[Fields] = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)
    trailers: Fields = field(default_factory=list)
    ended: bool = False
    reset: int | None = None  # the server's RST_STREAM code

    @property
    def status(self) -> int:
        return int(dict(self.headers)[b":status"])


class H2Client:
    def __init__(self, port: int, root: Path, server_hostname: str = "localhost") -> None:
        ctx = ssl.create_default_context(cafile=str(root))
        ctx.set_alpn_protocols(["h2"])
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock = ctx.wrap_socket(raw, server_hostname=server_hostname)
        assert self.sock.selected_alpn_protocol() == "h2"
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None)
        )
        self.conn.initiate_connection()
        self.replies: dict[int, Reply] = {}
        self.goaway: h2.events.ConnectionTerminated | None = None
        self.closed = False
        self.flush()

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def send_raw(self, *frames: Frame | bytes) -> None:
        for frame in frames:
            self.sock.sendall(frame if isinstance(frame, bytes) else frame.serialize())

    def request(
        self,
        path: str,
        *,
        method: str = "GET",
        authority: str = "localhost",
        headers: Fields | None = None,
        body: bytes | None = None,
        trailers: Fields | None = None,
    ) -> int:
        sid = self.conn.get_next_available_stream_id()
        block = [
            (b":method", method.encode()),
            (b":scheme", b"https"),
            (b":authority", authority.encode()),
            (b":path", path.encode()),
            *(headers or []),
        ]
        ends = body is None and trailers is None
        self.conn.send_headers(sid, block, end_stream=ends)
        self.replies[sid] = Reply()
        self.flush()
        if body is not None:
            self._send_body(sid, body, end=trailers is None)
        if trailers is not None:
            self.conn.send_headers(sid, trailers, end_stream=True)
            self.flush()
        return sid

    def _send_body(self, sid: int, body: bytes, *, end: bool) -> None:
        pos = 0
        deadline = time.monotonic() + 30
        while pos < len(body) or (end and pos == len(body) == 0):
            window = min(
                self.conn.local_flow_control_window(sid),
                self.conn.max_outbound_frame_size,
                len(body) - pos,
            )
            if window <= 0 and len(body) > pos:
                assert time.monotonic() < deadline, "the server never opened its window"
                self.pump(0.5)
                if self.replies[sid].ended or self.replies[sid].reset is not None:
                    return  # answered (or refused) before the body went
                continue
            last = end and pos + window >= len(body)
            self.conn.send_data(sid, body[pos : pos + window], end_stream=last)
            pos += window
            self.flush()
            if last:
                return

    def reset(self, sid: int, code: int = 8) -> None:
        self.conn.reset_stream(sid, code)
        self.flush()

    def pump(self, timeout: float = 5.0) -> bool:
        """Read once (up to ``timeout``); False when the server closed the connection."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(1 << 20)
        except TimeoutError:
            return True
        except (ConnectionResetError, ssl.SSLError):
            self.closed = True
            return False
        if not data:
            self.closed = True
            return False
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            self.closed = True
            return False
        for event in events:
            self._on(event)
        try:
            self.flush()
        except OSError:
            self.closed = True
            return False
        return True

    def _on(self, event: h2.events.Event) -> None:
        sid = getattr(event, "stream_id", None)
        reply = self.replies.get(sid) if sid else None
        if isinstance(event, h2.events.InformationalResponseReceived) and reply is not None:
            reply.informational.append(list(event.headers or []))
        elif isinstance(event, h2.events.ResponseReceived) and reply is not None:
            reply.headers = list(event.headers or [])
        elif isinstance(event, h2.events.DataReceived) and reply is not None:
            reply.body += event.data or b""
            assert sid is not None
            self.conn.acknowledge_received_data(event.flow_controlled_length or 0, sid)
        elif isinstance(event, h2.events.TrailersReceived) and reply is not None:
            reply.trailers = list(event.headers or [])
        elif isinstance(event, h2.events.StreamEnded) and reply is not None:
            reply.ended = True
        elif isinstance(event, h2.events.StreamReset) and reply is not None:
            reply.reset = int(event.error_code or 0)
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.goaway = event

    def wait(self, *sids: int, timeout: float = 15.0) -> list[Reply]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self.replies[s].ended or self.replies[s].reset is not None for s in sids):
                break
            if not self.pump(0.5):
                break
        return [self.replies[s] for s in sids]

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

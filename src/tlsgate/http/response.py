"""The response direction: one response per request sent on an upstream connection."""

from __future__ import annotations

from httptools import HttpResponseParser

from tlsgate.http.events import EndOfMessage, Event, Limits, LocalProtocolError, Response
from tlsgate.http.fields import content_length, ends_chunked, keep_alive
from tlsgate.http.framer import (
    _CHUNKED,
    _CHUNKED_KIND,
    _CLOSED,
    _EOF,
    _HEAD,
    _IDLE,
    _LENGTH,
    _LENGTH_KIND,
    _NONE,
    _UNTIL_CLOSE,
    _UNTIL_CLOSE_KIND,
    _UPGRADED,
    _Framer,
)

__all__ = ["ResponseParser"]

_DEFAULT_LIMITS = Limits()


class _ResponseHooks:
    __slots__ = ("on_body", "on_header", "on_headers_complete", "on_message_complete", "on_status")

    def __init__(self, parser: ResponseParser) -> None:
        self.on_status = parser._on_start_line
        self.on_header = parser._on_header
        self.on_headers_complete = parser._on_headers_complete
        self.on_body = parser._on_body
        self.on_message_complete = parser._on_message_complete


class ResponseParser(_Framer[HttpResponseParser]):
    """Parses responses from one upstream connection, one per request sent."""

    __slots__ = ("_head_request", "_skip_complete")

    _response = True
    _what = "response"

    def __init__(self, limits: Limits = _DEFAULT_LIMITS) -> None:
        super().__init__(limits)
        self._head_request = False

    def _new_parser(self) -> HttpResponseParser:
        self._skip_complete = False  # llhttp's own end of a message we already ended at its head
        return HttpResponseParser(_ResponseHooks(self))

    def _check_line(self, data: bytes, start: int, stop: int) -> None:
        # "HTTP/1.1 ": llhttp also accepts RTSP/ and ICE/ status lines and reports them as 1.0.
        if self._line or stop - start < 8:
            line = self._line + data[start : min(stop, start + 8)]
            if len(line) < 8:
                self._line = line
                return
            self._proto = line[:5] == b"HTTP/"
            self._version = line[5:8]
        else:
            self._proto = data.startswith(b"HTTP/", start)
            self._version = data[start + 5 : start + 8]

    @property
    def reusable(self) -> bool:
        """A response ended cleanly and the connection may carry another request."""
        return self._state == _IDLE and self._error is None

    def expect(self, method: bytes) -> None:
        """Tell the parser which request the next response answers (HEAD has no body)."""
        if self._error is not None:
            raise self._error
        if self._state != _IDLE:
            raise LocalProtocolError(
                "expect() while a response is in progress"
                if self._state < _IDLE
                else "expect() on a connection that has ended"
            )
        self._head_request = method == b"HEAD"
        self._state = _HEAD

    def feed_eof(self) -> list[Event]:
        """Upstream closed: ends an UNTIL_CLOSE body, else an error if mid-message."""
        if self._error is not None:
            raise self._error
        state = self._state
        if state == _UPGRADED:
            raise LocalProtocolError("fed after an upgrade")
        if state == _UNTIL_CLOSE:
            self._reset()
            self._state = _EOF
            return [EndOfMessage()]
        if state >= _IDLE or (state == _HEAD and not self._started):
            # Nothing of a response yet: the caller tells a stale pooled connection from a
            # broken exchange by whether it saw any event.
            self._state = _EOF
            return []
        self._error = self._refuse("connection closed in the middle of a response", 502)
        raise self._error

    def _on_headers_complete(self) -> None:
        self._head_done = True
        hp = self._hp
        version = self._version
        if version != b"1.1" and version != b"1.0":
            self._fail("unsupported http version")
        if not self._proto:
            self._fail("not an http response")
        headers = self._headers
        if len(headers) > self._max_headers:
            self._fail("too many header fields", 431)
        self._headers = []  # trailers, if any, go here
        status = hp.get_status_code()
        if status < 100:
            self._fail("invalid status code")
        length_value: bytes | None = None
        coding: bytes | None = None
        connection: bytes | None = None
        upgrade = False
        for name, value in self._framing:
            if name == b"content-length":
                if length_value is not None:
                    self._fail("duplicate content-length")
                length_value = value
            elif name == b"transfer-encoding":
                coding = value if coding is None else coding + b"," + value
            elif name == b"connection":
                connection = value if connection is None else connection + b"," + value
            elif name == b"upgrade":
                upgrade = True
        if length_value is not None and coding is not None:
            self._fail("content-length together with transfer-encoding")
        length: int | None = None
        if length_value is not None:
            length = content_length(length_value)
            if length is None:
                self._fail("invalid content-length")
        if status < 200 or status == 204 or status == 304 or self._head_request:
            body = _NONE
            length = None
        elif coding is not None:
            if version == b"1.0":
                self._fail("transfer-encoding in an http/1.0 response")
            if not ends_chunked(coding):
                self._fail("transfer-encoding does not end with chunked")
            body = _CHUNKED_KIND
        elif length is not None:
            if self._max_body is not None and length > self._max_body:
                self._fail("response body too large")
            body = _LENGTH_KIND
        else:
            body = _UNTIL_CLOSE_KIND
        if status == 101 and (version != b"1.1" or not upgrade):
            self._fail("101 switching protocols without upgrade")
        keep = keep_alive(version, connection) and body is not _UNTIL_CLOSE_KIND
        events = self._events
        events.append(Response(status, self._start, version, headers, body, length, keep))
        if body is _NONE:
            # Ended here, whatever llhttp thinks (it cannot know a HEAD response has no body,
            # nor that a 1xx other than 100/102/103 has none): a fresh llhttp reads the next one.
            events.append(EndOfMessage())
            self._skip_complete = True
            self._dirty = True
            if status == 101:
                self._state = _UPGRADED
            elif status >= 200:
                self._state = _IDLE if keep else _CLOSED
            self._reset()
            return
        self._keep = keep
        if body is _CHUNKED_KIND:
            self._state = _CHUNKED
            self._tail = b""
            self._overhead = 0
        elif body is _UNTIL_CLOSE_KIND:
            self._state = _UNTIL_CLOSE
        elif length:
            self._remaining = length
            self._state = _LENGTH

    def _on_message_complete(self) -> None:
        if self._skip_complete:
            self._skip_complete = False
            return
        if self._in_head and self._state != _HEAD:
            self._fail("ambiguous response framing")
        self._events.append(self._end_message())
        self._state = _IDLE if self._keep else _CLOSED
        self._reset()

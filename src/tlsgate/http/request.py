"""The request direction: a stream of requests (pipelining allowed) from one client."""

from __future__ import annotations

from httptools import HttpRequestParser

from tlsgate.http.events import (
    EndOfMessage,
    Event,
    Limits,
    LocalProtocolError,
    RemoteProtocolError,
    Request,
)
from tlsgate.http.fields import content_length, ends_chunked, keep_alive
from tlsgate.http.framer import (
    _CHUNKED,
    _CHUNKED_KIND,
    _CLOSED,
    _EOF,
    _HEAD,
    _LENGTH,
    _LENGTH_KIND,
    _NONE,
    _UPGRADED,
    _Framer,
)
from tlsgate.http.target import split_target

__all__ = ["RequestParser"]

_DEFAULT_LIMITS = Limits()


class _RequestHooks:
    """What httptools calls back; kept apart so the parser's own API has no ``on_*`` methods."""

    __slots__ = ("on_body", "on_header", "on_headers_complete", "on_message_complete", "on_url")

    def __init__(self, parser: RequestParser) -> None:
        self.on_url = parser._on_start_line
        self.on_header = parser._on_header
        self.on_headers_complete = parser._on_headers_complete
        self.on_body = parser._on_body
        self.on_message_complete = parser._on_message_complete


class RequestParser(_Framer[HttpRequestParser]):
    """Parses a stream of requests (pipelining allowed) from one client connection."""

    __slots__ = ()

    def __init__(self, limits: Limits = _DEFAULT_LIMITS) -> None:
        super().__init__(limits)

    def _new_parser(self) -> HttpRequestParser:
        return HttpRequestParser(_RequestHooks(self))

    def _check_line(self, data: bytes, start: int, stop: int) -> None:
        # The request line ends " HTTP/1.1\r\n" (llhttp has checked its shape by the time the
        # head completes). Read here because llhttp also accepts RTSP/ and ICE/ there, reporting
        # them as 1.0, and because httptools formats the version as a str on every call. The
        # space matters: "GET /HTTP/1.1" is an HTTP/0.9 line to llhttp, not an HTTP/1.1 one.
        i = data.find(b"\n", start, stop)
        if i < 0:
            self._line = (self._line + data[max(start, stop - 11) : stop])[-11:]
            return
        if self._line:  # the line began in an earlier feed
            line = (self._line + data[max(start, i - 10) : i + 1])[-11:]
            self._proto = line[-11:-5] == b" HTTP/"
            self._version = line[-5:-2]
        else:
            self._proto = data.endswith(b" HTTP/", start, i - 4)
            self._version = data[i - 4 : i - 1]

    @property
    def head_in_progress(self) -> bool:
        """A request head has begun (more than blank lines) and has not ended yet."""
        return self._started and not self._head_done

    def partial_request(self) -> tuple[bytes, bytes] | None:
        """``(method, target)`` of a request whose head was refused or is still being read, once
        its request line has been read whole (None before that, or when the line itself was
        refused): what the access log can say about a request that never became a
        :class:`Request`. The target is as received (an absolute form is not split yet).
        """
        if not self._started:
            return None
        if (
            self._head_done
            or self._headers
            or (self._proto and (self._error is None or self._line_read))
        ):
            return self._hp.get_method(), self._start
        return None

    def feed_eof(self) -> list[Event]:
        """The client closed; an error if it was in the middle of a message."""
        if self._error is not None:
            raise self._error
        state = self._state
        if state == _UPGRADED:
            raise LocalProtocolError("fed after an upgrade")
        if state == _CLOSED or state == _EOF or (state == _HEAD and not self._started):
            self._state = _EOF
            return []
        self._line_read = bool(self._proto)
        self._error = self._refuse("connection closed in the middle of a request", 400)
        raise self._error

    def _on_headers_complete(self) -> None:
        self._head_done = True
        hp = self._hp
        version = self._version
        if version != b"1.1" and version != b"1.0":
            self._fail("unsupported http version", 505)
        if not self._proto:
            self._fail("not an http request")
        headers = self._headers
        if len(headers) > self._max_headers:
            self._fail("too many header fields", 431)
        self._headers = []  # trailers, if any, go here
        method = hp.get_method()
        if method == b"CONNECT":
            self._fail("connect is not supported", 501)
        hosts = 0
        length_value: bytes | None = None
        coding: bytes | None = None
        connection: bytes | None = None
        upgrade: bytes | None = None
        expect = False
        for name, value in self._framing:
            if name == b"host":
                hosts += 1
            elif name == b"content-length":
                if length_value is not None:
                    self._fail("duplicate content-length")
                length_value = value
            elif name == b"transfer-encoding":
                coding = value if coding is None else coding + b"," + value
            elif name == b"connection":
                connection = value if connection is None else connection + b"," + value
            elif name == b"upgrade":
                upgrade = value if upgrade is None else upgrade + b", " + value
            elif name == b"expect":
                expect = expect or value.lower() == b"100-continue"
        if hosts != 1:
            if hosts:
                self._fail("several host headers")
            if version == b"1.1":
                self._fail("missing host header")
        target = self._start
        if target[:1] != b"/":  # (origin-form, the hot path, needs no more than llhttp's check)
            try:
                target, authority = split_target(method, target)
            except RemoteProtocolError as exc:
                self._fail(str(exc), exc.status)
            if authority is not None:
                # RFC 9112 3.2.2: the target's authority, not Host, names the resource; it
                # replaces Host so that everything downstream sees one authority.
                headers = [(b"host", authority), *(h for h in headers if h[0] != b"host")]
        length: int | None = None
        if coding is not None:
            if version == b"1.0":
                self._fail("transfer-encoding in an http/1.0 request")
            if length_value is not None:
                self._fail("content-length together with transfer-encoding")
            if not ends_chunked(coding):
                self._fail("transfer-encoding does not end with chunked")
            body = _CHUNKED_KIND
        elif length_value is not None:
            length = content_length(length_value)
            if length is None:
                self._fail("invalid content-length")
            if self._max_body is not None and length > self._max_body:
                self._fail("request body too large", 413)
            body = _LENGTH_KIND
        else:
            body = _NONE
        if connection is None:
            keep = self._keep = version == b"1.1"
        else:
            keep = self._keep = keep_alive(version, connection)
        switch: bytes | None = None
        if upgrade is not None and hp.should_upgrade():  # llhttp's test needs an Upgrade header
            # llhttp will stop right after this head whatever we do, skipping any body.
            if length or body is _CHUNKED_KIND:
                self._fail("upgrade request with a body")
            if method == b"GET" and version == b"1.1" and upgrade:
                switch = upgrade.lower()
                self._state = _UPGRADED
        if length:
            self._remaining = length
            self._state = _LENGTH
        elif body is _CHUNKED_KIND:
            self._state = _CHUNKED
            self._tail = b""
            self._overhead = 0
        self._events.append(
            Request(
                method,
                target,
                version,
                headers,
                body,
                length,
                keep,
                switch,
                expect and version == b"1.1",
            )
        )

    def _on_message_complete(self) -> None:
        state = self._state
        if self._in_head and state != _HEAD and state != _UPGRADED:
            # llhttp ended a message we decided has a body: refuse rather than pick a side
            self._fail("ambiguous request framing")
        trailers = self._headers
        if trailers:
            self._check_trailers(trailers)
        self._events.append(EndOfMessage(trailers))
        if state != _UPGRADED:
            self._state = _HEAD if self._keep else _CLOSED
        self._started = self._head_done = False  # _reset(), inlined on the hot path
        self._head_len = self._body_seen = 0
        self._headers = []
        self._framing = []
        self._start = b""
        self._proto = None

"""Sans-IO HTTP/1.1 framing over httptools (llhttp, in C): bytes in, events out.

The shape is h11's (events, explicit states, a Remote error carrying the status to answer with);
the parsing is llhttp's, because a proxy parses every byte twice (request and response) and h11
in pure Python would cost more than the rest of the data plane together. Nothing here touches a
socket or asyncio: ``protocol.py`` moves the bytes.

Events, in order, for one message: a head (:class:`Request` or :class:`Response`), zero or more
:class:`Data`, then :class:`EndOfMessage` (carrying trailers, if any). After an upgrade
(``Connection: upgrade`` request / ``101`` response) the parser emits :class:`Upgraded` with the
bytes that followed the head and must not be fed again: the connection is a tunnel from then on.

Anything ambiguous is refused rather than guessed (request smuggling lives in the guesses):
Content-Length together with Transfer-Encoding, duplicate or invalid Content-Length, obs-fold,
bad chunk sizes, a Transfer-Encoding whose last coding is not ``chunked``, bare LF line endings,
invalid header names, several Host headers, a missing Host in HTTP/1.1.

How llhttp is driven, and why
-----------------------------
llhttp decides framing well, but httptools gives it no way to stop at a message boundary and
never says how many bytes a message used. We need exact boundaries for the header size limit
(llhttp has none), for a ``HEAD`` response (llhttp cannot be told to skip its body), for the
bytes after an upgrade, and to keep a response from swallowing bytes that are not its own. So we
never hand llhttp more than one message at a time:

* a head ends at the first ``CRLF CRLF`` after its first byte (bare LF is refused by llhttp, and
  blank lines before a message are consumed here), so we search for it (``bytes.find``, in C) and
  feed exactly up to it; bytes are counted against ``max_header_bytes`` on the way;
* a Content-Length body is fed exactly ``Content-Length`` bytes;
* a chunked body always ends with ``CRLF CRLF`` (the last chunk's line, or the last trailer,
  followed by the empty line), so chunked bytes are fed in pieces that end at each ``CRLF CRLF``
  and, when llhttp reports the message complete, the piece was exactly the end of it.

After each piece we check that llhttp and we agree (headers complete at the head's end, no body
where we decided none); a disagreement is refused, never patched over.

What llhttp (as httptools drives it) does that we correct:

* it accepts ``RTSP/1.0`` and ``ICE/1.0`` start lines and reports them as HTTP/1.0, and it takes
  ``HTTP/0.9`` and ``HTTP/2.0`` heads: the protocol and version are read from the start line here
  (which also spares httptools' str formatting of the version on every message);
* it skips any mix of CR and LF between messages (``\n\nGET`` parses): only CRLF pairs are;
* it keeps trailing whitespace in header values, and accepts status codes below 100;
* it pauses after every head it reads as an upgrade, whatever the method, having skipped the body
  (httptools makes ``on_headers_complete`` say "no body" for upgrades), and a ``101`` without
  ``Connection: upgrade`` surfaces as a plain error, not as ``HttpParserUpgrade``;
* it gives a 1xx other than 100/102/103 a body by Content-Length, and refuses the final
  response after an interim one that said ``Connection: close``: every response that ends at its
  head gets a fresh llhttp for the next one;
* it ignores ``Transfer-Encoding`` on HTTP/1.0 messages, and reads a response whose last coding
  is not chunked until EOF: both are refused here;
* it waits for the whole HTTP/2 preface (``PRI * HTTP/2.0`` then ``SM``) before complaining;
* httptools has no end-of-input call, turns our callbacks' exceptions into its own (so refusals
  are stashed and re-raised; a bug in a callback is re-raised as itself), and gathers a header
  value across feeds by concatenation (bounded here by the head and trailer limits).

Choices worth knowing
---------------------
* ``CONNECT`` is answered with **501**: tlsgate is a reverse proxy and tunnels to no authority,
  which is 501's meaning ("not supported for any resource"); 405 would claim the method works on
  some other resource and obliges an ``Allow`` header.
* An unknown method spelled like one (``FOO``) is 501 as well; garbage is 400.
* A request llhttp reads as an upgrade (``Connection: upgrade`` + ``Upgrade``) but which is not a
  ``GET`` on HTTP/1.1 is served as an ordinary request without the upgrade; one carrying a body
  is refused (llhttp would treat the body as tunnel bytes, an origin might not).
* After a request or response that ends its connection (``Connection: close``, HTTP/1.0 without
  keep-alive), later bytes are not parsed: RFC 9112 9.6 says a server must not process them.
* A response parser refuses bytes that arrive while no response is expected (before
  :meth:`ResponseParser.expect`, or after a complete response): a second response to one request
  is how response-queue poisoning starts.
* Every response error carries status 502 (the answer owed to the client), whatever its cause.
* An error anywhere in a :meth:`feed` raises, and that call's earlier events are not delivered;
  the peer sent something we refuse, and the connection is answered and closed.
* The trailer section gets the head's limits, checked when it ends. While it streams, more than
  twice ``max_header_bytes`` of consecutive non-body bytes are refused, to bound what httptools
  gathers; only padding no client sends (tens of KiB of chunk extensions or blank space) can
  meet that guard before the exact check, and then only when it arrives in several reads.
* :meth:`ResponseParser.feed_eof` before any byte of the response returns no event rather than
  raising: a pooled connection the upstream closed is told apart from a broken exchange by that.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from http import HTTPStatus
from typing import TYPE_CHECKING, ClassVar, Generic, NoReturn, TypeVar

from httptools import (
    HttpParserCallbackError,
    HttpParserError,
    HttpParserInvalidMethodError,
    HttpParserInvalidStatusError,
    HttpParserInvalidURLError,
    HttpParserUpgrade,
    HttpRequestParser,
    HttpResponseParser,
)

from tlsgate.errors import TlsgateError

if TYPE_CHECKING:
    from httptools.parser.parser import HttpParser

__all__ = [
    "BodyKind",
    "Data",
    "EndOfMessage",
    "Event",
    "Headers",
    "Limits",
    "LocalProtocolError",
    "RemoteProtocolError",
    "Request",
    "RequestParser",
    "Response",
    "ResponseParser",
    "Upgraded",
    "chunk",
    "last_chunk",
    "serialize_request_head",
    "serialize_response_head",
]

#: Header names lower-cased, values as sent; order and repetition preserved.
Headers = list[tuple[bytes, bytes]]


class RemoteProtocolError(TlsgateError):
    """The peer sent something we refuse; ``status`` is what to answer a client with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class LocalProtocolError(TlsgateError):
    """We used the parser wrongly (a bug on our side), e.g. fed it after an upgrade."""


class BodyKind(Enum):
    NONE = "none"
    LENGTH = "length"
    CHUNKED = "chunked"
    UNTIL_CLOSE = "until-close"  # responses only: no length, body ends when the peer closes


@dataclass(frozen=True, slots=True)
class Limits:
    max_header_bytes: int = 32 * 1024  # request line + headers; over it -> 431
    max_headers: int = 100  # -> 431
    max_target_bytes: int = 8 * 1024  # -> 414
    max_body_bytes: int | None = None  # -> 413 (checked against Content-Length and as data flows)


@dataclass(slots=True)
class Request:
    method: bytes
    target: bytes
    version: bytes  # b"1.1" or b"1.0"
    headers: Headers
    body: BodyKind
    content_length: int | None
    keep_alive: bool
    upgrade: bytes | None = None  # e.g. b"websocket" when the client asks to switch protocols
    expect_continue: bool = False


@dataclass(slots=True)
class Response:
    status: int
    reason: bytes
    version: bytes
    headers: Headers
    body: BodyKind
    content_length: int | None
    keep_alive: bool


@dataclass(slots=True)
class Data:
    data: bytes


@dataclass(slots=True)
class EndOfMessage:
    trailers: Headers = field(default_factory=list)


@dataclass(slots=True)
class Upgraded:
    leftover: bytes  # bytes received after the head: the first bytes of the tunnel


Event = Request | Response | Data | EndOfMessage | Upgraded

# -- parser internals --------------------------------------------------------------------------

_END = b"\r\n\r\n"  # the end of a head, and of every chunked body
_BLANK = re.compile(rb"[\r\n]+")  # only on the rare path: blank lines before a message
# Headers looked at once the head is complete; the rest are passed through untouched.
_FRAMING = frozenset(
    {b"content-length", b"transfer-encoding", b"host", b"connection", b"upgrade", b"expect"}
)
_NONE = BodyKind.NONE
_LENGTH_KIND = BodyKind.LENGTH
_CHUNKED_KIND = BodyKind.CHUNKED
_UNTIL_CLOSE_KIND = BodyKind.UNTIL_CLOSE

# Parser states (ints: compared on every piece).
_HEAD = 0  # before or inside a head
_LENGTH = 1  # inside a Content-Length body
_CHUNKED = 2  # inside a chunked body (or its trailers)
_UNTIL_CLOSE = 3  # inside a response body that ends at EOF
_IDLE = 4  # response parser: no response expected until expect()
_CLOSED = 5  # the last message ended the connection; later bytes are not parsed
_UPGRADED = 6  # the connection is a tunnel now; feeding is a bug
_EOF = 7  # feed_eof() was called; feeding is a bug

# llhttp's error reasons (fixed strings, never input) -> our message; first match wins.
_REASONS: tuple[tuple[str, str], ...] = (
    ("duplicate content-length", "duplicate content-length"),
    ("can't be present with", "content-length together with transfer-encoding"),
    ("content-length", "invalid content-length"),
    ("transfer-encoding", "invalid transfer-encoding"),
    ("chunk", "invalid chunked encoding"),
    ("whitespace after header value", "obs-fold line folding is not allowed"),
    ("space after start line", "whitespace before the first header"),
    ("after version", "malformed start line"),
    ("expected cr after", "bare lf line ending"),
    ("expected lf after", "bare cr line ending"),
    ("header value char", "invalid character in a header value"),
    ("header token", "invalid header name"),
    ("header field char", "invalid header name"),
    ("expected http/", "malformed start line"),
    ("expected space", "malformed start line"),
    ("expected dot", "malformed start line"),
    ("version", "malformed start line"),
)


class _Stop(Exception):
    """Raised inside an llhttp callback to stop it; the refusal itself is in ``_error``."""


class _RequestHooks:
    """What httptools calls back; kept apart so the parser's own API has no ``on_*`` methods."""

    __slots__ = ("on_body", "on_header", "on_headers_complete", "on_message_complete", "on_url")

    def __init__(self, parser: RequestParser) -> None:
        self.on_url = parser._on_start_line
        self.on_header = parser._on_header
        self.on_headers_complete = parser._on_headers_complete
        self.on_body = parser._on_body
        self.on_message_complete = parser._on_message_complete


class _ResponseHooks:
    __slots__ = ("on_body", "on_header", "on_headers_complete", "on_message_complete", "on_status")

    def __init__(self, parser: ResponseParser) -> None:
        self.on_status = parser._on_start_line
        self.on_header = parser._on_header
        self.on_headers_complete = parser._on_headers_complete
        self.on_body = parser._on_body
        self.on_message_complete = parser._on_message_complete


_P = TypeVar("_P", bound="HttpParser")


def _view(data: bytes, start: int, end: int) -> bytes | memoryview:
    """``data[start:end]`` without copying large bodies (httptools reads memoryviews in place)."""
    if start == 0 and end == len(data):
        return data
    if end - start < 4096:
        return data[start:end]
    return memoryview(data)[start:end]


def _tokens(value: bytes) -> list[bytes]:
    return [token.strip(b" \t").lower() for token in value.split(b",")]


def _keep_alive(version: bytes, connection: bytes | None) -> bool:
    """RFC 9112 9.3: HTTP/1.1 persists unless ``close``; HTTP/1.0 only with ``keep-alive``."""
    if connection is None:
        return version == b"1.1"
    # (bytes.find, not "in": bytes.__contains__ first tries the operand as an int, and raises)
    tokens = [connection.lower()] if connection.find(b",") < 0 else _tokens(connection)
    if b"close" in tokens:
        return False
    return version == b"1.1" or b"keep-alive" in tokens


def _ends_chunked(value: bytes) -> bool:
    """RFC 9112 6.1: chunked must be the final coding, applied once; empty list items are junk."""
    codings = _tokens(value)
    return codings[-1] == b"chunked" and b"chunked" not in codings[:-1] and all(codings)


def _content_length(value: bytes) -> int | None:
    if not value.isdigit():  # ASCII digits only: no sign, no spaces, no lists
        return None
    value = value.lstrip(b"0") or b"0"
    if len(value) > 19:  # llhttp already refuses >= 2**64; int() refuses > 4300 digits
        return None
    return int(value)


class _Framer(Generic[_P]):
    """The piece-by-piece driving of llhttp shared by both directions (see the module doc)."""

    __slots__ = (
        "_body_seen",
        "_cr",
        "_dirty",
        "_error",
        "_events",
        "_first",
        "_framing",
        "_head_done",
        "_head_len",
        "_headers",
        "_hp",
        "_in_head",
        "_keep",
        "_line",
        "_max_body",
        "_max_head",
        "_max_headers",
        "_max_target",
        "_overhead",
        "_proto",
        "_remaining",
        "_start",
        "_started",
        "_state",
        "_tail",
        "_version",
    )

    _response: ClassVar[bool] = False
    _what: ClassVar[str] = "request"

    _hp: _P
    _state: int
    _error: RemoteProtocolError | None
    _events: list[Event]
    _headers: Headers  # the head's fields; after the head, where trailers go
    _framing: Headers
    _proto: bool | None
    _version: bytes

    def __init__(self, limits: Limits) -> None:
        self._max_head = limits.max_header_bytes
        self._max_headers = limits.max_headers
        self._max_target = limits.max_target_bytes
        self._max_body = limits.max_body_bytes
        self._state = _IDLE if self._response else _HEAD
        self._hp = self._new_parser()
        self._dirty = False  # llhttp stopped somewhere we do not trust: replace it first
        self._error = None
        self._events = []
        self._cr = False  # a blank line's CR arrived, its LF not yet
        self._in_head = False  # llhttp is reading a head piece (checked when it ends a message)
        self._remaining = 0
        self._keep = True
        self._first = 0
        self._tail = b""  # last <= 3 bytes fed in this state, for a CRLFCRLF split across feeds
        self._line = b""  # the start line's known part while it spans feeds
        self._version = b""
        self._overhead = 0
        self._reset()

    # -- to be provided per direction ----------------------------------------------------------
    def _new_parser(self) -> _P:
        raise NotImplementedError

    def _check_line(self, data: bytes, start: int, stop: int) -> None:
        """Read the protocol name and version off the start line (see the module doc)."""
        raise NotImplementedError

    # -- shared --------------------------------------------------------------------------------
    def _reset(self) -> None:
        """Forget the message just finished; the head and event objects keep their lists."""
        self._started = False  # a non-blank byte of this message has been fed
        self._head_done = False
        self._head_len = 0
        self._headers = []
        self._framing = []
        self._start = b""  # the request target, or the response reason
        self._body_seen = 0
        self._proto = None  # the start line said HTTP/ (None: not seen its end yet)

    def _refuse(self, message: str, status: int) -> RemoteProtocolError:
        return RemoteProtocolError(message, 502 if self._response else status)

    def _fail(self, message: str, status: int = 400) -> NoReturn:
        """Refuse from inside an llhttp callback: httptools swallows exceptions raised there."""
        self._error = self._refuse(message, status)
        raise _Stop

    def _translate(self, exc: HttpParserError) -> RemoteProtocolError:
        reason = str(exc).lower()
        if isinstance(exc, HttpParserInvalidMethodError) or "invalid method" in reason:
            if 65 <= self._first <= 90:  # an upper-case letter: a method we do not know
                return self._refuse("unsupported method", 501)
            return self._refuse("malformed request line", 400)
        if isinstance(exc, HttpParserInvalidURLError):
            return self._refuse("invalid request target", 400)
        if isinstance(exc, HttpParserInvalidStatusError):
            return self._refuse("invalid status line", 400)
        if "invalid http version" in reason or "pri/upgrade" in reason:
            return self._refuse("unsupported http version", 505)
        for needle, message in _REASONS:
            if needle in reason:
                return self._refuse(message, 400)
        return self._refuse(f"malformed {self._what}", 400)

    def _exec(self, piece: bytes | memoryview) -> None:
        try:
            self._hp.feed_data(piece)
        except HttpParserUpgrade:
            # llhttp pauses after any head it reads as an upgrade, whatever we decided about it;
            # that instance is finished either way.
            self._dirty = True
        except HttpParserError as exc:
            if self._error is not None:
                raise self._error from None
            cause = exc.__context__
            if isinstance(exc, HttpParserCallbackError) and cause is not None:
                raise cause from None  # a bug in one of our callbacks: let it show, not a 400
            if self._state == _UPGRADED:
                # a 101 without Connection: upgrade makes llhttp pause with a plain error
                self._dirty = True
                return
            raise self._translate(exc) from None

    def _skip_blank(self, data: bytes, pos: int, n: int) -> int:
        """Consume CRLFs before a message (RFC 9112 2.2); a lone CR or LF there is refused."""
        match = _BLANK.match(data, pos)
        end = match.end() if match is not None else pos
        blank = data[pos:end]
        if self._cr:
            blank = b"\r" + blank
        left = blank.replace(b"\r\n", b"")
        if not left:
            self._cr = False
        elif left == b"\r" and end == n and blank.endswith(b"\r"):
            self._cr = True
        else:
            raise self._refuse("bare cr or lf line ending", 400)
        self._head_len += end - pos
        if self._head_len > self._max_head:
            raise self._refuse("header section too large", 431)
        return end

    def _feed_head(self, data: bytes, pos: int, n: int) -> int:
        if not self._started:
            if data[pos] in b"\r\n" or self._cr:
                pos = self._skip_blank(data, pos, n)
                if pos == n:
                    return n
            if self._dirty:
                self._hp = self._new_parser()
                self._dirty = False
            self._started = True
            self._first = data[pos]
            self._tail = b""
            self._line = b""
        room = self._max_head - self._head_len
        tail = self._tail
        end = -1
        if tail:
            i = (tail + data[pos : pos + 3]).find(_END)
            if i >= 0:
                end = pos + i + 4 - len(tail)
        if end < 0:
            i = data.find(_END, pos, pos + room)
            if i >= 0:
                end = i + 4
        if end < 0 or end - pos > room:
            if n - pos > room:
                # The head cannot end within the limit; llhttp still sees the allowed part
                # first, so that a malformed start line is reported as such rather than as 431.
                stop = pos + max(room, 0)
                if self._proto is None:
                    self._check_line(data, pos, stop)
                self._exec(_view(data, pos, stop))
                raise self._refuse("header section too large", 431)
            if self._proto is None:
                self._check_line(data, pos, n)
            self._exec(_view(data, pos, n))
            self._head_len += n - pos
            self._tail = data[n - 3 : n] if n - pos >= 3 else (tail + data[pos:n])[-3:]
            return n
        if self._proto is None:
            self._check_line(data, pos, end)
        self._in_head = True
        self._exec(data if pos == 0 and end == n else _view(data, pos, end))
        self._in_head = False
        if self._started:  # the message did not end at its head
            if not self._head_done:
                # llhttp did not finish the head at its CRLFCRLF. The one case known is the
                # HTTP/2 preface (PRI * HTTP/2.0), which llhttp reports once "SM" arrives too.
                if self._first == 80 and self._version == b"2.0":  # "P"
                    raise self._refuse("unsupported http version", 505)
                raise self._refuse(f"malformed {self._what} head", 400)
            if self._state == _HEAD:
                # llhttp wants a body we decided the message does not have
                raise self._refuse(f"ambiguous {self._what} framing", 400)
        elif self._state == _UPGRADED:
            self._events.append(Upgraded(data[end:]))
            return n
        return end

    def _feed_chunked(self, data: bytes, pos: int, n: int) -> int:
        tail = self._tail
        end = -1
        if tail:
            i = (tail + data[pos : pos + 3]).find(_END)
            if i >= 0:
                end = pos + i + 4 - len(tail)
        if end < 0:
            i = data.find(_END, pos)
            end = n if i < 0 else i + 4
        seen = self._body_seen
        self._exec(_view(data, pos, end))
        if self._state == _CHUNKED:
            size = end - pos
            self._tail = data[end - 3 : end] if size >= 3 else (tail + data[pos:end])[-3:]
            # httptools gathers a trailer in memory until it is complete, so what is not body is
            # bounded as it streams. The trailer limit proper is checked when the message ends
            # (split-independent); this guard is twice as loose, so that only padding no real
            # client sends (tens of KiB of chunk extensions or whitespace) meets it first.
            if self._body_seen == seen:
                self._overhead += size
                if self._overhead > 2 * self._max_head:
                    raise self._refuse("chunked framing or trailers too large", 431)
            else:
                self._overhead = 0
        return end

    def _feed_length(self, data: bytes, pos: int, n: int) -> int:
        take = n - pos
        if take > self._remaining:
            take = self._remaining
        self._remaining -= take
        self._exec(_view(data, pos, pos + take))
        if not self._remaining and self._state == _LENGTH:
            # llhttp did not end the message where its Content-Length says (and we would loop)
            raise self._refuse(f"ambiguous {self._what} framing", 400)
        return pos + take

    def _feed_idle(self, data: bytes, pos: int, n: int) -> int:
        if data[pos] in b"\r\n" or self._cr:
            pos = self._skip_blank(data, pos, n)
            if pos == n:
                return n
        raise self._refuse("data from upstream while no response was expected", 502)

    def feed(self, data: bytes) -> list[Event]:
        """Parse ``data``; raises :class:`RemoteProtocolError` for anything refused."""
        if self._error is not None:
            raise self._error
        if self._state >= _UPGRADED:
            raise LocalProtocolError(
                "fed after an upgrade" if self._state == _UPGRADED else "fed after end of file"
            )
        events: list[Event] = []
        self._events = events
        n = len(data)
        pos = 0
        try:
            while pos < n:
                state = self._state
                if state == _HEAD:
                    pos = self._feed_head(data, pos, n)
                elif state == _LENGTH:
                    pos = self._feed_length(data, pos, n)
                elif state == _CHUNKED:
                    pos = self._feed_chunked(data, pos, n)
                elif state == _UNTIL_CLOSE:
                    self._exec(_view(data, pos, n))
                    pos = n
                elif state == _IDLE:
                    pos = self._feed_idle(data, pos, n)
                else:  # _CLOSED, or _UPGRADED with its leftover already taken
                    break
        except RemoteProtocolError as exc:
            self._error = exc
            raise
        return events

    # -- llhttp callbacks shared by both directions --------------------------------------------
    def _on_start_line(self, piece: bytes) -> None:
        start = self._start + piece if self._start else piece
        if len(start) > self._max_target:
            self._fail("request target too long" if not self._response else "reason too long", 414)
        self._start = start

    def _on_header(self, name: bytes, value: bytes) -> None:
        # The count is checked once, when the head or trailers end: the byte limit bounds it
        # meanwhile. llhttp drops leading whitespace but keeps trailing.
        pair = (name.lower(), value.rstrip(b" \t"))
        self._headers.append(pair)
        if pair[0] in _FRAMING:
            self._framing.append(pair)

    def _on_body(self, body: bytes) -> None:
        seen = self._body_seen + len(body)
        self._body_seen = seen
        if self._max_body is not None and seen > self._max_body:
            self._fail(f"{self._what} body too large", 413)
        self._events.append(Data(body))

    def _end_message(self) -> EndOfMessage:
        trailers = self._headers
        if trailers:
            self._check_trailers(trailers)
        return EndOfMessage(trailers)

    def _check_trailers(self, trailers: Headers) -> None:
        """The head's limits, applied to the trailer section once it is complete."""
        if len(trailers) > self._max_headers:
            self._fail("too many trailer fields", 431)
        if sum(len(name) + len(value) + 4 for name, value in trailers) > self._max_head:
            self._fail("trailer section too large", 431)


class RequestParser(_Framer[HttpRequestParser]):
    """Parses a stream of requests (pipelining allowed) from one client connection."""

    __slots__ = ()

    def __init__(self, limits: Limits = Limits()) -> None:
        super().__init__(limits)

    def _new_parser(self) -> HttpRequestParser:
        return HttpRequestParser(_RequestHooks(self))

    def _check_line(self, data: bytes, start: int, stop: int) -> None:
        # The request line ends "HTTP/1.1\r\n" (llhttp has checked its shape by the time the
        # head completes). Read here because llhttp also accepts RTSP/ and ICE/ there, reporting
        # them as 1.0, and because httptools formats the version as a str on every call.
        i = data.find(b"\n", start, stop)
        if i < 0:
            self._line = (self._line + data[max(start, stop - 10) : stop])[-10:]
            return
        if self._line:  # the line began in an earlier feed
            line = (self._line + data[max(start, i - 9) : i + 1])[-10:]
            self._proto = line[:5] == b"HTTP/"
            self._version = line[5:8]
        else:
            self._proto = data.endswith(b"HTTP/", start, i - 4)
            self._version = data[i - 4 : i - 1]

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
        length: int | None = None
        if coding is not None:
            if version == b"1.0":
                self._fail("transfer-encoding in an http/1.0 request")
            if length_value is not None:
                self._fail("content-length together with transfer-encoding")
            if not _ends_chunked(coding):
                self._fail("transfer-encoding does not end with chunked")
            body = _CHUNKED_KIND
        elif length_value is not None:
            length = _content_length(length_value)
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
            keep = self._keep = _keep_alive(version, connection)
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
                self._start,
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


class ResponseParser(_Framer[HttpResponseParser]):
    """Parses responses from one upstream connection, one per request sent."""

    __slots__ = ("_head_request", "_skip_complete")

    _response = True
    _what = "response"

    def __init__(self, limits: Limits = Limits()) -> None:
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
            length = _content_length(length_value)
            if length is None:
                self._fail("invalid content-length")
        if status < 200 or status == 204 or status == 304 or self._head_request:
            body = _NONE
            length = None
        elif coding is not None:
            if version == b"1.0":
                self._fail("transfer-encoding in an http/1.0 response")
            if not _ends_chunked(coding):
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
        keep = _keep_alive(version, connection) and body is not _UNTIL_CLOSE_KIND
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


# -- serializers -------------------------------------------------------------------------------

_TCHARS = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_VCHARS = bytes(range(0x21, 0x7F))
_PHRASES = {s.value: s.phrase.encode("ascii") for s in HTTPStatus}


def _header_block(headers: Headers) -> bytes:
    """Header lines, refusing anything that would make a receiver see other lines than ours."""
    if not headers:
        return b""
    block = b"".join([b"%s: %s\r\n" % header for header in headers])
    lines = len(headers)
    if block.count(b"\n") != lines or block.count(b"\r") != lines or block.find(b"\0") >= 0:
        raise LocalProtocolError("cr, lf or nul in a header (header injection)")
    if block[:1] == b":" or block.find(b"\n:") >= 0:
        raise LocalProtocolError("empty header name")
    if b"".join([name for name, _ in headers]).translate(None, _TCHARS):
        raise LocalProtocolError("invalid header name")
    return block


def serialize_request_head(method: bytes, target: bytes, headers: Headers) -> bytes:
    if not method or method.translate(None, _TCHARS):
        raise LocalProtocolError("invalid method")
    if not target or target.translate(None, _VCHARS):
        raise LocalProtocolError("invalid request target")
    return b"%s %s HTTP/1.1\r\n%s\r\n" % (method, target, _header_block(headers))


def serialize_response_head(
    status: int, reason: bytes, headers: Headers, version: bytes = b"1.1"
) -> bytes:
    if not 100 <= status <= 999:
        raise LocalProtocolError("invalid status code")
    if version != b"1.1" and version != b"1.0":
        raise LocalProtocolError("invalid http version")
    if not reason:
        reason = _PHRASES.get(status, b"")
    elif reason.find(b"\r") >= 0 or reason.find(b"\n") >= 0 or reason.find(b"\0") >= 0:
        raise LocalProtocolError("cr, lf or nul in the reason phrase (header injection)")
    return b"HTTP/%s %d %s\r\n%s\r\n" % (version, status, reason, _header_block(headers))


def chunk(data: bytes) -> bytes:
    """One chunk; empty data gives nothing, because an empty chunk would end the body."""
    if not data:
        return b""
    return b"%x\r\n%s\r\n" % (len(data), data)


def last_chunk(trailers: Headers | None = None) -> bytes:
    return b"0\r\n" + (_header_block(trailers) if trailers else b"") + b"\r\n"

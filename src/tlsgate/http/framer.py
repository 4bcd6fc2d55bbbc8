"""How llhttp is driven one message at a time, shared by the request and response parsers.

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
* A request target in absolute form (``GET http://a.example/x``) is forwarded in origin form
  (``/x``) with ``Host`` replaced by its authority (RFC 9112 3.2.2), so everything after the
  parser (routing, client-certificate path rules, the upstream) sees one authority; ``*`` is
  for ``OPTIONS`` only; anything else but origin form is refused (``target.py`` says how).
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
from typing import TYPE_CHECKING, ClassVar, Generic, NoReturn, TypeVar

from httptools import (
    HttpParserCallbackError,
    HttpParserError,
    HttpParserInvalidMethodError,
    HttpParserInvalidStatusError,
    HttpParserInvalidURLError,
    HttpParserUpgrade,
)

from tlsgate.http.events import (
    BodyKind,
    Data,
    EndOfMessage,
    Event,
    Headers,
    Limits,
    LocalProtocolError,
    RemoteProtocolError,
    Upgraded,
)

if TYPE_CHECKING:
    from httptools.parser.parser import HttpParser

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


# Refusals llhttp (or we) make only once the start line was accepted: the line was read whole.
_AFTER_LINE = frozenset(
    {
        "header section too large",
        "invalid header name",
        "invalid character in a header value",
        "obs-fold line folding is not allowed",
    }
)


class _Stop(Exception):
    """Raised inside an llhttp callback to stop it; the refusal itself is in ``_error``."""


_P = TypeVar("_P", bound="HttpParser")


def _view(data: bytes, start: int, end: int) -> bytes | memoryview:
    """``data[start:end]`` without copying large bodies (httptools reads memoryviews in place)."""
    if start == 0 and end == len(data):
        return data
    if end - start < 4096:
        return data[start:end]
    return memoryview(data)[start:end]


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
        "_line_read",
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
        self._line_read = False  # when refused: an earlier feed had read the start line whole
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
        line_read = self._proto  # (llhttp accepted the start line in an earlier feed)
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
            self._line_read = bool(line_read or (self._proto and str(exc) in _AFTER_LINE))
            raise
        return events

    def length_left(self) -> int:
        """Bytes of a Content-Length body still to come (0 when not inside one)."""
        return self._remaining if self._state == _LENGTH else 0

    def skip_body(self, n: int) -> list[Event]:
        """Count ``n`` bytes (at most :meth:`length_left`) of a Content-Length body that the
        caller relays itself, without a Data event for them: the events that follow (the
        message's end when they were its last), with the checks ``feed`` makes. The compiled
        proxy relays a large body from its read buffer this way; here, the reference, it is
        ``feed`` of that many bytes without the Data events."""
        if self._error is not None:
            raise self._error
        if self._state != _LENGTH or not 0 < n <= self._remaining:
            raise LocalProtocolError("skip_body() outside a Content-Length body, or past its end")
        return [event for event in self.feed(bytes(n)) if type(event) is not Data]

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
            # Transfer-Encoding as llhttp read it, for fields.ends_chunked
            self._framing.append(pair if pair[0] != b"transfer-encoding" else (pair[0], value))

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

"""HTTP/1.1 framing (tlsgate.http): what is parsed, what is refused, and with which status.

Every refusal is checked twice: fed whole and fed one byte at a time, because the parser drives
llhttp in pieces of its own choosing and a status that depended on how the bytes arrived would
be a bug (and a framing that did would be a smuggling hole).
"""

from __future__ import annotations

import pytest

from tlsgate.http import (
    BodyKind,
    Data,
    EndOfMessage,
    Event,
    Headers,
    Limits,
    LocalProtocolError,
    RemoteProtocolError,
    Request,
    RequestParser,
    Response,
    ResponseParser,
    Upgraded,
    chunk,
    last_chunk,
    serialize_request_head,
    serialize_response_head,
)

from .http_helpers import bytewise, feed_pieces, make_parser

# Every test here runs on the compiled parser and on the pure one (tests/http/conftest.py).
pytestmark = pytest.mark.usefixtures("parsers")

HOST = b"Host: example.com\r\n"


def post(rest: bytes) -> bytes:
    """A POST with a Host header; ``rest`` is the remaining header lines, blank line and body."""
    return b"POST / HTTP/1.1\r\n" + HOST + rest


def get(rest: bytes) -> bytes:
    return b"GET / HTTP/1.1\r\n" + HOST + rest


def chunked(body: bytes) -> bytes:
    return post(b"Transfer-Encoding: chunked\r\n\r\n" + body)


def merge(events: list[Event]) -> list[Event]:
    """Consecutive Data events joined: how the body was cut is not part of the result."""
    out: list[Event] = []
    for event in events:
        if isinstance(event, Data) and out and isinstance(out[-1], Data):
            out[-1] = Data(out[-1].data + event.data)
        elif isinstance(event, Data) and not event.data:
            continue
        else:
            out.append(event)
    return out


def parse(data: bytes, limits: Limits | None = None) -> list[Event]:
    """Parse whole and byte by byte; both must agree (merged), and the whole result is returned."""
    whole = RequestParser(limits or Limits()).feed(data)
    split = feed_pieces(RequestParser(limits or Limits()), bytewise(data))
    assert merge(split) == merge(whole)
    return whole


def respond(data: bytes, method: bytes = b"GET", eof: bool = False) -> list[Event]:
    """A response, whole and byte by byte (with feed_eof if asked); both must agree."""
    results = []
    for pieces in ([data], bytewise(data)):
        results.append(merge(feed_pieces(make_parser(method), pieces, eof)))
    assert results[0] == results[1]
    return results[0]


def refused(
    data: bytes,
    status: int,
    limits: Limits | None = None,
    response: bytes | None = None,
) -> RemoteProtocolError:
    """The input is refused with ``status``, whole and byte by byte, and the parser stays so."""
    errors = []
    for pieces in ([data], bytewise(data)):
        parser = make_parser(response, limits)
        with pytest.raises(RemoteProtocolError) as info:
            for piece in pieces:
                parser.feed(piece)
            parser.feed_eof()
        error = info.value
        assert error.status == status, (str(error), data[:80])
        # stays errored, with the same error
        with pytest.raises(RemoteProtocolError) as again:
            parser.feed(b"GET / HTTP/1.1\r\n" + HOST + b"\r\n")
        assert again.value is error
        with pytest.raises(RemoteProtocolError):
            parser.feed_eof()
        errors.append(error)
    message = str(errors[0])
    assert str(errors[1]) == message
    assert message == message.lower() and 0 < len(message) <= 60, message
    return errors[0]


# -- requests ------------------------------------------------------------------------------------


def test_simple_get() -> None:
    events = parse(b"GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n")
    assert events == [
        Request(
            method=b"GET",
            target=b"/a?b=c",
            version=b"1.1",
            headers=[(b"host", b"example.com"), (b"accept", b"*/*")],
            body=BodyKind.NONE,
            content_length=None,
            keep_alive=True,
        ),
        EndOfMessage(),
    ]


def test_header_names_lowered_order_and_repetition_kept_values_trimmed() -> None:
    events = parse(
        b"GET / HTTP/1.1\r\nHOST: h\r\nX-A:  one \t\r\nx-a: two\r\nX-Empty:\r\nX-B:\tb c\r\n\r\n"
    )
    head = events[0]
    assert isinstance(head, Request)
    assert head.headers == [
        (b"host", b"h"),
        (b"x-a", b"one"),
        (b"x-a", b"two"),
        (b"x-empty", b""),
        (b"x-b", b"b c"),
    ]


def test_obs_text_in_values_is_kept() -> None:
    head = parse(b"GET / HTTP/1.1\r\n" + HOST + b"X-Name: caf\xc3\xa9\r\n\r\n")[0]
    assert isinstance(head, Request)
    assert head.headers[-1] == (b"x-name", b"caf\xc3\xa9")


def test_pipelined_requests_in_one_feed() -> None:
    data = (
        b"GET /1 HTTP/1.1\r\n" + HOST + b"\r\n"
        b"POST /2 HTTP/1.1\r\n" + HOST + b"Content-Length: 5\r\n\r\nhello"
        b"PUT /3 HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
        b"DELETE /4 HTTP/1.1\r\n" + HOST + b"\r\n"
    )
    events = merge(parse(data))
    heads = [e for e in events if isinstance(e, Request)]
    assert [(h.method, h.target, h.body) for h in heads] == [
        (b"GET", b"/1", BodyKind.NONE),
        (b"POST", b"/2", BodyKind.LENGTH),
        (b"PUT", b"/3", BodyKind.CHUNKED),
        (b"DELETE", b"/4", BodyKind.NONE),
    ]
    assert events[3] == Data(b"hello")
    assert events[6] == Data(b"abcde")
    assert sum(isinstance(e, EndOfMessage) for e in events) == 4


def test_request_split_at_every_boundary_gives_the_same_events() -> None:
    data = (
        b"POST /upload HTTP/1.1\r\n" + HOST + b"Content-Length: 11\r\n\r\nhello world"
        b"POST /c HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n"
        b"4;name=value\r\n\r\n\r\n\r\n3\r\nxyz\r\n0\r\nX-Sum: 1\r\n\r\n"
        b"\r\nGET / HTTP/1.1\r\n" + HOST + b"\r\n"
    )
    whole = merge(RequestParser().feed(data))
    assert len(whole) == 8
    for cut in range(len(data) + 1):
        parser = RequestParser()
        split = parser.feed(data[:cut]) + parser.feed(data[cut:])
        assert merge(split) == whole, cut
    assert merge(feed_pieces(RequestParser(), bytewise(data))) == whole
    assert whole[4] == Data(b"\r\n\r\nxyz")


def test_body_is_streamed_not_buffered() -> None:
    parser = RequestParser()
    events = parser.feed(b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: 10\r\n\r\nabc")
    assert isinstance(events[0], Request) and events[0].content_length == 10
    assert events[1:] == [Data(b"abc")]
    assert parser.feed(b"defg") == [Data(b"defg")]
    assert parser.feed(b"hij") == [Data(b"hij"), EndOfMessage()]
    parser = RequestParser()
    parser.feed(b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n")
    assert parser.feed(b"a\r\n01234") == [Data(b"01234")]
    assert parser.feed(b"56789\r\n") == [Data(b"56789")]
    assert parser.feed(b"0\r\n\r\n") == [EndOfMessage()]


def test_chunked_with_trailers_and_extensions() -> None:
    data = (
        b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: gzip, Chunked\r\n\r\n"
        b'5;ext=1;q="a b"\r\nhello\r\n006\r\n world\r\n0;last\r\n'
        b"X-Checksum: abc \r\nX-Other: 2\r\n\r\n"
    )
    events = merge(parse(data))
    head = events[0]
    assert isinstance(head, Request) and head.body is BodyKind.CHUNKED
    assert head.content_length is None
    assert events[1:] == [
        Data(b"hello world"),
        EndOfMessage([(b"x-checksum", b"abc"), (b"x-other", b"2")]),
    ]


def test_content_length_zero_is_a_length_body() -> None:
    events = parse(b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: 000\r\n\r\n")
    head = events[0]
    assert isinstance(head, Request)
    assert (head.body, head.content_length) == (BodyKind.LENGTH, 0)
    assert events[1:] == [EndOfMessage()]


@pytest.mark.parametrize(
    ("version", "connection", "keep"),
    [
        (b"1.1", None, True),
        (b"1.1", b"close", False),
        (b"1.1", b"Keep-Alive", True),
        (b"1.1", b"foo, CLOSE", False),
        (b"1.0", None, False),
        (b"1.0", b"keep-alive", True),
        (b"1.0", b"Keep-Alive, foo", True),
        (b"1.0", b"keep-alive, close", False),
    ],
)
def test_keep_alive_rules(version: bytes, connection: bytes | None, keep: bool) -> None:
    head = b"GET / HTTP/" + version + b"\r\n" + HOST
    if connection is not None:
        head += b"Connection: " + connection + b"\r\n"
    data = head + b"\r\n" + b"GET /next HTTP/1.1\r\n" + HOST + b"\r\n"
    events = parse(data)
    first = events[0]
    assert isinstance(first, Request) and first.keep_alive is keep
    assert first.version == version
    # after a request that ends the connection, nothing more is parsed (RFC 9112 9.6)
    assert len(events) == (4 if keep else 2)


def test_after_close_even_garbage_is_not_parsed() -> None:
    parser = RequestParser()
    events = parser.feed(b"GET / HTTP/1.0\r\n\r\n\x00\x01garbage")
    assert len(events) == 2
    assert parser.feed(b"more garbage") == []
    assert parser.feed_eof() == []


def test_http10_without_host_is_fine() -> None:
    head = parse(b"GET / HTTP/1.0\r\n\r\n")[0]
    assert isinstance(head, Request) and head.version == b"1.0" and head.headers == []


def test_expect_continue() -> None:
    head = parse(
        b"POST / HTTP/1.1\r\n" + HOST + b"Expect: 100-Continue\r\nContent-Length: 1\r\n\r\nx"
    )
    assert isinstance(head[0], Request) and head[0].expect_continue
    # RFC 9110 10.1.1: an HTTP/1.0 request's expectation is ignored
    head = parse(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx")
    assert isinstance(head[0], Request) and not head[0].expect_continue


def test_upgrade_ends_with_leftover() -> None:
    data = (
        b"GET /chat HTTP/1.1\r\n" + HOST + b"Connection: keep-alive, Upgrade\r\n"
        b"Upgrade: WebSocket\r\nSec-WebSocket-Version: 13\r\n\r\n\x81\x05hello"
    )
    events = parse(data)
    head = events[0]
    assert isinstance(head, Request) and head.upgrade == b"websocket"
    assert events[1:] == [EndOfMessage(), Upgraded(b"\x81\x05hello")]
    parser = RequestParser()
    assert parser.feed(data[:-7])[-1] == Upgraded(b"")
    with pytest.raises(LocalProtocolError):
        parser.feed(b"\x81")
    with pytest.raises(LocalProtocolError):
        parser.feed_eof()


def test_upgrade_leftover_may_look_like_http() -> None:
    # the tunnel's bytes are not parsed, even when they would be a request
    data = b"GET / HTTP/1.1\r\n" + HOST + b"Connection: upgrade\r\nUpgrade: h2c\r\n\r\n"
    events = RequestParser().feed(data + b"GET /x HTTP/1.1\r\n\r\n")
    assert events[-1] == Upgraded(b"GET /x HTTP/1.1\r\n\r\n")


def test_upgrade_header_without_connection_upgrade_is_ignored() -> None:
    events = parse(b"GET / HTTP/1.1\r\n" + HOST + b"Upgrade: websocket\r\n\r\n")
    assert isinstance(events[0], Request) and events[0].upgrade is None
    assert events[1:] == [EndOfMessage()]


@pytest.mark.parametrize(
    "start", [b"POST / HTTP/1.1\r\n", b"GET / HTTP/1.0\r\n", b"OPTIONS * HTTP/1.1\r\n"]
)
def test_upgrade_other_than_get_11_is_an_ordinary_request(start: bytes) -> None:
    data = start + HOST + b"Connection: upgrade, keep-alive\r\nUpgrade: h2c\r\n\r\n"
    data += b"GET /next HTTP/1.1\r\n" + HOST + b"\r\n"
    events = parse(data)
    first, nxt = events[0], events[2]
    assert isinstance(first, Request) and first.upgrade is None
    assert isinstance(nxt, Request) and nxt.target == b"/next"
    assert len(events) == 4


def test_serialized_chunk_helpers_frame_a_request_body() -> None:
    body = chunk(b"hello") + chunk(b"") + chunk(b" world") + last_chunk([(b"x-t", b"1")])
    data = b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n" + body
    assert merge(parse(data))[1:] == [Data(b"hello world"), EndOfMessage([(b"x-t", b"1")])]


def test_blank_lines_before_a_request_are_skipped() -> None:
    events = parse(
        b"\r\n\r\nGET / HTTP/1.1\r\n" + HOST + b"\r\n\r\nGET /2 HTTP/1.1\r\n" + HOST + b"\r\n"
    )
    assert [e.target for e in events if isinstance(e, Request)] == [b"/", b"/2"]


def test_feed_eof() -> None:
    parser = RequestParser()
    assert parser.feed_eof() == []
    with pytest.raises(LocalProtocolError):
        parser.feed(b"GET")
    parser = RequestParser()
    parser.feed(b"GET / HTTP/1.1\r\n" + HOST + b"\r\n\r\n")
    assert parser.feed_eof() == []
    for partial in (
        b"G",
        b"GET / HTTP/1.1\r\n" + HOST,
        b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: 3\r\n\r\nab",
        b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n0\r\n",
    ):
        parser = RequestParser()
        parser.feed(partial)
        with pytest.raises(RemoteProtocolError) as info:
            parser.feed_eof()
        assert info.value.status == 400
        with pytest.raises(RemoteProtocolError):
            parser.feed(b"x")


def test_limits_at_their_edge_are_accepted() -> None:
    head = b"GET /" + b"a" * 99 + b" HTTP/1.1\r\n" + HOST + b"X: y\r\n\r\n"
    limits = Limits(max_header_bytes=len(head), max_headers=2, max_target_bytes=100)
    assert isinstance(parse(head, limits)[0], Request)
    body = b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n"
    body += b"5\r\n12345\r\n5\r\n67890\r\n0\r\n\r\n"
    assert merge(parse(body, Limits(max_body_bytes=10)))[1] == Data(b"1234567890")


# -- request refusals ----------------------------------------------------------------------------

LONG = b"x" * 200

REFUSALS: dict[str, tuple[bytes, int]] = {
    # framing ambiguity
    "cl-and-te": (post(b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), 400),
    "te-and-cl": (post(b"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n"), 400),
    "duplicate-cl-same": (post(b"Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc"), 400),
    "duplicate-cl-conflicting": (post(b"Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"), 400),
    "cl-list": (post(b"Content-Length: 3, 3\r\n\r\nabc"), 400),
    "cl-plus": (post(b"Content-Length: +3\r\n\r\nabc"), 400),
    "cl-negative": (post(b"Content-Length: -3\r\n\r\nabc"), 400),
    "cl-hex": (post(b"Content-Length: 0x3\r\n\r\nabc"), 400),
    "cl-inner-space": (post(b"Content-Length: 1 2\r\n\r\nabc"), 400),
    "cl-empty": (post(b"Content-Length:\r\n\r\n"), 400),
    "cl-overflow": (post(b"Content-Length: 99999999999999999999999\r\n\r\n"), 400),
    "te-gzip-only": (post(b"Transfer-Encoding: gzip\r\n\r\nabc"), 400),
    "te-chunked-not-last": (post(b"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n"), 400),
    "te-chunked-twice": (post(b"Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n"), 400),
    "te-two-headers-gzip-last": (
        post(b"Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n"),
        400,
    ),
    "te-empty": (post(b"Transfer-Encoding:\r\n\r\n"), 400),
    "te-empty-item": (post(b"Transfer-Encoding: gzip,,chunked\r\n\r\n0\r\n\r\n"), 400),
    "te-vertical-tab": (post(b"Transfer-Encoding: chunked\x0b\r\n\r\n0\r\n\r\n"), 400),
    "te-in-http10": (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    "upgrade-with-cl-body": (
        get(b"Connection: upgrade\r\nUpgrade: websocket\r\nContent-Length: 3\r\n\r\nabc"),
        400,
    ),
    "upgrade-with-chunked-body": (
        post(b"Connection: upgrade\r\nUpgrade: h2c\r\n")
        + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    # chunks
    "chunk-size-not-hex": (chunked(b"zz\r\nabc\r\n0\r\n\r\n"), 400),
    "chunk-size-negative": (chunked(b"-3\r\nabc\r\n0\r\n\r\n"), 400),
    "chunk-size-0x": (chunked(b"0x3\r\nabc\r\n0\r\n\r\n"), 400),
    "chunk-size-space": (chunked(b"3 \r\nabc\r\n0\r\n\r\n"), 400),
    "chunk-size-overflow": (chunked(b"f" * 20 + b"\r\nabc\r\n"), 400),
    "chunk-size-empty": (chunked(b"\r\nabc\r\n0\r\n\r\n"), 400),
    "chunk-extension-garbage": (chunked(b"3;a b\r\nabc\r\n0\r\n\r\n"), 400),
    "chunk-extension-control": (chunked(b'3;a="\x01"\r\nabc\r\n0\r\n\r\n'), 400),
    "chunk-data-too-long": (chunked(b"3\r\nabcd\r\n0\r\n\r\n"), 400),
    "chunk-bare-lf": (chunked(b"3\nabc\r\n0\r\n\r\n"), 400),
    "trailer-obs-fold": (chunked(b"0\r\nX: a\r\n b\r\n\r\n"), 400),
    # line endings and header syntax
    "obs-fold": (get(b"X-A: a\r\n  folded\r\n\r\n"), 400),
    "obs-fold-tab": (get(b"X-A: a\r\n\tfolded\r\n\r\n"), 400),
    "bare-lf-everywhere": (b"GET / HTTP/1.1\nHost: a\n\n", 400),
    "bare-lf-after-header": (get(b"X: a\n\r\n"), 400),
    "bare-lf-ends-head": (get(b"\n"), 400),
    "bare-cr": (get(b"X: a\rb\r\n\r\n"), 400),
    "bare-lf-before-request": (b"\nGET / HTTP/1.1\r\n" + HOST + b"\r\n", 400),
    "bare-cr-before-request": (b"\r\rGET / HTTP/1.1\r\n" + HOST + b"\r\n", 400),
    "space-before-colon": (get(b"X-A : b\r\n\r\n"), 400),
    "tab-before-colon": (get(b"X-A\t: b\r\n\r\n"), 400),
    "space-before-first-header": (b"GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400),
    "invalid-name-char": (get(b"X(A): b\r\n\r\n"), 400),
    "empty-name": (get(b": b\r\n\r\n"), 400),
    "no-colon": (get(b"X-A\r\n\r\n"), 400),
    "nul-in-value": (get(b"X: a\x00b\r\n\r\n"), 400),
    "del-in-value": (get(b"X: a\x7fb\r\n\r\n"), 400),
    "two-hosts": (get(b"host: other\r\n\r\n"), 400),
    "no-host": (b"GET / HTTP/1.1\r\n\r\n", 400),
    # request line
    "garbage": (b"\x16\x03\x01garbage\r\n\r\n", 400),
    "lowercase-method": (b"get / HTTP/1.1\r\n" + HOST + b"\r\n", 400),
    "unknown-method": (b"FOO / HTTP/1.1\r\n" + HOST + b"\r\n", 501),
    "rtsp-method-on-http": (b"DESCRIBE / HTTP/1.1\r\n" + HOST + b"\r\n", 501),
    "connect": (b"CONNECT example.com:443 HTTP/1.1\r\n" + HOST + b"\r\n", 501),
    "target-control-char": (b"GET /a\x01b HTTP/1.1\r\n" + HOST + b"\r\n", 400),
    "target-space": (b"GET /a b HTTP/1.1\r\n" + HOST + b"\r\n", 400),
    "trailing-space-after-version": (b"GET / HTTP/1.1 \r\n" + HOST + b"\r\n", 400),
    "not-http": (b"GET / RTSP/1.0\r\n" + HOST + b"\r\n", 400),
    "ice": (b"SOURCE / ICE/1.0\r\n" + HOST + b"\r\n", 400),
    "http2": (b"GET / HTTP/2.0\r\n" + HOST + b"\r\n", 505),
    "http2-preface": (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
    "http09": (b"GET /\r\n\r\n", 505),
    "http09-with-target-like-a-version": (b"GET /1.1\r\n" + HOST + b"\r\n", 400),
    # an HTTP/0.9 line (no version) whose target ends like one is not HTTP/1.1
    "http09-with-target-like-a-protocol": (b"GET /HTTP/1.1\r\n" + HOST + b"\r\n", 400),
    "http12": (b"GET / HTTP/1.2\r\n" + HOST + b"\r\n", 505),
    "http30": (b"GET / HTTP/3.0\r\n" + HOST + b"\r\n", 505),
    "version-garbage": (b"GET / HTTP/x.1\r\n" + HOST + b"\r\n", 400),
    # sizes
    "huge-header": (get(b"X-Big: " + b"a" * 40000 + b"\r\n\r\n"), 431),
    "huge-target": (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n" + HOST + b"\r\n", 414),
    "endless-blank-lines": (b"\r\n" * 20000, 431),
    "cl-overflow-many-digits": (post(b"Content-Length: 1" + b"0" * 25 + b"\r\n\r\n"), 400),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_request_refusals(case: str) -> None:
    data, status = REFUSALS[case]
    error = refused(data, status)
    assert LONG not in str(error).encode()


def test_messages_never_echo_input() -> None:
    error = refused(b"GET / HTTP/1.1\r\n" + HOST + b"X-" + LONG + b" : b\r\n\r\n", 400)
    assert b"xxxx" not in str(error).encode()


def test_head_limit_counts_the_whole_head() -> None:
    limits = Limits(max_header_bytes=100)
    head = b"GET / HTTP/1.1\r\n" + HOST + b"".join(b"X-%d: v\r\n" % i for i in range(10))
    refused(head + b"\r\n", 431, limits)
    # just under the limit: fine
    small = b"GET / HTTP/1.1\r\n" + HOST
    small += b"X: " + b"v" * (100 - len(small) - 7) + b"\r\n\r\n"
    assert len(small) == 100
    assert isinstance(parse(small, limits)[0], Request)
    refused(small[:-4] + b"v\r\n\r\n", 431, limits)


def test_too_many_headers() -> None:
    head = b"GET / HTTP/1.1\r\n" + HOST + b"X: 1\r\n" * 5 + b"\r\n"
    refused(head, 431, Limits(max_headers=5))
    assert isinstance(parse(head, Limits(max_headers=6))[0], Request)


def test_target_limit_before_head_limit() -> None:
    refused(
        b"GET /" + b"a" * 200 + b" HTTP/1.1\r\n" + HOST + b"\r\n", 414, Limits(max_target_bytes=100)
    )


def test_body_limits() -> None:
    limits = Limits(max_body_bytes=10)
    refused(b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: 11\r\n\r\n", 413, limits)
    chunked = b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n"
    refused(chunked + b"6\r\nabcdef\r\n5\r\nghijk\r\n0\r\n\r\n", 413, limits)
    # the refusal comes as the body flows, before its end is even sent
    parser = RequestParser(limits)
    parser.feed(chunked + b"6\r\nabcdef\r\n")
    with pytest.raises(RemoteProtocolError) as info:
        parser.feed(b"5\r\nghijk")
    assert info.value.status == 413


def test_trailer_limits() -> None:
    chunked = b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n"
    refused(chunked + b"X: 1\r\n" * 4 + b"\r\n", 431, Limits(max_headers=3))
    limits = Limits(max_header_bytes=1000)
    refused(chunked + b"X-Big: " + b"a" * 1000 + b"\r\n\r\n", 431, limits)
    assert isinstance(
        parse(chunked + b"X-Big: " + b"a" * 900 + b"\r\n\r\n", limits)[-1], EndOfMessage
    )
    # one trailer growing without end is cut off as it streams, not gathered in memory
    parser = RequestParser(limits)
    parser.feed(chunked + b"X-Big: ")
    with pytest.raises(RemoteProtocolError) as info:
        for _ in range(100):
            parser.feed(b"a" * 100)
    assert info.value.status == 431


def test_a_bug_in_a_callback_is_not_disguised_as_a_refusal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(self: RequestParser, name: bytes, value: bytes) -> None:
        raise ZeroDivisionError

    if not hasattr(RequestParser, "_on_header"):
        pytest.skip("the compiled parser calls no Python callback")
    monkeypatch.setattr(RequestParser, "_on_header", broken)
    with pytest.raises(ZeroDivisionError):
        RequestParser().feed(b"GET / HTTP/1.1\r\n" + HOST + b"\r\n")


def test_httptools_errors_never_escape() -> None:
    for data in (b"\x00" * 10, b"GET / HTTP/1.1\r\n\x00", b"HTTP/1.1 200 OK\r\n\r\n"):
        with pytest.raises(RemoteProtocolError):
            RequestParser().feed(data)


# -- responses -----------------------------------------------------------------------------------


def test_simple_response() -> None:
    events = respond(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: x\r\n\r\nhello")
    assert events == [
        Response(
            status=200,
            reason=b"OK",
            version=b"1.1",
            headers=[(b"content-length", b"5"), (b"server", b"x")],
            body=BodyKind.LENGTH,
            content_length=5,
            keep_alive=True,
        ),
        Data(b"hello"),
        EndOfMessage(),
    ]


def test_response_without_reason() -> None:
    head = respond(b"HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n")[0]
    assert isinstance(head, Response) and (head.status, head.reason) == (404, b"")


def test_response_parser_is_reused_one_response_per_expect() -> None:
    parser = ResponseParser()
    for i in range(3):
        parser.expect(b"GET")
        events = parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n%d" % i)
        assert events[1:] == [Data(b"%d" % i), EndOfMessage()]
    parser.expect(b"HEAD")
    assert parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")[1:] == [EndOfMessage()]
    parser.expect(b"GET")
    assert parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz")[1:] == [
        Data(b"z"),
        EndOfMessage(),
    ]


def test_reusable_only_between_clean_responses() -> None:
    parser = ResponseParser()
    assert parser.reusable  # a fresh connection
    parser.expect(b"GET")
    assert not parser.reusable
    parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\na")
    assert not parser.reusable  # mid-body
    parser.feed(b"b")
    assert parser.reusable
    parser.expect(b"GET")
    parser.feed(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
    assert not parser.reusable  # the upstream said close
    broken = ResponseParser()
    broken.expect(b"GET")
    with pytest.raises(RemoteProtocolError):
        broken.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
    assert not broken.reusable


def test_expect_is_required_and_not_twice() -> None:
    parser = ResponseParser()
    with pytest.raises(RemoteProtocolError) as info:
        parser.feed(b"HTTP/1.1 200 OK\r\n\r\n")
    assert info.value.status == 502
    parser = ResponseParser()
    parser.expect(b"GET")
    with pytest.raises(LocalProtocolError):
        parser.expect(b"GET")
    parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\na")
    with pytest.raises(LocalProtocolError):
        parser.expect(b"GET")


def test_head_response_has_no_body_even_with_length() -> None:
    for framing in (b"Content-Length: 1234\r\n", b"Transfer-Encoding: chunked\r\n", b""):
        events = respond(b"HTTP/1.1 200 OK\r\n" + framing + b"\r\n", method=b"HEAD")
        head = events[0]
        assert isinstance(head, Response)
        assert (head.body, head.content_length, head.keep_alive) == (BodyKind.NONE, None, True)
        assert events[1:] == [EndOfMessage()]


def test_head_response_followed_by_body_bytes_is_refused() -> None:
    refused(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 502, response=b"HEAD")


@pytest.mark.parametrize("status", [204, 304])
def test_no_body_statuses(status: int) -> None:
    data = b"HTTP/1.1 %d Whatever\r\nContent-Length: 10\r\nETag: x\r\n\r\n" % status
    events = respond(data)
    head = events[0]
    assert isinstance(head, Response) and head.status == status
    assert (head.body, head.content_length) == (BodyKind.NONE, None)
    assert events[1:] == [EndOfMessage()]


def test_interim_responses_then_the_final_one() -> None:
    data = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
        b"HTTP/1.1 102 Processing\r\nConnection: close\r\n\r\n"
        b"HTTP/1.1 199 Odd\r\nContent-Length: 5\r\n\r\n"
        b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"
    )
    events = respond(data, method=b"POST")
    statuses = [(e.status, e.body) for e in events if isinstance(e, Response)]
    assert statuses == [
        (100, BodyKind.NONE),
        (103, BodyKind.NONE),
        (102, BodyKind.NONE),
        (199, BodyKind.NONE),
        (201, BodyKind.LENGTH),
    ]
    assert [type(e).__name__ for e in events] == ["Response", "EndOfMessage"] * 4 + [
        "Response",
        "Data",
        "EndOfMessage",
    ]
    assert events[1] == EndOfMessage()
    interim = events[2]
    assert isinstance(interim, Response) and interim.headers == [
        (b"link", b"</a.css>; rel=preload")
    ]


def test_switching_protocols() -> None:
    data = b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"
    events = respond(data + b"\x81\x02hi")
    head = events[0]
    assert isinstance(head, Response) and head.status == 101
    assert events[1:] == [EndOfMessage(), Upgraded(b"\x81\x02hi")]
    # llhttp only treats it as an upgrade with Connection: upgrade; we do with Upgrade alone
    events = respond(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\nxy")
    assert events[-1] == Upgraded(b"xy")
    parser = ResponseParser()
    parser.expect(b"GET")
    parser.feed(data)
    with pytest.raises(LocalProtocolError):
        parser.feed(b"x")
    with pytest.raises(LocalProtocolError):
        parser.expect(b"GET")
    with pytest.raises(LocalProtocolError):
        parser.feed_eof()


def test_until_close_body() -> None:
    events = respond(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of this", eof=True)
    head = events[0]
    assert isinstance(head, Response)
    assert (head.body, head.keep_alive) == (BodyKind.UNTIL_CLOSE, False)
    assert events[1:] == [Data(b"all of this"), EndOfMessage()]
    events = respond(b"HTTP/1.0 200 OK\r\n\r\nHTTP/1.1 200 OK\r\n\r\n", eof=True)
    assert events[1:] == [Data(b"HTTP/1.1 200 OK\r\n\r\n"), EndOfMessage()]


def test_chunked_response_with_trailers() -> None:
    data = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-sum\r\n\r\n"
    data += chunk(b"abc") + chunk(b"\r\n\r\n") + last_chunk([(b"X-Sum", b"7")])
    events = respond(data)
    assert events[1:] == [Data(b"abc\r\n\r\n"), EndOfMessage([(b"x-sum", b"7")])]


@pytest.mark.parametrize(
    ("version", "connection", "keep"),
    [
        (b"1.1", b"", True),
        (b"1.1", b"Connection: close\r\n", False),
        (b"1.0", b"", False),
        (b"1.0", b"Connection: keep-alive\r\n", True),
    ],
)
def test_response_keep_alive(version: bytes, connection: bytes, keep: bool) -> None:
    data = b"HTTP/" + version + b" 200 OK\r\n" + connection + b"Content-Length: 1\r\n\r\nx"
    head = respond(data)[0]
    assert isinstance(head, Response) and head.keep_alive is keep
    parser = ResponseParser()
    parser.expect(b"GET")
    parser.feed(data)
    if keep:
        parser.expect(b"GET")
    else:
        # the connection ends with this response: not reused, later bytes not parsed
        assert parser.feed(b"HTTP/1.1 200 OK\r\n\r\n") == []
        with pytest.raises(LocalProtocolError):
            parser.expect(b"GET")


def test_response_feed_eof() -> None:
    parser = ResponseParser()
    assert parser.feed_eof() == []
    parser = ResponseParser()
    parser.expect(b"GET")
    assert parser.feed_eof() == []  # a stale pooled connection: nothing of a response yet
    for partial in (
        b"HTTP/1.1 2",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nab",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
    ):
        parser = ResponseParser()
        parser.expect(b"GET")
        parser.feed(partial)
        with pytest.raises(RemoteProtocolError) as info:
            parser.feed_eof()
        assert info.value.status == 502


def test_blank_lines_after_a_response_are_tolerated() -> None:
    parser = ResponseParser()
    parser.expect(b"GET")
    assert len(parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n\r\n")) == 2
    assert parser.feed(b"\r\n") == []
    parser.expect(b"GET")
    assert len(parser.feed(b"HTTP/1.1 204 No Content\r\n\r\n")) == 2


RESPONSE_REFUSALS: dict[str, bytes] = {
    "cl-and-te": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
    "cl-and-te-on-304": (
        b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
    ),
    "duplicate-cl": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
    "invalid-cl": b"HTTP/1.1 200 OK\r\nContent-Length: 3a\r\n\r\nabc",
    "bad-chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n",
    "te-gzip-only": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nabc",
    # llhttp reads "chunked<TAB>" as another coding (a body until EOF): neither may guess
    "te-chunked-tab": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\t\r\n\r\n0\r\n\r\n",
    "te-in-http10": b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "obs-fold": b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n",
    "bare-lf": b"HTTP/1.1 200 OK\nContent-Length: 0\n\n",
    "status-below-100": b"HTTP/1.1 099 Odd\r\nContent-Length: 0\r\n\r\n",
    "status-four-digits": b"HTTP/1.1 1000 Odd\r\nContent-Length: 0\r\n\r\n",
    "not-http": b"RTSP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
    "ice": b"ICE/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
    "http2": b"HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n",
    "101-without-upgrade": b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
    "101-in-http10": b"HTTP/1.0 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
    "second-response": b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
    "huge-header": b"HTTP/1.1 200 OK\r\nX: " + b"a" * 40000 + b"\r\n\r\n",
    "garbage": b"\x00\x01\x02\r\n\r\n",
}


@pytest.mark.parametrize("case", sorted(RESPONSE_REFUSALS))
def test_response_refusals_are_502(case: str) -> None:
    refused(RESPONSE_REFUSALS[case], 502, response=b"GET")


def test_a_refused_response_stays_refused() -> None:
    parser = ResponseParser(Limits(max_headers=1))
    parser.expect(b"GET")
    with pytest.raises(RemoteProtocolError) as info:
        parser.feed(b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n")
    assert info.value.status == 502
    with pytest.raises(RemoteProtocolError) as again:
        parser.expect(b"GET")
    assert again.value is info.value


def test_response_body_limit_is_502() -> None:
    limits = Limits(max_body_bytes=3)
    refused(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nabcd", 502, limits, response=b"GET")
    refused(b"HTTP/1.1 200 OK\r\n\r\nabcd", 502, limits, response=b"GET")


# -- serializers ---------------------------------------------------------------------------------


def test_serialize_request_head() -> None:
    head = serialize_request_head(b"GET", b"/a?b", [(b"host", b"x"), (b"accept", b"*/*")])
    assert head == b"GET /a?b HTTP/1.1\r\nhost: x\r\naccept: */*\r\n\r\n"
    assert serialize_request_head(b"OPTIONS", b"*", []) == b"OPTIONS * HTTP/1.1\r\n\r\n"


def test_serialize_response_head() -> None:
    assert serialize_response_head(200, b"Fine", [(b"a", b"b")]) == (
        b"HTTP/1.1 200 Fine\r\na: b\r\n\r\n"
    )
    assert serialize_response_head(404, b"", []) == b"HTTP/1.1 404 Not Found\r\n\r\n"
    assert serialize_response_head(599, b"", [], b"1.0") == b"HTTP/1.0 599 \r\n\r\n"


def test_chunk_and_last_chunk() -> None:
    assert chunk(b"a" * 26) == b"1a\r\n" + b"a" * 26 + b"\r\n"
    assert chunk(b"") == b""
    assert last_chunk() == b"0\r\n\r\n"
    assert last_chunk([]) == b"0\r\n\r\n"
    assert last_chunk([(b"x-a", b"1"), (b"x-b", b"2")]) == b"0\r\nx-a: 1\r\nx-b: 2\r\n\r\n"


def test_request_round_trip() -> None:
    headers: Headers = [
        (b"host", b"example.com"),
        (b"x-list", b"a, b"),
        (b"x-list", b"c"),
        (b"content-length", b"4"),
        (b"x-utf8", b"\xc3\xa9"),
    ]
    data = serialize_request_head(b"PATCH", b"/p?q=1", headers) + b"body"
    events = parse(data)
    assert events == [
        Request(b"PATCH", b"/p?q=1", b"1.1", headers, BodyKind.LENGTH, 4, True),
        Data(b"body"),
        EndOfMessage(),
    ]


def test_response_round_trip() -> None:
    headers: Headers = [(b"transfer-encoding", b"chunked"), (b"set-cookie", b"a=1")]
    data = serialize_response_head(200, b"", [*headers, (b"set-cookie", b"b=2")])
    data += chunk(b"part") + last_chunk([(b"x-t", b"z")])
    events = respond(data)
    assert events == [
        Response(
            200,
            b"OK",
            b"1.1",
            [*headers, (b"set-cookie", b"b=2")],
            BodyKind.CHUNKED,
            None,
            True,
        ),
        Data(b"part"),
        EndOfMessage([(b"x-t", b"z")]),
    ]


@pytest.mark.parametrize(
    "headers",
    [
        [(b"x", b"a\r\nInjected: 1")],
        [(b"x", b"a\nb")],
        [(b"x", b"a\rb")],
        [(b"x", b"a\x00b")],
        [(b"x\r\ny", b"a")],
        [(b"x y", b"a")],
        [(b"x:y", b"a")],
        [(b"", b"a")],
        [(b"ok", b"fine"), (b"", b"a")],
        [(b"\xc3\xa9", b"a")],
    ],
)
def test_header_injection_refused(headers: Headers) -> None:
    with pytest.raises(LocalProtocolError):
        serialize_request_head(b"GET", b"/", headers)
    with pytest.raises(LocalProtocolError):
        serialize_response_head(200, b"OK", headers)
    with pytest.raises(LocalProtocolError):
        last_chunk(headers)


@pytest.mark.parametrize(
    ("method", "target"),
    [
        (b"GET /x", b"/"),
        (b"", b"/"),
        (b"GET\r\n", b"/"),
        (b"GET", b""),
        (b"GET", b"/a b"),
        (b"GET", b"/\r\nX: y"),
        (b"GET", b"/\x00"),
        (b"GET", b"/\xff"),
    ],
)
def test_request_line_injection_refused(method: bytes, target: bytes) -> None:
    with pytest.raises(LocalProtocolError):
        serialize_request_head(method, target, [])


@pytest.mark.parametrize(
    ("status", "reason", "version"),
    [
        (200, b"OK\r\nX: y", b"1.1"),
        (200, b"O\nK", b"1.1"),
        (200, b"O\x00K", b"1.1"),
        (99, b"", b"1.1"),
        (1000, b"", b"1.1"),
        (200, b"OK", b"2"),
        (200, b"OK", b"1.1\r\n"),
    ],
)
def test_status_line_injection_refused(status: int, reason: bytes, version: bytes) -> None:
    with pytest.raises(LocalProtocolError):
        serialize_response_head(status, reason, [], version)

"""Fuzzing tlsgate.http: what may escape, and whether the way bytes arrive changes anything.

Three properties, for requests and responses:

1. Whatever the bytes and however they are cut, the only exception is RemoteProtocolError
   (httptools' own errors, IndexError, LocalProtocolError from our own state machine... would
   all be bugs).
2. No ambiguity: an input that parses whole parses identically in any split: same heads, same
   body and trailers per message, same tunnel bytes. An input refused whole is refused split,
   with the same status. A proxy that framed a message differently depending on TCP segment
   boundaries would hand its upstream something other than what it checked.
3. serialize -> parse is the identity on heads with a Content-Length body.

Inputs are arbitrary bytes, and valid pipelined streams (built with our serializers) mutated by
inserting, deleting and replacing bytes biased towards the ones framing is made of.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from itertools import pairwise

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tlsgate.http import (
    Data,
    EndOfMessage,
    Event,
    Headers,
    RemoteProtocolError,
    Request,
    Response,
    chunk,
    last_chunk,
    serialize_request_head,
    serialize_response_head,
)

from .http_helpers import bytewise, feed_pieces, make_parser

# Every test here runs on the compiled parser and on the pure one (tests/http/conftest.py).
pytestmark = pytest.mark.usefixtures("parsers")

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

FRAMING = {b"host", b"content-length", b"transfer-encoding", b"connection", b"upgrade", b"expect"}


@dataclass
class Message:
    head: Request | Response
    body: bytes = b""
    trailers: Headers | None = None  # None: the message did not end


@dataclass
class Outcome:
    messages: list[Message] = field(default_factory=list)
    tunnel: bytes | None = None
    status: int | None = None  # the refusal, if any


def collect(outcome: Outcome, events: list[Event]) -> None:
    for event in events:
        if isinstance(event, Request | Response):
            outcome.messages.append(Message(event))
        elif isinstance(event, Data):
            outcome.messages[-1].body += event.data
        elif isinstance(event, EndOfMessage):
            outcome.messages[-1].trailers = event.trailers
        else:
            outcome.tunnel = event.leftover


def run(pieces: list[bytes], method: bytes | None = None) -> Outcome:
    """Feed ``pieces`` to a request parser (or a response parser expecting ``method``)."""
    outcome = Outcome()
    try:
        collect(outcome, feed_pieces(make_parser(method), pieces, eof=True))
    except RemoteProtocolError as exc:
        outcome.status = exc.status
    return outcome


def cut(data: bytes, points: list[int]) -> list[bytes]:
    edges = sorted({min(p, len(data)) for p in points} | {0, len(data)})
    return [data[a:b] for a, b in pairwise(edges)]


def check_splits(data: bytes, splits: list[list[int]], method: bytes | None = None) -> None:
    whole = run([data], method)
    for points in splits:
        split = run(cut(data, points), method)
        if whole.status is None:
            assert split == whole, (data, points)
        else:
            assert split.status == whole.status, (data, points, whole.status, split.status)
    by_byte = run(bytewise(data), method)
    if whole.status is None:
        assert by_byte == whole, data
    else:
        assert by_byte.status == whole.status, (data, whole.status, by_byte.status)


# -- strategies ----------------------------------------------------------------------------------

TOKEN = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"
names = st.text(TOKEN, min_size=1, max_size=12).map(str.encode)
values = st.text(string.ascii_letters + string.digits + ' ,;=/:\t"()', max_size=16).map(
    lambda v: v.strip(" \t").encode()
)
targets = st.text(string.ascii_letters + string.digits + "/?&=%-._~", max_size=24).map(
    lambda t: b"/" + t.encode()
)
methods = st.sampled_from([b"GET", b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS", b"HEAD"])
fields = st.lists(st.tuples(names, values), max_size=5).map(
    lambda hs: [(n, v) for n, v in hs if n.lower() not in FRAMING]
)
chunks = st.lists(st.binary(min_size=1, max_size=24), max_size=4)
trailers = st.lists(st.tuples(names.map(bytes.lower), values), max_size=2).map(
    lambda hs: [(n, v) for n, v in hs if n not in FRAMING]
)


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    """One valid request: no body, a Content-Length body, or a chunked body with trailers."""
    headers: Headers = [(b"host", b"example.com"), *draw(fields)]
    kind = draw(st.sampled_from(["none", "length", "chunked"]))
    body = b""
    if kind == "length":
        payload = draw(st.binary(max_size=40))
        headers.append((b"content-length", b"%d" % len(payload)))
        body = payload
    elif kind == "chunked":
        headers.append((b"transfer-encoding", b"chunked"))
        body = b"".join(chunk(c) for c in draw(chunks)) + last_chunk(draw(trailers))
    head = serialize_request_head(draw(methods), draw(targets), headers)
    return draw(st.sampled_from([b"", b"\r\n"])) + head + body


@st.composite
def streams(draw: st.DrawFn) -> bytes:
    """Pipelined valid requests, sometimes ended by a close or an upgrade with tunnel bytes."""
    data = b"".join(draw(st.lists(requests(), min_size=1, max_size=4)))
    ending = draw(st.sampled_from(["open", "close", "upgrade"]))
    if ending == "close":
        data += serialize_request_head(
            b"GET", b"/last", [(b"host", b"h"), (b"connection", b"close")]
        )
        data += draw(st.binary(max_size=16))
    elif ending == "upgrade":
        data += serialize_request_head(
            b"GET",
            b"/ws",
            [(b"host", b"h"), (b"connection", b"upgrade"), (b"upgrade", b"websocket")],
        )
        data += draw(st.binary(max_size=16))
    return data


@st.composite
def responses(draw: st.DrawFn) -> bytes:
    """Interim responses, then a final one framed any way a server may."""
    data = b"".join(
        serialize_response_head(draw(st.sampled_from([100, 102, 103])), b"", draw(fields))
        for _ in range(draw(st.integers(0, 2)))
    )
    status = draw(st.sampled_from([200, 201, 204, 301, 304, 404, 500, 101]))
    headers: Headers = list(draw(fields))
    body = b""
    kind = draw(st.sampled_from(["length", "chunked", "close"]))
    if status == 101:
        headers += [(b"connection", b"upgrade"), (b"upgrade", b"websocket")]
    elif kind == "length":
        payload = draw(st.binary(max_size=40))
        headers.append((b"content-length", b"%d" % len(payload)))
        body = payload
    elif kind == "chunked":
        headers.append((b"transfer-encoding", b"chunked"))
        body = b"".join(chunk(c) for c in draw(chunks)) + last_chunk(draw(trailers))
    else:
        body = draw(st.binary(max_size=40))
    junk = draw(st.one_of(st.just(b""), st.binary(max_size=8)))  # after the end: refused
    return data + serialize_response_head(status, b"", headers) + body + junk


INTERESTING = st.sampled_from(list(b"\r\n \t:;,0123456789abcdefABCDEF\x00\x0b\x7f\xff-"))


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[bytes]) -> bytes:
    data = bytearray(draw(base))
    for _ in range(draw(st.integers(1, 3))):
        # sampled_from spreads positions over the whole input; integers() favours the start,
        # where nearly every mutation just breaks the method
        where = draw(st.sampled_from(range(len(data) + 1)))
        byte = draw(st.one_of(INTERESTING, st.integers(0, 255)))
        operation = draw(st.sampled_from(["insert", "delete", "replace"]))
        if operation == "insert" or not data:
            data[where:where] = bytes([byte])
        elif operation == "delete":
            del data[min(where, len(data) - 1)]
        else:
            data[min(where, len(data) - 1)] = byte
    return bytes(data)


splits = st.lists(st.lists(st.integers(0, 400), max_size=6), min_size=1, max_size=3)
expected = st.sampled_from([b"GET", b"HEAD", b"POST"])

# -- properties ----------------------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=300), splits)
def test_arbitrary_bytes_only_raise_remote_errors(data: bytes, cuts: list[list[int]]) -> None:
    check_splits(data, cuts)
    check_splits(data, cuts, method=b"GET")


@FUZZ
@given(st.binary(max_size=120), splits)
def test_arbitrary_bytes_after_a_request_line(data: bytes, cuts: list[list[int]]) -> None:
    check_splits(b"POST / HTTP/1.1\r\nHost: h\r\n" + data, cuts)


@FUZZ
@given(streams(), splits)
def test_valid_streams_parse_the_same_in_any_split(data: bytes, cuts: list[list[int]]) -> None:
    whole = run([data])
    assert whole.status is None, data
    assert all(m.trailers is not None for m in whole.messages)
    check_splits(data, cuts)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(streams()), splits)
def test_mutated_streams_are_never_ambiguous(data: bytes, cuts: list[list[int]]) -> None:
    check_splits(data, cuts)


@FUZZ
@given(responses(), expected, splits)
def test_responses_parse_the_same_in_any_split(
    data: bytes, method: bytes, cuts: list[list[int]]
) -> None:
    check_splits(data, cuts, method)


@FUZZ
@given(mutated(responses()), expected, splits)
def test_mutated_responses_are_never_ambiguous(
    data: bytes, method: bytes, cuts: list[list[int]]
) -> None:
    check_splits(data, cuts, method)


@FUZZ
@given(
    methods,
    targets,
    st.lists(st.tuples(names.map(bytes.lower), values), max_size=8),
    st.binary(max_size=64),
)
def test_serialize_then_parse_is_identity(
    method: bytes, target: bytes, extra: Headers, body: bytes
) -> None:
    headers: Headers = [(b"host", b"example.com")]
    headers += [(n, v) for n, v in extra if n not in FRAMING]
    headers.append((b"content-length", b"%d" % len(body)))
    outcome = run([serialize_request_head(method, target, headers) + body])
    assert outcome.status is None
    assert len(outcome.messages) == 1
    message = outcome.messages[0]
    head = message.head
    assert isinstance(head, Request)
    assert (head.method, head.target, head.version) == (method, target, b"1.1")
    assert head.headers == headers
    assert head.content_length == len(body)
    assert (message.body, message.trailers) == (body, [])

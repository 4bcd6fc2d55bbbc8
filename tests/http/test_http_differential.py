"""The compiled parser against its reference: the same bytes, the same events or the same refusal.

``tlsgate.http._fast`` reimplements framing in C loops, with llhttp's rules written out by hand;
``request.py``/``response.py`` drive llhttp itself. Each example here is cut at random points and
fed, piece by piece, to both. The events must be equal once adjacent Data events are merged (the
compiled parser may cut a body elsewhere; nothing else may differ), or both must refuse with the
same status (the compiled parser may notice a few refusals later in the stream, e.g. at the end of
a header line rather than at its bad byte, so the events before a refusal are not compared).

Inputs: realistic messages (heads with the framing headers in their valid and odd spellings,
Content-Length and chunked bodies with extensions and trailers, pipelining, upgrades, absolute-form
targets, interim and HEAD responses), then mutated (bytes flipped, CR/LF/space/tab/colon inserted,
header lines duplicated, bytes deleted), and plain random bytes.

The compiled-only fuzz test at the end: whatever the bytes and cuts, nothing but
RemoteProtocolError escapes, and a refused parser stays refused with the same error.
"""

from __future__ import annotations

import string
from itertools import pairwise

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tlsgate.http import (
    Data,
    Event,
    Headers,
    Limits,
    LocalProtocolError,
    RemoteProtocolError,
    Upgraded,
    last_chunk,
)

from .conftest import implementation

DIFF = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

Outcome = tuple[list[Event], int | None]


def merged(events: list[Event]) -> list[Event]:
    out: list[Event] = []
    for event in events:
        if isinstance(event, Data):
            if not event.data:
                continue
            if out and isinstance(out[-1], Data):
                out[-1] = Data(out[-1].data + event.data)
                continue
        out.append(event)
    return out


def outcome(
    name: str, pieces: list[bytes], method: bytes | None, limits: Limits, skip: bool = False
) -> Outcome:
    """Events (merged) and the refusal's status, from implementation ``name``. With ``skip``,
    whatever part of each piece a Content-Length body still expects goes through ``skip_body``
    (as the compiled proxy relays a body from its read buffer), put back in the events as the
    Data it stands for."""
    request_parser, response_parser = implementation(name)
    parser = request_parser(limits) if method is None else response_parser(limits)
    if method is not None:
        parser.expect(method)
    events: list[Event] = []
    try:
        for index, whole in enumerate(pieces):
            piece = whole
            left = parser.length_left() if skip else 0
            if left and piece:
                taken = min(left, len(piece))
                events.append(Data(piece[:taken]))
                events += parser.skip_body(taken)
                piece = piece[taken:]
            if piece or not skip:
                events += parser.feed(piece)
            if events and isinstance(events[-1], Upgraded):
                events[-1] = Upgraded(events[-1].leftover + b"".join(pieces[index + 1 :]))
                return merged(events), None
        events += parser.feed_eof()
    except RemoteProtocolError as exc:
        return [], exc.status
    return merged(events), None


def cut(data: bytes, points: list[int]) -> list[bytes]:
    edges = sorted({min(p, len(data)) for p in points} | {0, len(data)})
    return [data[a:b] for a, b in pairwise(edges)] or [b""]


def same(
    data: bytes, cuts: list[int], method: bytes | None = None, limits: Limits | None = None
) -> None:
    limits = limits or Limits()
    pieces = cut(data, cuts)
    compiled = outcome("compiled", pieces, method, limits)
    pure = outcome("pure", pieces, method, limits)
    assert compiled == pure, (data, pieces, method)
    if limits == Limits():
        # a split changes nothing (with tiny limits it may: llhttp checks a target's length as
        # each feed ends, so a target over the limit may meet a bad byte first or not)
        whole = outcome("compiled", [data], method, limits)
        assert whole[1] == compiled[1], (data, pieces)
        if whole[1] is None:
            assert whole[0] == compiled[0], (data, pieces)


# -- strategies ----------------------------------------------------------------------------------

TOKEN = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"
names = st.one_of(
    st.sampled_from(
        [
            "Host", "Content-Length", "Transfer-Encoding", "Connection", "Proxy-Connection",
            "Upgrade", "Expect", "Trailer", "TE", "Keep-Alive", "content-length", "HOST",
        ]
    ),
    st.text(TOKEN, min_size=1, max_size=10),
).map(str.encode)  # fmt: skip
odd_values = st.sampled_from(
    [
        b"chunked", b"Chunked", b"gzip, chunked", b"chunked, gzip", b"chunked ", b"chunked\t",
        b"chunked,", b" chunked", b"identity", b"", b"0", b"5", b"00", b"+1", b"1,1", b"1 ",
        b"close", b"keep-alive", b"upgrade", b"Upgrade, keep-alive", b"close, upgrade",
        b"websocket", b"h2c", b"100-continue", b"example.com", b"a, b", b"\xc3\xa9",
    ]
)  # fmt: skip
values = st.one_of(
    odd_values,
    st.text(string.ascii_letters + string.digits + ' ,;=/:\t"()', max_size=12).map(str.encode),
)
headers = st.lists(st.tuples(names, values), max_size=6)
methods = st.sampled_from(
    [b"GET", b"POST", b"PUT", b"HEAD", b"OPTIONS", b"DELETE", b"PRI", b"CONNECT", b"FOO",
     b"get", b"DESCRIBE", b"SOURCE", b"M-SEARCH", b"QUERY"]
)  # fmt: skip
targets = st.one_of(
    st.text(string.ascii_letters + string.digits + "/?&=%-._~#", max_size=16).map(
        lambda t: b"/" + t.encode()
    ),
    st.sampled_from(
        [b"*", b"http://a.example/x", b"https://a.example:8443", b"http://u@a/", b"a.example:443",
         b"ftp://a/", b"http://[::1]/", b"/HTTP/1.1"]
    ),
)  # fmt: skip
versions = st.sampled_from([b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"RTSP/1.0", b""])
extensions = st.sampled_from([b"", b";a", b";a=b", b';a="b c"', b";a=b;c", b';q="\\"x"', b"; a"])


@st.composite
def bodies(draw: st.DrawFn, framing: Headers) -> bytes:
    """A body for whatever framing the head says (or not quite), perhaps with trailers."""
    codings = [v for n, v in framing if n.lower() == b"transfer-encoding"]
    if codings and b"chunked" in codings[-1].lower():
        parts = draw(st.lists(st.binary(min_size=1, max_size=12), max_size=3))
        body = b"".join(
            b"%x%s\r\n%s\r\n" % (len(p), draw(extensions), p) for p in parts
        )  # fmt: skip
        return body + last_chunk(draw(st.lists(st.tuples(names, values), max_size=2)))
    return draw(st.binary(max_size=12))


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    fields = draw(headers)
    if draw(st.booleans()):
        fields.insert(0, (b"Host", b"example.com"))
    line = draw(methods) + b" " + draw(targets)
    version = draw(versions)
    line += b" " + version if version else b""
    head = line + b"\r\n" + b"".join(n + b": " + v + b"\r\n" for n, v in fields) + b"\r\n"
    return draw(st.sampled_from([b"", b"\r\n"])) + head + draw(bodies(fields))


@st.composite
def request_streams(draw: st.DrawFn) -> bytes:
    return b"".join(draw(st.lists(requests(), min_size=1, max_size=3))) + draw(
        st.sampled_from([b"", b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", b"\x81\x05hello"])
    )


@st.composite
def responses(draw: st.DrawFn) -> bytes:
    data = b""
    for _ in range(draw(st.integers(0, 3))):
        status = draw(st.sampled_from([100, 101, 102, 103, 150, 199, 200, 204, 304, 404, 99]))
        fields = draw(headers)
        version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.0", b"ICE/1.0"]))
        reason = draw(st.sampled_from([b" OK", b"", b" ", b" Not \x01 Found"]))
        data += version + b" %d" % status + reason + b"\r\n"
        data += b"".join(n + b": " + v + b"\r\n" for n, v in fields) + b"\r\n"
        data += draw(bodies(fields))
    return data


INTERESTING = st.sampled_from(list(b'\r\n \t:;,0123456789abcdefABCDEF\x00\x0b\x7f\xff-"\\'))


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[bytes]) -> bytes:
    data = bytearray(draw(base))
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(range(len(data) + 1)))
        operation = draw(st.sampled_from(["insert", "delete", "replace", "flip", "duplicate"]))
        byte = draw(st.one_of(INTERESTING, st.integers(0, 255)))
        if operation == "insert" or not data:
            data[where:where] = bytes([byte])
        elif operation == "delete":
            del data[min(where, len(data) - 1)]
        elif operation == "replace":
            data[min(where, len(data) - 1)] = byte
        elif operation == "flip":
            data[min(where, len(data) - 1)] ^= 1 << draw(st.integers(0, 7))
        else:  # the header line around ``where``, twice
            start = data.rfind(b"\n", 0, where) + 1
            end = data.find(b"\n", where)
            if end > start:
                data[start:start] = data[start : end + 1]
    return bytes(data)


splits = st.lists(st.integers(0, 300), max_size=8)
expected = st.sampled_from([b"GET", b"HEAD", b"POST"])

# -- properties ----------------------------------------------------------------------------------


@DIFF
@given(request_streams(), splits)
def test_requests(data: bytes, cuts: list[int]) -> None:
    same(data, cuts)


@DIFF
@given(mutated(request_streams()), splits)
def test_mutated_requests(data: bytes, cuts: list[int]) -> None:
    same(data, cuts)


@DIFF
@given(responses(), expected, splits)
def test_responses(data: bytes, method: bytes, cuts: list[int]) -> None:
    same(data, cuts, method)


@DIFF
@given(mutated(responses()), expected, splits)
def test_mutated_responses(data: bytes, method: bytes, cuts: list[int]) -> None:
    same(data, cuts, method)


@DIFF
@given(st.binary(max_size=200), splits, st.sampled_from([None, b"GET", b"HEAD"]))
def test_random_bytes(data: bytes, cuts: list[int], method: bytes | None) -> None:
    same(data, cuts, method)


small_limits = st.builds(
    Limits,
    max_header_bytes=st.integers(20, 400),
    max_headers=st.integers(0, 6),
    max_target_bytes=st.integers(1, 40),
    max_body_bytes=st.one_of(st.none(), st.integers(0, 30)),
)


@DIFF
@given(mutated(request_streams()), splits, small_limits)
def test_small_limits(data: bytes, cuts: list[int], limits: Limits) -> None:
    """Which refusal comes first (a bad byte, or a limit) is the same in both."""
    same(data, cuts, limits=limits)


@DIFF
@given(st.one_of(responses(), mutated(responses())), expected, splits, small_limits)
def test_small_limits_responses(
    data: bytes, method: bytes, cuts: list[int], limits: Limits
) -> None:
    same(data, cuts, method, limits)


def exchanges(name: str, answers: list[tuple[bytes, bytes]], cuts: list[int]) -> Outcome:
    """One upstream connection: each request's method told to the parser, then its answer."""
    parser = implementation(name)[1]()
    events: list[Event] = []
    try:
        for method, answer in answers:
            if not parser.reusable:
                break
            parser.expect(method)
            for piece in cut(answer, cuts):
                events += parser.feed(piece)
                if events and isinstance(events[-1], Upgraded):
                    return merged(events), None
        events += parser.feed_eof()
    except RemoteProtocolError as exc:
        return [], exc.status
    return merged(events), None


@DIFF
@given(st.lists(st.tuples(expected, st.one_of(responses(), mutated(responses())))), splits)
def test_response_sequences(answers: list[tuple[bytes, bytes]], cuts: list[int]) -> None:
    """A pooled upstream connection: what one response leaves behind must not change how the
    next is read (llhttp is kept across responses with a body, replaced after the others)."""
    assert exchanges("compiled", answers, cuts) == exchanges("pure", answers, cuts), answers


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\nHost: a\r\nProxy-Connection: close\r\n\r\nGET / HTTP/1.1\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\nleft",
        b"POST / HTTP/1.1\r\nHost: a\r\nProxy-Connection: upgrade\r\nUpgrade: x\r\n\r\n"
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"GET http://a.example:80/p?q HTTP/1.1\r\nHost: other\r\n\r\n",
    ],
)
def test_known_corners(data: bytes) -> None:
    """llhttp's less obvious rules (it closes after Proxy-Connection: close or a Connection
    trailer and refuses what follows; Proxy-Connection: upgrade upgrades), byte by byte too."""
    for cuts in ([], list(range(len(data)))):
        same(data, cuts)


# -- the compiled parser alone -------------------------------------------------------------------


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(st.binary(max_size=400), mutated(request_streams()), mutated(responses())),
    splits,
    st.sampled_from([None, b"GET", b"HEAD"]),
)
def test_compiled_raises_only_remote_errors(
    data: bytes, cuts: list[int], method: bytes | None
) -> None:
    request_parser, response_parser = implementation("compiled")
    parser = request_parser() if method is None else response_parser()
    if method is not None:
        parser.expect(method)
    try:
        for piece in cut(data, cuts):
            events = parser.feed(piece)
            if events and isinstance(events[-1], Upgraded):
                with pytest.raises(LocalProtocolError):  # a tunnel now: feeding is our bug
                    parser.feed(b"x")
                return
        parser.feed_eof()
    except RemoteProtocolError as exc:
        with pytest.raises(RemoteProtocolError) as again:
            parser.feed(b"x")
        assert again.value is exc
        with pytest.raises(RemoteProtocolError) as again:
            parser.feed_eof()
        assert again.value is exc


# -- skip_body: a Content-Length body counted, not copied ------------------------------------------


def same_when_skipping(
    data: bytes, cuts: list[int], method: bytes | None, limits: Limits | None = None
) -> None:
    limits = limits or Limits()
    pieces = cut(data, cuts)
    reference = outcome("pure", pieces, method, limits)
    for name in ("compiled", "pure"):
        assert outcome(name, pieces, method, limits, skip=True) == reference, (name, pieces)


@st.composite
def length_responses(draw: st.DrawFn) -> bytes:
    """One to three responses with well-formed Content-Length bodies (so that every example
    has bodies to skip), perhaps an interim response first."""
    data = draw(st.sampled_from([b"", b"HTTP/1.1 100 Continue\r\n\r\n"]))
    for _ in range(draw(st.integers(1, 3))):
        body = draw(st.binary(min_size=1, max_size=64))
        data += b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
    return data


@DIFF
@given(
    st.one_of(responses(), length_responses()),
    expected,
    splits,
    st.one_of(st.none(), st.integers(0, 30)),
)
def test_skipped_response_bodies(
    data: bytes, method: bytes, cuts: list[int], max_body: int | None
) -> None:
    same_when_skipping(data, cuts, method, Limits(max_body_bytes=max_body))


@DIFF
@given(request_streams(), splits)
def test_skipped_request_bodies(data: bytes, cuts: list[int]) -> None:
    same_when_skipping(data, cuts, None)


@pytest.mark.parametrize("name", ["compiled", "pure"])
def test_skip_body_only_inside_a_length_body(name: str) -> None:
    _request_parser, response_parser = implementation(name)
    parser = response_parser(Limits())
    parser.expect(b"GET")
    assert parser.length_left() == 0
    with pytest.raises(LocalProtocolError):
        parser.skip_body(1)  # before the head
    assert parser.feed(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc")[1:] == [Data(b"abc")]
    assert parser.length_left() == 7
    with pytest.raises(LocalProtocolError):
        parser.skip_body(8)  # past the end
    with pytest.raises(LocalProtocolError):
        parser.skip_body(0)
    assert parser.skip_body(6) == []
    assert parser.length_left() == 1
    (end,) = parser.skip_body(1)
    assert type(end).__name__ == "EndOfMessage"
    assert parser.length_left() == 0 and parser.reusable

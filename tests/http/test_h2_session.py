"""The HTTP/2 server session, both twins (libnghttp2 in ``_h2.pyx``, the ``h2`` package in
``PureH2Session``), driven by a real client in memory (``h2_helpers``).

What one twin does, the other must: the same events for the same exchange, the same flood
budgets, the same graceful GOAWAY. Where they differ by design, the test says which twin does
what: a malformed request (RFC 9113 section 8) is a stream error for nghttp2 (RST_STREAM, the
connection lives on) and a connection error for ``h2`` (GOAWAY); a header list over the limit
likewise. Gaps of the pure twin are ``xfail`` on that twin only, with the reason.
"""

from __future__ import annotations

import tracemalloc

import h2.events
import pytest
from hyperframe.frame import DataFrame

from tlsgate.http.events import Headers
from tlsgate.http.h2_events import (
    CANCEL,
    ENHANCE_YOUR_CALM,
    INTERNAL_ERROR,
    NO_ERROR,
    PROTOCOL_ERROR,
    REFUSED_STREAM,
    ConnectionEnded,
    DataReceived,
    H2Event,
    H2Settings,
    RequestReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)

from .h2_helpers import REQUEST, TWINS, Pair, Raw, frames, new_session, refusals

POST: Headers = [(b":method", b"POST"), *REQUEST[1:]]


@pytest.fixture(params=TWINS)
def twin(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


def of(events: list[H2Event], stream_id: int) -> list[H2Event]:
    return [e for e in events if getattr(e, "stream_id", None) == stream_id]


def pure_gap(reason: str) -> pytest.MarkDecorator:
    return pytest.mark.xfail(reason=f"pure twin (h2): {reason}", strict=True)


# -- exchanges ---------------------------------------------------------------------------------


def test_get_and_post_with_body(twin: str) -> None:
    pair = Pair(twin)
    pair.request(1)
    pair.request(3, POST, end=False)
    pair.client.send_data(3, b"hello ")
    pair.client.send_data(3, b"world", end_stream=True)
    pair.pump()
    assert of(pair.events, 1) == [RequestReceived(1, REQUEST), StreamEnded(1)]
    post = of(pair.events, 3)
    assert post[0] == RequestReceived(3, POST)
    assert b"".join(e.data for e in post if isinstance(e, DataReceived)) == b"hello world"
    assert post[-1] == StreamEnded(3)
    assert pair.server.open_streams == 2
    for sid in (1, 3):
        pair.server.respond(sid, 200, [(b"content-type", b"text/plain")], False)
        pair.server.send_data(sid, b"answer %d" % sid, True)
    pair.pump()
    responses = [e for e in pair.client_events if isinstance(e, h2.events.ResponseReceived)]
    head = [(b":status", b"200"), (b"content-type", b"text/plain")]
    assert [e.headers for e in responses] == [head, head]
    bodies = {
        e.stream_id: e.data for e in pair.client_events if isinstance(e, h2.events.DataReceived)
    }
    assert bodies == {1: b"answer 1", 3: b"answer 3"}
    assert pair.server.open_streams == 0


def test_response_without_body(twin: str) -> None:
    pair = Pair(twin)
    pair.request(1)
    pair.pump()
    pair.server.respond(1, 204, [], True)
    pair.server.send_data(1, b"ignored", True)  # the stream has ended: a no-op
    pair.pump()
    ended = [e for e in pair.client_events if isinstance(e, h2.events.StreamEnded)]
    assert [e.stream_id for e in ended] == [1]
    assert not [e for e in pair.client_events if isinstance(e, h2.events.DataReceived)]
    assert pair.server.open_streams == 0


def test_large_response_moves_with_the_windows(twin: str) -> None:
    """1 MiB queued at once leaves as the client's windows open: buffered() falls step by
    step, WindowUpdated tells the edge, and the client gets every byte once."""
    pair = Pair(twin)
    pair.request(1)
    pair.pump()
    body = bytes(range(256)) * 4096
    pair.server.respond(1, 200, [], False)
    pair.server.send_data(1, body, True)
    sizes = [pair.server.buffered(1)]
    assert sizes[0] == len(body) - 65_535  # the client's initial windows
    received = bytearray()
    updates = 0
    for _ in range(1000):
        for event in pair.to_client():
            if isinstance(event, h2.events.DataReceived):
                received += event.data
                pair.client.acknowledge_received_data(event.flow_controlled_length, 1)
        updates += sum(isinstance(e, WindowUpdated) for e in pair.to_server())
        sizes.append(pair.server.buffered(1))
        if sizes[-1] == 0 and len(received) == len(body):
            break
    assert bytes(received) == body
    assert sizes == sorted(sizes, reverse=True) and sizes[-1] == 0
    assert len(set(sizes)) > 5
    assert updates > 0
    pair.pump()
    assert any(isinstance(e, h2.events.StreamEnded) for e in pair.client_events)
    assert pair.server.open_streams == 0


def test_trailers_both_ways(twin: str) -> None:
    pair = Pair(twin)
    pair.request(1, POST, end=False)
    pair.client.send_data(1, b"body")
    pair.client.send_headers(1, [(b"x-checksum", b"abc")], end_stream=True)
    pair.pump()
    trailers = TrailersReceived(1, [(b"x-checksum", b"abc")])
    assert of(pair.events, 1)[-2:] == [trailers, StreamEnded(1)]
    pair.server.respond(1, 200, [], False)
    pair.server.send_data(1, b"answer", False)
    pair.server.send_trailers(1, [(b"grpc-status", b"0")])
    pair.pump()
    kinds = [type(e).__name__ for e in pair.client_events if getattr(e, "stream_id", 0) == 1]
    assert kinds == ["ResponseReceived", "DataReceived", "TrailersReceived", "StreamEnded"]
    sent = [e for e in pair.client_events if isinstance(e, h2.events.TrailersReceived)]
    assert sent[0].headers == [(b"grpc-status", b"0")]
    assert pair.server.open_streams == 0


def test_trailers_right_after_the_head(twin: str) -> None:
    pair = Pair(twin)
    pair.request(1)
    pair.pump()
    pair.server.respond(1, 200, [], False)
    pair.server.send_trailers(1, [(b"grpc-status", b"0")])
    pair.pump()
    kinds = [type(e).__name__ for e in pair.client_events if getattr(e, "stream_id", 0) == 1]
    assert kinds[0] == "ResponseReceived" and kinds[-2:] == ["TrailersReceived", "StreamEnded"]


def test_informational_then_final(twin: str) -> None:
    pair = Pair(twin)
    pair.request(1)
    pair.pump()
    pair.server.respond(1, 103, [(b"link", b"</style.css>; rel=preload")], False)
    pair.server.respond(1, 200, [], False)
    pair.server.send_data(1, b"ok", True)
    pair.pump()
    kinds = [type(e).__name__ for e in pair.client_events if getattr(e, "stream_id", 0) == 1]
    assert kinds == [
        "InformationalResponseReceived",
        "ResponseReceived",
        "DataReceived",
        "StreamEnded",
    ]


def test_consumed_reopens_the_clients_window(twin: str) -> None:
    """The client may send only what the edge has handed on: without consumed() its window
    stays shut."""
    pair = Pair(twin, H2Settings(initial_window_size=1000))
    pair.pump()
    pair.request(1, POST, end=False)
    pair.client.send_data(1, b"x" * 1000)
    pair.pump()
    assert pair.client.local_flow_control_window(1) == 0
    data = [e for e in pair.events if isinstance(e, DataReceived)]
    assert sum(len(e.data) for e in data) == sum(e.flow_length for e in data) == 1000
    pair.pump()
    assert pair.client.local_flow_control_window(1) == 0
    for event in data:
        pair.server.consumed(1, event.flow_length)
    pair.pump()
    assert pair.client.local_flow_control_window(1) > 0
    pair.client.send_data(1, b"y" * 500, end_stream=True)
    pair.pump()
    assert of(pair.events, 1)[-1] == StreamEnded(1)
    assert sum(len(e.data) for e in pair.events if isinstance(e, DataReceived)) == 1500


def test_client_reset_mid_response(twin: str) -> None:
    pair = Pair(twin)
    pair.request(1)
    pair.pump()
    pair.server.respond(1, 200, [], False)
    pair.server.send_data(1, b"z" * 200_000, False)
    pair.to_client()
    assert pair.server.buffered(1) > 0
    pair.client.reset_stream(1, CANCEL)
    assert pair.to_server() == [StreamReset(1, CANCEL, True)]
    assert pair.server.buffered(1) == 0
    assert pair.server.open_streams == 0
    pair.server.send_data(1, b"more", True)  # the edge answers a stream just reset: no-op
    pair.server.respond(1, 200, [], True)
    assert not [f for f in frames(pair.server.data_to_send()) if f.stream_id == 1]


def test_graceful_goaway(twin: str) -> None:
    """GOAWAY(NO_ERROR) names the last stream; that one finishes, a later one is refused
    (REFUSED_STREAM: safe to retry) and never reaches the edge."""
    pair = Pair(twin)
    pair.request(1)
    pair.pump()
    pair.server.goaway()
    assert pair.server.ended
    pair.request(3)  # sent before the client saw the GOAWAY
    assert pair.to_server() == []
    wire = pair.server.data_to_send()
    assert ("GOAWAY", 1, NO_ERROR) in refusals(wire)
    assert ("RST", 3, REFUSED_STREAM) in refusals(wire)
    pair.server.respond(1, 200, [], False)
    pair.server.send_data(1, b"done", True)
    sent = [f for f in frames(pair.server.data_to_send()) if f.stream_id == 1]
    assert [type(f).__name__ for f in sent] == ["HeadersFrame", "DataFrame"]
    assert isinstance(sent[-1], DataFrame)
    assert sent[-1].data == b"done" and "END_STREAM" in sent[-1].flags
    assert pair.server.open_streams == 0
    assert not of(pair.events, 3)


def test_goaway_with_an_error_ends_the_session(twin: str) -> None:
    pair = Pair(twin)
    pair.request(1)
    pair.pump()
    pair.server.goaway(INTERNAL_ERROR)
    assert pair.server.ended
    assert ("GOAWAY", 1, INTERNAL_ERROR) in refusals(pair.server.data_to_send())
    pair.request(3)
    assert pair.to_server() == []


def test_client_goaway(twin: str) -> None:
    pair = Pair(twin)
    pair.pump()
    pair.client.close_connection()
    assert pair.to_server() == [ConnectionEnded(NO_ERROR, 0, True, "client GOAWAY")]
    assert pair.server.ended


def test_bad_preface_ends_the_connection(twin: str) -> None:
    session = new_session(twin)
    events = session.receive(b"GET / HTTP/1.1\r\nHost: a.example\r\n\r\n", 0.0)
    assert isinstance(events[-1], ConnectionEnded)
    assert (events[-1].error_code, events[-1].remote) == (PROTOCOL_ERROR, False)
    # RFC 9113 3.4: the GOAWAY MAY be omitted (the peer does not speak HTTP/2); h2 omits it.
    goaways = [r for r in refusals(session.data_to_send()) if r[0] == "GOAWAY"]
    assert goaways == ([("GOAWAY", 0, PROTOCOL_ERROR)] if twin == "compiled" else [])
    assert session.ended and session.receive(b"more", 1.0) == []


def test_calls_on_unknown_streams_are_noops(twin: str) -> None:
    pair = Pair(twin)
    pair.pump()
    server = pair.server
    server.respond(7, 200, [], False)
    server.send_data(7, b"x", True)
    server.send_trailers(7, [(b"a", b"b")])
    server.reset(7, CANCEL)
    server.consumed(7, 100)
    assert server.buffered(7) == 0
    assert not [f for f in frames(server.data_to_send()) if f.stream_id == 7]


# -- floods ------------------------------------------------------------------------------------


def assert_calm(events: list[H2Event], wire: bytes, reason: str) -> None:
    """The connection ended for a flood: ConnectionEnded last, its GOAWAY on the wire."""
    last = events[-1]
    assert isinstance(last, ConnectionEnded), events[-3:]
    assert (last.error_code, last.remote, last.reason) == (ENHANCE_YOUR_CALM, False, reason)
    assert [r for r in refusals(wire) if r[0] == "GOAWAY"] == [
        ("GOAWAY", last.last_stream_id, ENHANCE_YOUR_CALM)
    ]


def test_rapid_reset(twin: str) -> None:
    """CVE-2023-44487: streams opened and reset at once, past the budget."""
    pair = Pair(twin, H2Settings(reset_burst=10, resets_per_second=1.0))
    pair.pump()
    for sid in range(1, 41, 2):
        pair.request(sid)
        pair.client.reset_stream(sid, CANCEL)
    events = pair.to_server()
    reason = "too many streams reset by the client (rapid reset)"
    assert_calm(events, pair.server.data_to_send(), reason)
    assert sum(isinstance(e, StreamReset) for e in events) == 10  # the budget, then the end
    assert pair.server.ended
    assert pair.server.receive(b"\x00" * 9, 1.0) == []


def test_resets_within_the_budget_refill(twin: str) -> None:
    pair = Pair(twin, H2Settings(reset_burst=5, resets_per_second=1.0))
    pair.pump()
    sid = 1
    for second in range(20):  # one reset a second, forever: fine
        pair.now = float(second)
        pair.request(sid)
        pair.client.reset_stream(sid, CANCEL)
        assert of(pair.to_server(), sid)[-1] == StreamReset(sid, CANCEL, True)
        sid += 2
    assert not pair.server.ended


@pytest.mark.parametrize("kind", ["PING", "SETTINGS", "PRIORITY", "unknown"])
def test_idle_frame_flood(twin: str, kind: str) -> None:
    session = new_session(twin, H2Settings(idle_frame_burst=20, idle_frames_per_second=1.0))
    raw = Raw()
    events = session.receive(raw.preface() + raw.idle(kind, 15), 0.0)  # (the preface's SETTINGS: 1)
    assert not session.ended and not events
    events = session.receive(raw.idle(kind, 15), 0.0)
    assert_calm(events, session.data_to_send(), f"too many {kind} frames")


def test_idle_frames_within_the_budget_refill(twin: str) -> None:
    session = new_session(twin, H2Settings(idle_frame_burst=5, idle_frames_per_second=2.0))
    raw = Raw()
    session.receive(raw.preface(), 0.0)
    for second in range(30):
        assert session.receive(raw.idle("PING", 2), float(second)) == []
    assert not session.ended


def test_empty_data_flood(twin: str) -> None:
    session = new_session(twin, H2Settings(idle_frame_burst=20, idle_frames_per_second=1.0))
    raw = Raw()
    data = raw.preface() + raw.headers(1, POST, end_stream=False)
    events = session.receive(data + raw.data(1, b"") * 30, 0.0)
    assert events[0] == RequestReceived(1, POST)
    assert_calm(events, session.data_to_send(), "too many empty DATA frames")


def continuation_flood(twin: str, settings: H2Settings, frames_sent: int) -> tuple[int, bytes, int]:
    """HEADERS then CONTINUATION frames that never end the block, one per receive(), 1 KiB of
    header fields each: how many were taken before the session ended, the wire, and the peak
    of memory allocated meanwhile (Python's: nghttp2 decodes as it goes and keeps nothing)."""
    session = new_session(twin, settings)
    raw = Raw()
    session.receive(raw.preface(), 0.0)
    block = raw.block([*REQUEST, *[(b"x-f%d" % i, b"v" * 60) for i in range(2000)]])
    pieces = [block[i : i + 1024] for i in range(0, len(block), 1024)]
    assert len(pieces) >= frames_sent
    wire = b""
    taken = frames_sent
    tracemalloc.start()
    try:
        for i, piece in enumerate(pieces[:frames_sent]):
            if i == 0:
                frame = raw.headers(1, piece, end_headers=False)
            else:
                frame = raw.continuation(1, piece)
            events = session.receive(frame, 0.0)
            wire += session.data_to_send()
            assert not [e for e in events if isinstance(e, RequestReceived)]
            if session.ended:
                assert isinstance(events[-1], ConnectionEnded)
                taken = i + 1
                break
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return taken, wire, peak - len(wire)


def test_continuation_flood(twin: str) -> None:
    """CVE-2024-28182: the session ends, and what it keeps stays bounded meanwhile."""
    taken, wire, peak = continuation_flood(twin, H2Settings(), 100)
    assert taken < 100
    assert peak < 256 * 1024
    code = ENHANCE_YOUR_CALM if twin == "compiled" else PROTOCOL_ERROR  # h2: its own bound
    assert [r[2] for r in refusals(wire) if r[0] == "GOAWAY"] == [code]


@pytest.mark.parametrize(
    "which",
    [
        "compiled",
        pytest.param("pure", marks=pure_gap("h2 bounds a header block at 64 CONTINUATION frames "
                                            "(CONTINUATION_BACKLOG), not max_header_frames")),
    ],
)  # fmt: skip
def test_max_header_frames_is_the_bound(which: str) -> None:
    settings = H2Settings(max_header_frames=8)
    taken, _, _ = continuation_flood(which, settings, 50)
    assert taken == settings.max_header_frames + 1  # the frame past the bound ends it


def test_header_block_over_the_size_limit_is_not_kept(twin: str) -> None:
    """With no frame bound to stop it, a header block past max_header_list_size is dropped as
    it arrives (the stream is reset, or the connection ended)."""
    settings = H2Settings(max_header_frames=10_000, max_header_list_size=16 * 1024)
    taken, wire, peak = continuation_flood(twin, settings, 120)
    assert peak < 256 * 1024
    assert ("RST", 1, ENHANCE_YOUR_CALM) in refusals(wire) or taken < 120


@pytest.mark.parametrize(
    "fields",
    [
        [*REQUEST, (b"x-big", b"a" * 2000)],
        [*REQUEST, *[(b"x-%d" % i, b"v") for i in range(40)]],
    ],
    ids=["one large field", "many fields"],
)
def test_header_list_over_the_limit(twin: str, fields: Headers) -> None:
    """Over max_header_list_size: ENHANCE_YOUR_CALM, on the stream (nghttp2: the connection
    lives on) or on the connection (h2)."""
    pair = Pair(twin, H2Settings(max_header_list_size=1000))
    pair.pump()
    pair.request(1, fields)
    events = pair.to_server()
    wire = pair.server.data_to_send()
    assert not of(events, 1)
    seen = refusals(wire)
    if twin == "compiled":
        assert ("RST", 1, ENHANCE_YOUR_CALM) in seen and not pair.server.ended
        pair.request(3)
        assert pair.to_server()[0] == RequestReceived(3, REQUEST)
    else:
        assert ("GOAWAY", 0, ENHANCE_YOUR_CALM) in seen and pair.server.ended


def test_trailers_over_the_limit(twin: str) -> None:
    pair = Pair(twin, H2Settings(max_header_list_size=1000))
    pair.pump()
    pair.request(1, POST, end=False)
    pair.pump()
    pair.client.send_headers(1, [(b"x-big", b"a" * 2000)], end_stream=True)
    events = pair.to_server()
    assert TrailersReceived not in {type(e) for e in events}
    if twin == "compiled":
        assert events == [StreamReset(1, ENHANCE_YOUR_CALM, False)]
    else:
        assert isinstance(events[-1], ConnectionEnded)
        assert events[-1].error_code == ENHANCE_YOUR_CALM


def test_a_flood_of_malformed_requests_ends_the_connection(twin: str) -> None:
    """nghttp2 answers a malformed request with a stream error, which costs the client nothing:
    each one counts against the reset budget, so a flood of them ends like a rapid reset (h2
    ends the connection at the first)."""
    session = new_session(twin, H2Settings(reset_burst=5))
    raw = Raw()
    data = raw.preface() + b"".join(
        raw.headers(sid, [*REQUEST, (b"connection", b"close")]) for sid in range(1, 40, 2)
    )
    events = session.receive(data, 0.0)
    assert not [e for e in events if isinstance(e, RequestReceived)]
    assert isinstance(events[-1], ConnectionEnded) and session.ended
    assert events[-1].error_code == (ENHANCE_YOUR_CALM if twin == "compiled" else PROTOCOL_ERROR)


# -- RFC 9113 section 8: malformed requests --------------------------------------------------

M, S, P, A = REQUEST
MALFORMED: dict[str, Headers] = {
    "upper-case field name": [*REQUEST, (b"X-Upper", b"v")],
    "connection": [*REQUEST, (b"connection", b"close")],
    "keep-alive": [*REQUEST, (b"keep-alive", b"timeout=5")],
    "proxy-connection": [*REQUEST, (b"proxy-connection", b"keep-alive")],
    "transfer-encoding": [*REQUEST, (b"transfer-encoding", b"chunked")],
    "upgrade": [*REQUEST, (b"upgrade", b"websocket")],
    "te other than trailers": [*REQUEST, (b"te", b"gzip")],
    "pseudo-header after a regular field": [M, S, (b"accept", b"*/*"), P, A],
    "duplicated pseudo-header": [M, S, P, P, A],
    "missing :method": [S, P, A],
    "missing :scheme": [M, P, A],
    "missing :path": [M, S, A],
    "empty :path": [M, S, (b":path", b""), A],
    "unknown pseudo-header": [M, S, P, A, (b":foo", b"bar")],
    ":status in a request": [M, S, P, A, (b":status", b"200")],
    "CR in a value": [*REQUEST, (b"x-a", b"b\rc")],
    "LF in a value": [*REQUEST, (b"x-a", b"b\nc")],
    "NUL in a value": [*REQUEST, (b"x-a", b"b\x00c")],
    "space in a name": [*REQUEST, (b"x a", b"b")],
    "colon in a name": [*REQUEST, (b"x:a", b"b")],
    "empty name": [*REQUEST, (b"", b"b")],
    "value with surrounding space": [*REQUEST, (b"x-a", b" b")],
    "Host that differs from :authority": [*REQUEST, (b"host", b"b.example")],
    "content-length without the body": [*POST, (b"content-length", b"5")],
    # RFC 9113 8.3.1: :path is an absolute path (or "*" for OPTIONS), :authority a host.
    ":path not starting with /": [M, S, (b":path", b"index.html"), A],
    "empty :authority": [M, S, P, (b":authority", b"")],
    "space in :authority": [M, S, P, (b":authority", b"a b.example")],
    # RFC 9113 8.2.1: validate against RFC 9110's grammar (tokens; no control characters).
    "space in :method": [(b":method", b"GE T"), S, P, A],
    "control character in a value": [*REQUEST, (b"x-a", b"b\x01c")],
    "DEL in a value": [*REQUEST, (b"x-a", b"b\x7fc")],
    "name that is not a token": [*REQUEST, (b"x/y", b"v")],
}
#: What the pure twin lets through (reported, not hidden): h2 makes RFC 9113 8.2.1's minimal
#: checks (NUL, CR, LF; upper case, controls, space in names) and no RFC 9110 grammar.
PURE_GAPS = {
    "content-length without the body": "a HEADERS frame with END_STREAM and a non-zero "
    "content-length is accepted: h2 checks content-length against DATA frames only",
    ":path not starting with /": "h2 refuses only an empty :path",
    "empty :authority": "h2 accepts an empty :authority (an https URI needs a host)",
    "space in :authority": "h2 does not check :authority's characters",
    "space in :method": "h2 does not check that :method is a token",
    "control character in a value": "h2 refuses only NUL, CR and LF in values",
    "DEL in a value": "h2 refuses only NUL, CR and LF in values",
    "name that is not a token": "h2 refuses only controls, space, upper case, ':' in names",
}


@pytest.mark.parametrize(
    ("which", "case"),
    [
        pytest.param(
            which,
            case,
            id=f"{which}-{case}",
            marks=[pure_gap(PURE_GAPS[case])] if which == "pure" and case in PURE_GAPS else [],
        )
        for case in MALFORMED
        for which in TWINS
    ],
)
def test_malformed_request_is_refused(which: str, case: str) -> None:
    """No RequestReceived, and PROTOCOL_ERROR on the wire: nghttp2 resets the stream (and
    serves the next one), h2 ends the connection."""
    session = new_session(which)
    raw = Raw()
    events = session.receive(raw.preface() + raw.headers(1, MALFORMED[case]), 0.0)
    seen = refusals(session.data_to_send())
    assert not [e for e in events if isinstance(e, RequestReceived)]
    stream_error = ("RST", 1, PROTOCOL_ERROR) in seen
    connection_error = any(r[0] == "GOAWAY" and r[2] == PROTOCOL_ERROR for r in seen)
    assert stream_error or connection_error, seen
    if which == "compiled":
        assert stream_error and not session.ended
        assert session.receive(raw.headers(3, REQUEST), 0.0)[0] == RequestReceived(3, REQUEST)
    else:
        assert connection_error and session.ended
        assert isinstance(events[-1], ConnectionEnded)


def test_te_trailers_is_accepted(twin: str) -> None:
    session = new_session(twin)
    raw = Raw()
    fields = [*REQUEST, (b"te", b"trailers"), (b"host", b"a.example")]
    events = session.receive(raw.preface() + raw.headers(1, fields), 0.0)
    assert events[0] == RequestReceived(1, fields)


@pytest.mark.parametrize(
    ("length", "body"), [(b"5", b"0123456789"), (b"10", b"01234")], ids=["longer", "shorter"]
)
def test_content_length_not_matching_the_data(twin: str, length: bytes, body: bytes) -> None:
    """The head is well formed (it may reach the edge), the body is not: the request never
    completes (no StreamEnded), it is reset or the connection ends."""
    session = new_session(twin)
    raw = Raw()
    fields = [*POST, (b"content-length", length)]
    data = raw.preface() + raw.headers(1, fields, end_stream=False) + raw.data(1, body, True)
    events = session.receive(data, 0.0)
    seen = refusals(session.data_to_send())
    assert StreamEnded(1) not in events
    if twin == "compiled":
        assert events[0] == RequestReceived(1, fields)
        assert events[-1] == StreamReset(1, PROTOCOL_ERROR, False)
        assert ("RST", 1, PROTOCOL_ERROR) in seen and not session.ended
    else:
        assert isinstance(events[-1], ConnectionEnded)
        assert ("GOAWAY", 1, PROTOCOL_ERROR) in seen and session.ended


def test_padding_is_handed_back_too(twin: str) -> None:
    """Padded DATA: consuming every flow_length re-opens the windows for good (nghttp2 hands
    padding back by itself and counts only the data; h2 counts both). A leak would shut the
    client's window within a few rounds; windows re-open in batches, so only that is checked."""
    pair = Pair(twin, H2Settings(initial_window_size=1000))
    pair.pump()
    pair.request(1, POST, end=False)
    sent = 0
    for _ in range(20):
        while pair.client.local_flow_control_window(1) >= 250:
            pair.client.send_data(1, b"p" * 150, pad_length=99)  # 250 flow-controlled bytes
            sent += 150
        pair.pump()
        for event in pair.events:
            if isinstance(event, DataReceived):
                pair.server.consumed(1, event.flow_length)
        pair.events.clear()
        pair.pump()
    assert pair.client.local_flow_control_window(1) >= 500
    assert sent >= 20 * 300


@pytest.mark.compiled_only
def test_an_exception_in_a_callback_does_not_cross_c(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Python error inside an nghttp2 callback is raised by receive() once nghttp2 has
    returned; the session is over (GOAWAY INTERNAL_ERROR queued), and stays so."""
    compiled = pytest.importorskip("tlsgate.http._h2")

    class Broken(RuntimeError):
        pass

    class Guard:
        def __init__(self, settings: H2Settings) -> None:
            pass

        def idle_frame(self, now: float, kind: str) -> str:
            raise Broken(kind)

    monkeypatch.setattr(compiled, "FloodGuard", Guard)
    session = new_session("compiled")
    with pytest.raises(Broken):
        session.receive(Raw().preface(), 0.0)
    assert session.ended
    assert refusals(session.data_to_send()) == [("GOAWAY", 0, INTERNAL_ERROR)]
    assert session.receive(Raw().idle("PING", 1), 1.0) == []
    session.respond(1, 200, [], True)  # a no-op: nghttp2 is not called again
    assert session.data_to_send() == b""


def test_reset_with_no_error_follows_the_complete_response(twin: str) -> None:
    """The upstream answered before the client's body ended: the edge asks the client to stop
    (RST_STREAM NO_ERROR, RFC 9113 8.1) only after the whole response, which a reset sent
    at once would cut (nghttp2 sends RST_STREAM ahead of queued DATA)."""
    pair = Pair(twin)
    pair.request(1, end=False)
    pair.pump()
    body = bytes(range(256)) * 1024  # more than the client's first window
    pair.server.respond(1, 200, [], False)
    pair.server.send_data(1, body, True)
    pair.server.reset(1, 0)
    received = bytearray()
    for _ in range(1000):
        for event in pair.to_client():
            if isinstance(event, h2.events.DataReceived):
                received += event.data
                pair.client.acknowledge_received_data(event.flow_controlled_length, 1)
        pair.to_server()
        if any(isinstance(e, h2.events.StreamReset) for e in pair.client_events):
            break
    assert bytes(received) == body
    ended = [i for i, e in enumerate(pair.client_events) if isinstance(e, h2.events.StreamEnded)]
    resets = [e for e in pair.client_events if isinstance(e, h2.events.StreamReset)]
    assert ended and resets and resets[0].error_code == 0
    assert pair.client_events.index(resets[0]) > ended[0]

"""tlsgate.serve.responder: the framing shared by the admin listener and the demo echo app."""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast

import pytest

from tests.http.http_helpers import bytewise, make_parser
from tlsgate.demo.echo import EchoProtocol, start_echo
from tlsgate.http import Data, EndOfMessage, Limits, Request, Response
from tlsgate.serve.admin import AdminProtocol
from tlsgate.serve.metrics import Metrics
from tlsgate.serve.responder import Responder, response


class FakeTransport:
    """What the protocols use of an asyncio transport: write, close, the peer's address."""

    def __init__(self) -> None:
        self.written = b""
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "written after close"
        self.written += data

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("192.0.2.7", 40000) if name == "peername" else default


class Answers(Responder):
    """Answers with what it saw: the target and how many body bytes came."""

    def __init__(self, limits: Limits | None = None) -> None:
        super().__init__(limits)
        self.seen: list[tuple[bytes, int]] = []

    def respond(self, request: Request, body_bytes: int) -> tuple[int, bytes, bytes]:
        self.seen.append((request.target, body_bytes))
        return 200, b"text/plain", b"%s %d" % (request.target, body_bytes)


def connect(protocol: Responder) -> FakeTransport:
    transport = FakeTransport()
    protocol.connection_made(cast(asyncio.BaseTransport, transport))
    return transport


def serve(protocol: Responder, pieces: list[bytes]) -> FakeTransport:
    transport = connect(protocol)
    for piece in pieces:
        if transport.closed:
            break
        protocol.data_received(piece)
    return transport


def request(head: bytes) -> Request:
    event = make_parser().feed(head)[0]
    assert isinstance(event, Request)
    return event


def head_and_body(data: bytes, method: bytes = b"GET") -> tuple[int, dict[bytes, bytes], bytes]:
    """One whole response, parsed: status, headers, body."""
    events = make_parser(method).feed(data)
    head, end = events[0], events[-1]
    assert isinstance(head, Response) and isinstance(end, EndOfMessage)
    body = b"".join(e.data for e in events if isinstance(e, Data))
    return head.status, dict(head.headers), body


# -- response() ----------------------------------------------------------------------------------


def test_response_has_type_length_and_the_reason_phrase() -> None:
    out = response(request(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"), 200, b"text/plain", b"hi\n")
    assert out == (b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 3\r\n\r\nhi\n")


def test_response_to_a_closing_request_says_close() -> None:
    for head in (
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.0\r\n\r\n",
    ):
        out = response(request(head), 404, b"text/plain", b"")
        assert out == (
            b"HTTP/1.1 404 Not Found\r\ncontent-type: text/plain\r\ncontent-length: 0\r\n"
            b"connection: close\r\n\r\n"
        )


def test_response_to_head_has_the_length_but_no_body() -> None:
    out = response(request(b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n"), 200, b"text/plain", b"12345")
    assert out.endswith(b"content-length: 5\r\n\r\n")
    assert head_and_body(out, b"HEAD") == (
        200,
        {b"content-type": b"text/plain", b"content-length": b"5"},
        b"",
    )


# -- Responder -----------------------------------------------------------------------------------


def test_pipelined_requests_are_answered_in_order_with_their_body_sizes() -> None:
    data = (
        b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
        b"POST /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        b"GET /c HTTP/1.1\r\nHost: h\r\n\r\n"
    )
    for pieces in ([data], bytewise(data)):
        protocol = Answers()
        transport = serve(protocol, pieces)
        assert protocol.seen == [(b"/a", 5), (b"/b", 3), (b"/c", 0)]
        assert transport.written.count(b"HTTP/1.1 200 OK\r\n") == 3
        assert transport.written.endswith(b"\r\n\r\n/c 0")
        assert not transport.closed


def test_a_closing_request_is_the_last_answered() -> None:
    protocol = Answers()
    transport = serve(
        protocol,
        [
            b"GET /a HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
            b"GET /b HTTP/1.1\r\nHost: h\r\n\r\n"
        ],
    )
    assert protocol.seen == [(b"/a", 0)]
    assert transport.closed
    assert b"connection: close\r\n" in transport.written


def test_a_malformed_request_closes_without_an_answer() -> None:
    protocol = Answers()
    transport = serve(protocol, [b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: x\r\n\r\n"])
    assert (transport.written, transport.closed, protocol.seen) == (b"", True, [])


def test_the_head_size_limit_applies() -> None:
    head = b"GET / HTTP/1.1\r\nHost: h\r\nX-Pad: " + b"p" * 200 + b"\r\n\r\n"
    assert serve(Answers(), [head]).written.startswith(b"HTTP/1.1 200")
    transport = serve(Answers(Limits(max_header_bytes=100)), [head])
    assert (transport.written, transport.closed) == (b"", True)


def test_the_hook_must_be_given() -> None:
    with pytest.raises(NotImplementedError):
        serve(Responder(), [b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"])


# -- its users -----------------------------------------------------------------------------------


def test_admin_paths() -> None:
    metrics = Metrics()
    answers = {}
    for target in (b"/metrics?x=1", b"/healthz", b"/other"):
        transport = serve(AdminProtocol(metrics), [b"GET %s HTTP/1.1\r\nHost: h\r\n\r\n" % target])
        answers[target] = head_and_body(transport.written)
    status, headers, body = answers[b"/metrics?x=1"]
    assert (status, headers[b"content-type"]) == (200, b"text/plain; version=0.0.4; charset=utf-8")
    assert b"tlsgate_requests" in body
    assert answers[b"/healthz"] == (
        200,
        {b"content-type": b"text/plain", b"content-length": b"3"},
        b"ok\n",
    )
    assert answers[b"/other"][::2] == (404, b"not found\n")


def test_echo_describes_the_request_and_the_peer() -> None:
    transport = serve(
        EchoProtocol(),
        [b"PUT /p?q HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 198.51.100.1\r\nX-Other: no\r\n"
         b"Content-Length: 4\r\n\r\nbody"],
    )  # fmt: skip
    status, headers, body = head_and_body(transport.written, b"PUT")
    assert (status, headers[b"content-type"]) == (200, b"application/json")
    assert json.loads(body) == {
        "method": "PUT",
        "path": "/p?q",
        "scheme_seen_by_app": "http",
        "peer_seen_by_app": "192.0.2.7",
        "body_bytes": 4,
        "headers": {"host": "h", "x-forwarded-for": "198.51.100.1"},
    }


def test_echo_over_a_real_socket() -> None:
    async def exchange() -> bytes:
        server = cast(asyncio.Server, await start_echo())
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        data = await reader.read()  # the server closes after a closing request
        writer.close()
        server.close()
        await server.wait_closed()
        return data

    status, headers, body = head_and_body(asyncio.run(exchange()))
    assert (status, headers[b"connection"]) == (200, b"close")
    assert json.loads(body)["peer_seen_by_app"] == "127.0.0.1"

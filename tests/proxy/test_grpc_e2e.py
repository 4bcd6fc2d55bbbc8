"""gRPC through the edge: a real ``grpcio`` client over TLS (verified against the test CA) to
``tlsgate serve``, relayed over HTTP/2 to a real ``grpcio`` server on an ``h2c://`` upstream.

The service is defined without generated code (generic handlers, raw bytes), so the test needs
no protoc: what is under test is the transport (streams, trailers, flow control, statuses),
not protobuf."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest

from .conftest import Serve, config_text

SERVICE = "tlsgate.test.Echo"


def _unary(request: bytes, context: grpc.ServicerContext) -> bytes:
    if request == b"missing":
        context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")
    context.set_trailing_metadata((("x-served-by", "echo"),))
    return b"pong:" + request


def _bidi(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
    for request in requests:
        yield b"echo:" + request


@pytest.fixture
def grpc_upstream() -> Iterator[int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(_unary),
        "Bidi": grpc.stream_stream_rpc_method_handler(_bidi),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port
    finally:
        server.stop(grace=None)


@pytest.fixture
def grpc_serve(serve_factory: Any, grpc_upstream: int) -> Serve:
    return serve_factory(  # type: ignore[no-any-return]
        config=config_text(f'["localhost"] -> h2c://127.0.0.1:{grpc_upstream}')
    )


@pytest.fixture
def channel(grpc_serve: Serve) -> Iterator[grpc.Channel]:
    credentials = grpc.ssl_channel_credentials(root_certificates=grpc_serve.root.read_bytes())
    with grpc.secure_channel(
        f"ipv4:127.0.0.1:{grpc_serve.port}",
        credentials,
        # The certificate is verified for "localhost" (the name dialled is an address).
        options=(("grpc.ssl_target_name_override", "localhost"),),
    ) as chan:
        yield chan


def test_unary_call_and_its_trailers(channel: grpc.Channel) -> None:
    call = channel.unary_unary(f"/{SERVICE}/Unary")
    reply, outcome = call.with_call(b"ping", timeout=10)
    assert reply == b"pong:ping"
    assert outcome.code() == grpc.StatusCode.OK
    assert ("x-served-by", "echo") in tuple(outcome.trailing_metadata())


def test_an_error_status_arrives_whole(channel: grpc.Channel) -> None:
    call = channel.unary_unary(f"/{SERVICE}/Unary")
    with pytest.raises(grpc.RpcError) as info:
        call(b"missing", timeout=10)
    error: Any = info.value
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == "no such thing"


def test_bidirectional_streaming(channel: grpc.Channel) -> None:
    call = channel.stream_stream(f"/{SERVICE}/Bidi")
    messages = [f"m{i}".encode() * (i + 1) for i in range(20)]
    replies = list(call(iter(messages), timeout=20))
    assert replies == [b"echo:" + m for m in messages]


def test_large_messages_both_ways(channel: grpc.Channel) -> None:
    call = channel.stream_stream(f"/{SERVICE}/Bidi")
    messages = [bytes([i]) * (1024 * 1024) for i in range(3)]
    replies = list(call(iter(messages), timeout=30))
    assert replies == [b"echo:" + m for m in messages]


def test_many_calls_share_connections(channel: grpc.Channel, grpc_serve: Serve) -> None:
    call = channel.unary_unary(f"/{SERVICE}/Unary")
    pending = [call.future(f"n{i}".encode(), timeout=20) for i in range(100)]
    assert [f.result() for f in pending] == [f"pong:n{i}".encode() for i in range(100)]


def test_http11_clients_are_told_the_upstream_takes_http2_only(grpc_serve: Serve) -> None:
    with grpc_serve.connect() as tls:
        tls.sendall(b"GET /x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        tls.settimeout(10)
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 502 ")
    deadline = time.monotonic() + 5  # (the access log is written in batches)
    lines: list[str] = []
    while not lines and time.monotonic() < deadline:
        lines = [x for x in grpc_serve.log.read_text().splitlines() if '"target":"/x"' in x]
        time.sleep(0.1)
    assert lines and "only HTTP/2 clients" in lines[-1], lines

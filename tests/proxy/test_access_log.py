"""One access-log line per answered or cut-short request, the edge's own refusals included.

The client protocol runs in-process on a plain loopback listener (TLS changes nothing here), with
an in-process upstream, so each path is checked in a fraction of a second; the same paths
through a real ``tlsgate serve`` are in ``test_access_log_e2e.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tlsgate.config import Limits, SiteConfig, Timeouts, Upstream
from tlsgate.http import RemoteProtocolError, RequestParser
from tlsgate.proxy.access_log import AccessLog, AccessRecord
from tlsgate.proxy.edge import Edge
from tlsgate.proxy.protocol import ClientProtocol
from tlsgate.proxy.routing import Router
from tlsgate.proxy.upstream import UpstreamPool

from ..conftest import free_port
from .edge_helpers import HeadAnswerer

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
LONG = 30.0  # a timeout no test should meet


class Upstream200(HeadAnswerer):
    """Answers each GET head with 200 ``ok``; never a GET of ``/hang`` or another method."""

    def answer(self, head: bytes) -> None:
        if head.startswith(b"GET ") and not head.startswith(b"GET /hang "):
            self.transport.write(OK)


@dataclass
class Edged:
    port: int
    records: list[AccessRecord] = field(default_factory=list)

    async def exchange(self, *pieces: bytes, pause: float = 0.0) -> bytes:
        """Send the pieces (``pause`` seconds apart), then read until the edge closes."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        for piece in pieces:
            writer.write(piece)
            await writer.drain()
            if pause:
                await asyncio.sleep(pause)
        out = await asyncio.wait_for(reader.read(), LONG)
        writer.close()
        return out

    async def settle(self) -> None:
        """Let the edge's side of a closed connection finish (connection_lost)."""
        for _ in range(20):
            await asyncio.sleep(0.01)


@asynccontextmanager
async def edge(
    *,
    timeouts: Timeouts | None = None,
    limits: Limits | None = None,
    upstream_port: int | None = None,
) -> AsyncIterator[Edged]:
    loop = asyncio.get_running_loop()
    upstream = await loop.create_server(Upstream200, "127.0.0.1", 0)
    port = upstream_port or upstream.sockets[0].getsockname()[1]
    site = SiteConfig(hosts=("localhost",), upstreams=(Upstream("127.0.0.1", port),))
    records: list[AccessRecord] = []
    the_edge = Edge(
        router=Router([site]),
        pool=UpstreamPool(loop),
        timeouts=timeouts or Timeouts(header=LONG, idle=LONG, upstream_response=LONG),
        limits=limits or Limits(),
        port=443,
        log=records.append,
    )
    server = await loop.create_server(lambda: ClientProtocol(the_edge), "127.0.0.1", 0)
    try:
        yield Edged(server.sockets[0].getsockname()[1], records)
    finally:
        for conn in list(the_edge.connections):
            conn.close()
        the_edge.pool.close()
        server.close()
        upstream.close()


def run(test: Callable[[], object]) -> None:
    asyncio.run(asyncio.wait_for(test(), 60))  # type: ignore[arg-type]


def only(records: list[AccessRecord]) -> AccessRecord:
    assert len(records) == 1, records
    return records[0]


HOST = b"Host: localhost\r\n"
REFUSED = {
    # name: (bytes, status, method, target, error)
    "two-hosts": (
        b"GET /a HTTP/1.1\r\n" + HOST + HOST + b"\r\n",
        400,
        "GET",
        "/a",
        "several host headers",
    ),
    "garbage": (b"\x16\x03\x01\x00\x7f\r\n\r\n", 400, None, None, "malformed request line"),
    "bad-line": (
        b"GET /a HTTP/1.1 x\r\n" + HOST + b"\r\n",
        400,
        None,
        None,
        "malformed start line",
    ),
    "header-name": (
        b"GET /b HTTP/1.1\r\n" + HOST + b"X(: 1\r\n\r\n",
        400,
        "GET",
        "/b",
        "invalid header name",
    ),
    "many-headers": (
        b"GET /c HTTP/1.1\r\n" + HOST + b"X: 1\r\n" * 101 + b"\r\n",
        431,
        "GET",
        "/c",
        "too many header fields",
    ),
    "huge-head": (
        b"GET /d HTTP/1.1\r\n" + HOST + b"X: " + b"a" * 33000 + b"\r\n\r\n",
        431,
        "GET",
        "/d",
        "header section too large",
    ),
    "huge-target": (
        b"GET /" + b"e" * 9000 + b" HTTP/1.1\r\n" + HOST + b"\r\n",
        414,
        None,
        None,
        "request target too long",
    ),
    "http2": (
        b"GET /f HTTP/2.0\r\n" + HOST + b"\r\n",
        505,
        "GET",
        "/f",
        "unsupported http version",
    ),
    "unknown-method": (
        b"FOO /g HTTP/1.1\r\n" + HOST + b"\r\n",
        501,
        None,
        None,
        "unsupported method",
    ),
    "connect": (
        b"CONNECT localhost:443 HTTP/1.1\r\n" + HOST + b"\r\n",
        501,
        "CONNECT",
        "localhost:443",
        "connect is not supported",
    ),
    "bad-target-form": (
        b"GET ftp://localhost/ HTTP/1.1\r\n" + HOST + b"\r\n",
        400,
        "GET",
        "ftp://localhost/",
        "request target scheme is not http or https",
    ),
    "too-large": (
        b"POST /h HTTP/1.1\r\n" + HOST + b"Content-Length: 100\r\n\r\n",
        413,
        "POST",
        "/h",
        "request body too large",
    ),
    "eof-mid-head": (
        b"GET /i HTTP/1.1\r\nHost: local",
        400,
        "GET",
        "/i",
        "connection closed in the middle of a request",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_refused_head_is_logged_once_with_what_is_known(case: str) -> None:
    data, status, method, target, error = REFUSED[case]

    async def test() -> None:
        async with edge(limits=Limits(max_body_bytes=10)) as e:
            reader, writer = await asyncio.open_connection("127.0.0.1", e.port)
            writer.write(data)
            if case == "eof-mid-head":
                writer.write_eof()
            out = await asyncio.wait_for(reader.read(), LONG)
            writer.close()
            await e.settle()
            assert out.startswith(b"HTTP/1.1 %d " % status), out
            record = only(e.records)
            assert (record.status, record.method, record.target) == (status, method, target)
            assert record.error == error
            assert record.bytes_sent == len(out)
            assert record.client == "127.0.0.1" and record.upstream == "" and record.site == ""
            assert 0 <= record.duration < LONG

    run(test)


def test_a_refusal_after_a_keep_alive_request_is_its_own_line() -> None:
    async def test() -> None:
        async with edge() as e:
            # (apart: a refusal drops the requests read with it, unanswered, in the same read)
            out = await e.exchange(
                b"GET /ok HTTP/1.1\r\n" + HOST + b"\r\n",
                b"GET /x HTTP/2.0\r\n" + HOST + b"\r\n",
                pause=0.2,
            )
            await e.settle()
            assert out.startswith(b"HTTP/1.1 200") and b"HTTP/1.1 505" in out
            assert [(r.status, r.target, r.error) for r in e.records] == [
                (200, "/ok", ""),
                (505, "/x", "unsupported http version"),
            ]
            assert e.records[1].bytes_sent == len(out) - out.index(b"HTTP/1.1 505")

    run(test)


def test_a_request_for_no_site_is_a_404_line_saying_so() -> None:
    async def test() -> None:
        async with edge() as e:
            out = await e.exchange(
                b"GET /n HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n"
            )
            await e.settle()
            assert out.startswith(b"HTTP/1.1 404")
            record = only(e.records)
            assert (record.status, record.host, record.error) == (
                404,
                "other.example",
                "no site for this host",
            )

    run(test)


def test_a_head_timeout_is_a_408_line() -> None:
    async def test() -> None:
        async with edge(timeouts=Timeouts(header=0.3, idle=LONG)) as e:
            # the request line and a header, then nothing: the method and target are known
            out = await e.exchange(b"GET /slow HTTP/1.1\r\nX-A: b\r\n")
            assert out.startswith(b"HTTP/1.1 408")
            # not even the request line: they are not
            out = await e.exchange(b"GET /sl")
            assert out.startswith(b"HTTP/1.1 408")
            await e.settle()
            assert [(r.status, r.method, r.target, r.error) for r in e.records] == [
                (408, "GET", "/slow", "request head timeout"),
                (408, None, None, "request head timeout"),
            ]
            assert all(r.duration >= 0.25 for r in e.records)  # timed from the head's first byte

    run(test)


def test_a_pipelined_head_left_unfinished_is_timed_out_as_a_head() -> None:
    # Before, the connection went back to the idle timeout with half a head read: no 408 and
    # no line, however long the idle timeout.
    async def test() -> None:
        async with edge(timeouts=Timeouts(header=0.3, idle=LONG)) as e:
            out = await e.exchange(b"GET /one HTTP/1.1\r\n" + HOST + b"\r\nGET /two HTTP/1.1\r\n")
            await e.settle()
            assert out.startswith(b"HTTP/1.1 200") and b"HTTP/1.1 408" in out
            assert [(r.status, r.target, r.error) for r in e.records] == [
                (200, "/one", ""),
                (408, "/two", "request head timeout"),
            ]

    run(test)


def test_an_idle_keep_alive_connection_is_not_a_request() -> None:
    async def test() -> None:
        async with edge(timeouts=Timeouts(header=0.2, idle=0.2)) as e:
            out = await e.exchange(b"GET /once HTTP/1.1\r\n" + HOST + b"\r\n")
            assert out.startswith(b"HTTP/1.1 200") and out.endswith(b"\r\n\r\nok")  # then idle
            assert await e.exchange() == b""  # connected, sent nothing, closed quietly
            await e.settle()
            assert [(r.status, r.target) for r in e.records] == [(200, "/once")]

    run(test)


def test_a_body_timeout_is_a_408_line() -> None:
    async def test() -> None:
        async with edge(timeouts=Timeouts(header=LONG, idle=0.3, upstream_response=LONG)) as e:
            out = await e.exchange(
                b"POST /up HTTP/1.1\r\n" + HOST + b"Content-Length: 10\r\n\r\nabc"
            )
            await e.settle()
            assert out.startswith(b"HTTP/1.1 408")
            record = only(e.records)
            assert (record.status, record.target, record.error) == (
                408,
                "/up",
                "request body timeout",
            )
            assert record.bytes_sent == len(out)

    run(test)


def test_upstream_timeout_and_refusal_are_504_and_502_lines() -> None:
    async def test() -> None:
        async with edge(timeouts=Timeouts(upstream_response=0.3)) as e:
            out = await e.exchange(b"GET /hang HTTP/1.1\r\n" + HOST + b"\r\n")
            await e.settle()
            assert out.startswith(b"HTTP/1.1 504")
            record = only(e.records)
            assert (record.status, record.error) == (504, "upstream response timeout")
        async with edge(upstream_port=free_port()) as e:
            out = await e.exchange(b"GET /x HTTP/1.1\r\n" + HOST + b"\r\n")
            await e.settle()
            assert out.startswith(b"HTTP/1.1 502")
            record = only(e.records)
            assert record.status == 502 and record.error.startswith("connect http://127.0.0.1:")
            assert record.bytes_sent == len(out)

    run(test)


def test_a_malformed_body_mid_stream_is_logged_with_the_reason() -> None:
    async def test() -> None:
        async with edge() as e:
            out = await e.exchange(
                b"POST /c HTTP/1.1\r\n"
                + HOST
                + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n"
            )
            await e.settle()
            assert out.startswith(b"HTTP/1.1 400")
            record = only(e.records)
            assert (record.status, record.target, record.error) == (
                400,
                "/c",
                "invalid chunked encoding",
            )

    run(test)


def test_the_log_line_escapes_whatever_the_client_sent(tmp_path: Path) -> None:
    path = tmp_path / "access.jsonl"

    async def test() -> None:
        log = AccessLog(str(path))
        weird = "/\x00\x1b[31m\r\n\x7f\xe9\u2028"
        log(AccessRecord("::1", "GET", weird, "h\x1b", 400, 10, "", 0.001, "e"))
        log(AccessRecord("::1", None, None, "", 400, 10, "", 0.001, "malformed request line"))
        log.flush()
        assert log.fd is not None
        os.close(log.fd)
        raw = path.read_bytes()
        lines = raw.splitlines()
        assert len(lines) == 2
        assert all(0x20 <= b < 0x7F for b in raw.replace(b"\n", b"")), raw
        first, second = (json.loads(line) for line in lines)
        assert (first["target"], first["host"]) == (weird, "h\x1b")
        assert (second["method"], second["target"], second["error"]) == (
            None,
            None,
            "malformed request line",
        )

    run(test)


PARTIAL = {
    # what was fed -> (method, target) the log can name, or None
    b"": None,
    b"GE": None,
    b"GET /a HT": None,
    b"GET /a HTTP/1.1\r\n": (b"GET", b"/a"),
    b"GET /a HTTP/1.1\r\nHost: x\r\nX-A": (b"GET", b"/a"),
    b"GET /b HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n": (b"GET", b"/b"),  # refused after the head
    b"GET /c HTTP/1.1\r\nX(: 1\r\n\r\n": (b"GET", b"/c"),  # refused in the first header
    b"GET /d HTTP/1.1\r\n\x01: 1\r\n\r\n": (b"GET", b"/d"),
    b"GET /e HTTP/1.1 \r\n\r\n": None,  # the request line itself refused
    b"G\x01T / HTTP/1.1\r\n\r\n": None,
    b"FOO /f HTTP/1.1\r\n\r\n": None,
}


@pytest.mark.parametrize("data", sorted(PARTIAL))
def test_the_parser_names_a_requests_method_and_target_once_its_line_was_read(
    data: bytes,
) -> None:
    for pieces in ([data], [data[i : i + 1] for i in range(len(data))]):
        parser = RequestParser()
        try:
            for piece in pieces:
                parser.feed(piece)
        except RemoteProtocolError:
            pass
        else:  # still reading the head
            assert parser.head_in_progress == bool(data)
        assert parser.partial_request() == PARTIAL[data], pieces

"""HTTP/2 at the edge, end to end: real clients (curl, nghttp, h2load, httpx, the ``h2``
package) over TLS with ALPN ``h2`` to a real ``tlsgate serve``, proxied to the HTTP/1.1 test
upstream. Runs on the compiled path and, in CI, on the pure one (``TLSGATE_PURE=1``)."""

from __future__ import annotations

import hashlib
import json
import re
import signal
import subprocess
import time
from typing import Any

import httpx
import pytest
from hpack import Encoder
from hyperframe.frame import ContinuationFrame, HeadersFrame, RstStreamFrame

from tests.conftest import require_tool

from .conftest import Serve, config_text
from .h2_client import H2Client


def curl(serve: Serve, *args: str, host: str = "localhost") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_tool("curl"), "-sS", "--max-time", "20", "--cacert", str(serve.root),
         "--resolve", f"{host}:{serve.port}:127.0.0.1", *args],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip


def echo(reply_body: bytes | bytearray) -> dict[str, Any]:
    return json.loads(bytes(reply_body))  # type: ignore[no-any-return]


def field(data: dict[str, Any], name: str) -> list[str]:
    return [v for n, v in data["headers"] if n == name]


def access_lines(serve: Serve) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for line in serve.log.read_text().splitlines()
        if line.startswith('{"time"')
    ]


def test_curl_negotiates_h2_and_the_upstream_sees_forwarding_headers(serve: Serve) -> None:
    proc = curl(
        serve, "--http2", "-D", "-", "-H", "X-Forwarded-For: 6.6.6.6",
        f"https://localhost:{serve.port}/echo?x=1",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("HTTP/2 200")
    data = json.loads(proc.stdout.split("\n\n", 1)[1])
    assert data["target"] == "/echo?x=1"
    assert field(data, "host") == [f"localhost:{serve.port}"]
    assert field(data, "x-forwarded-for") == ["127.0.0.1"]  # the client's own is not trusted
    assert field(data, "x-forwarded-proto") == ["https"]
    # The upstream gets HTTP/1.1: no pseudo-header leaks into its request.
    assert not [n for n, _ in data["headers"] if n.startswith(":")]


def test_http11_clients_still_get_http11(serve: Serve) -> None:
    proc = curl(serve, "--http1.1", "-D", "-", f"https://localhost:{serve.port}/hi")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("HTTP/1.1 200")


def test_a_site_with_http2_off_offers_only_http11(serve_factory: Any) -> None:
    serve = serve_factory(config=config_text('["localhost"]') + "http2 = false\n")
    proc = curl(serve, "--http2", "-D", "-", f"https://localhost:{serve.port}/hi")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("HTTP/1.1 200")


@pytest.mark.parametrize("size", [0, 1, 70_000, 3 * 1024 * 1024])
def test_upload_reaches_the_upstream_whole(serve: Serve, size: int) -> None:
    body = hashlib.sha256(str(size).encode()).digest() * (size // 32 + 1)
    body = body[:size]
    client = H2Client(serve.port, serve.root)
    try:
        sid = client.request(
            "/echo", method="POST", body=body,
            headers=[(b"content-length", str(size).encode())],
        )  # fmt: skip
        (reply,) = client.wait(sid, timeout=30)
    finally:
        client.close()
    assert reply.status == 200, reply
    data = echo(reply.body)
    assert data["body_size"] == size
    assert data["body_sha256"] == hashlib.sha256(body).hexdigest()


def test_upload_without_length_goes_chunked_with_its_trailers(serve: Serve) -> None:
    client = H2Client(serve.port, serve.root)
    try:
        sid = client.request(
            "/echo", method="POST", body=b"x" * 100_000,
            trailers=[(b"x-checksum", b"abc")],
        )  # fmt: skip
        (reply,) = client.wait(sid)
    finally:
        client.close()
    data = echo(reply.body)
    assert data["body_size"] == 100_000
    assert field(data, "transfer-encoding") == ["chunked"]
    assert data["trailers"] == [["x-checksum", "abc"]]


def test_large_download_and_response_trailers(serve: Serve) -> None:
    client = H2Client(serve.port, serve.root)
    try:
        big = client.request("/bytes/5000000")
        chunked = client.request("/chunked/7")
        replies = client.wait(big, chunked, timeout=30)
    finally:
        client.close()
    assert len(replies[0].body) == 5_000_000
    assert replies[1].body == b"0123456789" * 7
    # The upstream's chunked trailers arrive as an HTTP/2 trailing header block.
    assert replies[1].trailers == [(b"x-checksum", b"abc")]
    assert b"transfer-encoding" not in dict(replies[1].headers)


def test_many_streams_share_one_connection(serve: Serve) -> None:
    before = serve.seen.connections
    client = H2Client(serve.port, serve.root)
    try:
        sids = [client.request(f"/hi/{i}") for i in range(50)]
        replies = client.wait(*sids, timeout=30)
    finally:
        client.close()
    assert [r.body for r in replies] == [f"hello /hi/{i} \n".encode() for i in range(50)]
    assert serve.seen.connections - before <= 50  # (pooled upstream connections)


def test_nghttp_fetches_pages(serve: Serve) -> None:
    nghttp = require_tool("nghttp")
    proc = subprocess.run(
        [nghttp, "-nv", f"https://127.0.0.1:{serve.port}/hi", f"https://127.0.0.1:{serve.port}/x"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    # nghttp has no option to verify a certificate: what it received is what is checked here.
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("(stream_id=13) :status: 200") == 1
    assert proc.stdout.count("(stream_id=15) :status: 200") == 1


def test_h2load_every_request_succeeds(serve: Serve) -> None:
    h2load = require_tool("h2load")
    proc = subprocess.run(
        [h2load, "-n", "2000", "-c", "4", "-m", "10", f"https://127.0.0.1:{serve.port}/hi"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"requests: 2000 total, 2000 started, 2000 done, 2000 succeeded", proc.stdout)
    assert "status codes: 2000 2xx" in proc.stdout
    assert "Application protocol: h2" in proc.stdout


def test_httpx_http2_verifies_the_ca(serve: Serve) -> None:
    with httpx.Client(http2=True, verify=serve.context()) as client:
        first = client.get(f"https://localhost:{serve.port}/hi")
        posted = client.post(f"https://localhost:{serve.port}/echo", content=b"p" * 5000)
    assert first.http_version == "HTTP/2"
    assert first.text == "hello /hi \n"
    assert posted.json()["body_size"] == 5000


def test_authority_is_checked_against_the_handshake(serve_factory: Any) -> None:
    serve = serve_factory(config=config_text('["localhost"]', '["other.test"]'))
    client = H2Client(serve.port, serve.root)
    try:
        other = client.request("/hi", authority="other.test")
        unknown = client.request("/hi", authority="nobody.test")
        same = client.request("/hi", authority=f"localhost:{serve.port}")
        replies = client.wait(other, unknown, same)
    finally:
        client.close()
    # A connection for localhost cannot be reused for other.test (RFC 9113 9.1.1's 421).
    assert [r.status for r in replies] == [421, 404, 200]


def test_access_log_and_metrics_see_each_stream(serve: Serve) -> None:
    client = H2Client(serve.port, serve.root)
    try:
        client.wait(*[client.request(f"/logged/{i}") for i in range(3)])
    finally:
        client.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = [x for x in access_lines(serve) if x["target"].startswith("/logged/")]
        if len(lines) == 3:
            break
        time.sleep(0.1)
    assert sorted(x["target"] for x in lines) == ["/logged/0", "/logged/1", "/logged/2"]
    assert {x["status"] for x in lines} == {200}


def test_client_reset_abandons_the_request(serve: Serve) -> None:
    client = H2Client(serve.port, serve.root)
    try:
        slow = client.request("/slow/2")
        time.sleep(0.3)
        client.reset(slow)
        after = client.request("/hi")
        (reply,) = client.wait(after)
    finally:
        client.close()
    assert reply.status == 200
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = [x for x in access_lines(serve) if x["target"] == "/slow/2"]
        if lines:
            break
        time.sleep(0.1)
    assert lines and lines[0]["status"] == 499


def test_sigterm_sends_goaway_and_finishes_streams_in_flight(serve: Serve) -> None:
    # nghttp, not the h2 package: h2 treats every frame after a GOAWAY as an error, so it
    # cannot show a stream finishing after one.
    nghttp = require_tool("nghttp")
    proc = subprocess.Popen(
        [nghttp, "-v", f"https://127.0.0.1:{serve.port}/slow/1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    time.sleep(0.4)
    serve.proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    goaway = out.index("recv GOAWAY frame")
    assert "error_code=NO_ERROR" in out[goaway:]
    assert ":status: 200" in out[goaway:]  # the stream in flight finished after the GOAWAY
    assert "slow\n" in out
    assert serve.proc.wait(30) == 0


def test_malformed_requests_never_reach_the_upstream(serve: Serve) -> None:
    """RFC 9113 8.2 / 8.3 violations: each is refused by a stream or connection error."""
    cases: list[list[tuple[bytes, bytes]]] = [
        [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/bad1"), (b"X-Upper", b"1")],
        [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/bad2"), (b"connection", b"x")],
        [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/bad3"), (b"te", b"gzip")],
        [(b":method", b"GET"), (b"x-a", b"1"), (b":scheme", b"https"), (b":path", b"/bad4")],
        [(b":method", b"GET"), (b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/bad5")],
        [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/bad6"), (b"x-v", b"a\r\nb")],
        [(b":method", b"GET"), (b":scheme", b"https")],
    ]
    for i, block in enumerate(cases):
        client = H2Client(serve.port, serve.root)
        try:
            client.pump(0.3)  # the server's SETTINGS
            frame = HeadersFrame(1, Encoder().encode(block), flags=["END_HEADERS", "END_STREAM"])
            client.send_raw(frame)
            deadline = time.monotonic() + 5
            refused = False
            while time.monotonic() < deadline and not refused:
                alive = client.pump(0.5)
                refused = not alive or client.goaway is not None or any(f for f in _resets(client))
        finally:
            client.close()
        assert refused, f"case {i} was not refused: {block}"
    targets = [r.target for r in serve.seen.requests]
    assert not [t for t in targets if t.startswith(b"/bad")], targets
    # The worker still serves.
    proc = curl(serve, "--http2", f"https://localhost:{serve.port}/still")
    assert proc.stdout == "hello /still \n"


def _resets(client: H2Client) -> list[int]:
    # The client saw RST_STREAM on a stream it did not open through h2 (raw frames): h2 reports
    # that as a StreamReset on stream 1 only when known, so look at the connection's streams.
    stream = client.conn.streams.get(1)
    return [1] if stream is not None and stream.closed else []


def test_rapid_reset_ends_the_connection_and_the_worker_stays_up(serve: Serve) -> None:
    client = H2Client(serve.port, serve.root)
    try:
        for _ in range(400):
            sid = client.conn.get_next_available_stream_id()
            client.conn.send_headers(
                sid,
                [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"localhost"),
                 (b":path", b"/reset")],
            )  # fmt: skip
            client.conn.reset_stream(sid, 8)
            try:
                client.flush()
            except OSError:
                break
        while client.goaway is None and client.pump(1.0):
            pass
    finally:
        client.close()
    assert client.goaway is not None and client.goaway.error_code == 0xB  # ENHANCE_YOUR_CALM
    proc = curl(serve, "--http2", f"https://localhost:{serve.port}/after")
    assert proc.stdout == "hello /after \n"


def test_continuation_flood_is_cut_short(serve: Serve) -> None:
    client = H2Client(serve.port, serve.root)
    try:
        client.pump(0.3)
        first = Encoder().encode(
            [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/flood")]
        )
        client.send_raw(HeadersFrame(1, first))
        block = Encoder().encode([(b"x-filler", b"y" * 100)])
        sent = 0
        try:
            for _ in range(10_000):
                client.send_raw(ContinuationFrame(1, block))
                sent += 1
        except OSError:
            pass
        while client.goaway is None and client.pump(1.0):
            pass
    finally:
        client.close()
    assert client.goaway is not None or client.closed
    assert not [r for r in serve.seen.requests if r.target == b"/flood"]
    proc = curl(serve, "--http2", f"https://localhost:{serve.port}/after")
    assert proc.stdout == "hello /after \n"


def test_rst_frames_for_unknown_streams_are_harmless(serve: Serve) -> None:
    client = H2Client(serve.port, serve.root)
    try:
        client.pump(0.3)
        client.send_raw(RstStreamFrame(7, error_code=8))
        sid = client.request("/hi")
        replies = client.wait(sid)
    finally:
        client.close()
    # A reset of an idle stream is a connection error (RFC 9113 6.4): either the request was
    # served first or the connection ended with PROTOCOL_ERROR; the worker is fine either way.
    assert client.goaway is not None or client.closed or replies[0].status == 200
    proc = curl(serve, "--http2", f"https://localhost:{serve.port}/after")
    assert proc.stdout == "hello /after \n"


def test_a_slow_upstream_is_504_on_its_stream_only(serve_factory: Any) -> None:
    serve = serve_factory(config=config_text('["localhost"]', timeouts="upstream_response = 1"))
    client = H2Client(serve.port, serve.root)
    try:
        slow = client.request("/slow/4")
        fast = client.request("/hi")
        replies = client.wait(slow, fast, timeout=15)
        again = client.request("/again")
        (after,) = client.wait(again)
    finally:
        client.close()
    # 504, not the upstream's 200 after 4 s: the 1 s deadline fired (swept once a second).
    assert [r.status for r in replies] == [504, 200]
    assert after.status == 200  # the connection outlives one stream's timeout


def test_informational_responses_are_relayed(serve: Serve) -> None:
    client = H2Client(serve.port, serve.root)
    try:
        (reply,) = client.wait(client.request("/hints"))
    finally:
        client.close()
    assert [dict(block)[b":status"] for block in reply.informational] == [b"103"]
    assert (b"link", b"</style.css>; rel=preload") in reply.informational[0]
    assert reply.status == 200 and reply.body == b"hinted\n"

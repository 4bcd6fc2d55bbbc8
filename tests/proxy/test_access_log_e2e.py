"""Every answer ``tlsgate serve`` gives, and every request a timeout cuts short, is one line of
its access log (to a file), the edge's own refusals included; an idle keep-alive is none."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port

from .conftest import Serve, config_text

pytestmark = pytest.mark.interop

HOST = b"Host: localhost\r\n"
CLOSE = b"Connection: close\r\n"


def send(serve: Serve, *pieces: bytes, host: str = "localhost") -> bytes:
    """Each piece in its own write (0.2 s apart), then read until the edge closes."""
    with serve.connect(host) as tls:
        tls.settimeout(20)
        for index, piece in enumerate(pieces):
            if index:
                time.sleep(0.2)
            if piece:
                tls.sendall(piece)
        out = b""
        try:
            while chunk := tls.recv(65536):
                out += chunk
        except (TimeoutError, ConnectionResetError, OSError):
            pass
    return out


# (what is sent, in pieces; status; method, target and error logged)
CASES: list[tuple[tuple[bytes, ...], int, str | None, str | None, str]] = [
    ((b"GET /ok HTTP/1.1\r\n" + HOST + CLOSE + b"\r\n",), 200, "GET", "/ok", ""),
    ((b"GET /a HTTP/1.1\r\n" + HOST + HOST + b"\r\n",), 400, "GET", "/a", "several host headers"),
    ((b"\x01\x02garbage\x7f\r\n\r\n",), 400, None, None, "malformed request line"),
    (
        (b"GET /b HTTP/1.1\r\n" + HOST + b"X: 1\r\n" * 101 + b"\r\n",),
        431,
        "GET",
        "/b",
        "too many header fields",
    ),
    ((b"GET /c HTTP/2.0\r\n" + HOST + b"\r\n",), 505, "GET", "/c", "unsupported http version"),
    ((b"FOO /d HTTP/1.1\r\n" + HOST + b"\r\n",), 501, None, None, "unsupported method"),
    (
        (b"GET /" + b"e" * 9000 + b" HTTP/1.1\r\n" + HOST + b"\r\n",),
        414,
        None,
        None,
        "request target too long",
    ),
    (
        (b"POST /f HTTP/1.1\r\n" + HOST + b"Content-Length: 100\r\n\r\n",),
        413,
        "POST",
        "/f",
        "request body too large",
    ),
    (
        (b"GET ftp://localhost/g HTTP/1.1\r\n" + HOST + b"\r\n",),
        400,
        "GET",
        "ftp://localhost/g",
        "request target scheme is not http or https",
    ),
    (
        (b"GET http://other.example/h HTTP/1.1\r\n" + HOST + CLOSE + b"\r\n",),
        404,
        "GET",
        "/h",
        "no site for this host",
    ),
    (
        (b"GET /o HTTP/1.1\r\nHost: dead.test\r\n" + CLOSE + b"\r\n",),
        421,
        "GET",
        "/o",
        "host names another site than the tls handshake",
    ),
    # head timeout (header = 1): the request line and one header, then nothing
    ((b"GET /i HTTP/1.1\r\nX-A: b\r\n",), 408, "GET", "/i", "request head timeout"),
    # body timeout (idle = 1): 3 of 10 bytes
    (
        (b"POST /j HTTP/1.1\r\n" + HOST + b"Content-Length: 10\r\n\r\nabc",),
        408,
        "POST",
        "/j",
        "request body timeout",
    ),
    # upstream too slow (upstream_response = 1)
    (
        (b"GET /slow/3 HTTP/1.1\r\n" + HOST + b"\r\n",),
        504,
        "GET",
        "/slow/3",
        "upstream response timeout",
    ),
    # a request, then the keep-alive idles out (idle = 1): one line, the request's
    ((b"GET /k HTTP/1.1\r\n" + HOST + b"\r\n",), 200, "GET", "/k", ""),
    # a request, then a refused one on the same connection
    ((b"GET /l HTTP/1.1\r\n" + HOST + b"\r\n", b"GET /m HTTP/1.1\r\n\r\n"), 200, "GET", "/l", ""),
    ((), 400, "GET", "/m", "missing host header"),
]


def test_every_answer_and_timeout_is_one_line(serve_factory: Any, tmp_path: Path) -> None:
    access = tmp_path / "access.jsonl"
    config = config_text(
        '["localhost"]',
        f'["dead.test"] -> http://127.0.0.1:{free_port()}',
        server=f'access_log = "{access}"',
        timeouts="header = 1\nidle = 1\nupstream_response = 1\n\n[server.limits]\n"
        "max_body_bytes = 10",
    )
    serve: Serve = serve_factory(config=config)
    expected: list[tuple[int, str | None, str | None, str]] = []
    sizes: list[int] = []
    for pieces, status, method, target, error in CASES:
        expected.append((status, method, target, error))
        if not pieces:  # the second line of the previous exchange
            continue
        out = send(serve, *pieces)
        assert out.startswith(b"HTTP/1.1 %d " % status), (pieces[0][:40], out[:100])
        sizes.append(len(out))
    # an upstream that refuses connections: 502
    out = send(serve, b"GET /n HTTP/1.1\r\nHost: dead.test\r\n\r\n", host="dead.test")
    assert out.startswith(b"HTTP/1.1 502")
    expected.append((502, "GET", "/n", "connect"))
    # connected, sent nothing: not a request
    assert send(serve, b"") == b""
    assert serve.stop() == 0  # the log is flushed on the way out
    lines = [json.loads(line) for line in access.read_text().splitlines()]
    got = [(r["status"], r["method"], r["target"], r.get("error", "")) for r in lines]
    got[-1] = (*got[-1][:3], got[-1][3].partition(" ")[0])  # "connect http://...: why"
    assert got == expected
    for line in lines:
        assert line["client"] == "127.0.0.1" and line["duration_ms"] >= 0 and line["bytes"] > 0
    # a one-exchange connection's line counts every byte the client got
    single = [i for i, case in enumerate(CASES) if len(case[0]) == 1 and case[1] != 200]
    for index in single:
        assert lines[index]["bytes"] == sizes[index], CASES[index][0][0][:30]
    timed = {r["target"]: r["duration_ms"] for r in lines if r.get("error", "").endswith("timeout")}
    assert all(ms >= 900 for ms in timed.values()), timed


def test_a_request_cut_short_by_the_drain_deadline_is_answered_and_logged(
    serve_factory: Any, tmp_path: Path
) -> None:
    access = tmp_path / "access.jsonl"
    config = config_text('["localhost"]', server=f'access_log = "{access}"', timeouts="drain = 1")
    serve: Serve = serve_factory(config=config)
    result: list[bytes] = []
    thread = threading.Thread(
        target=lambda: result.append(send(serve, b"GET /slow/10 HTTP/1.1\r\n" + HOST + b"\r\n"))
    )
    thread.start()
    deadline = time.monotonic() + 20  # SIGTERM once the upstream has the request
    while not any(r.target == b"/slow/10" for r in serve.seen.requests):
        assert time.monotonic() < deadline, serve.log.read_text()
        time.sleep(0.02)
    assert serve.stop() == 0
    thread.join(20)
    assert result and result[0].startswith(b"HTTP/1.1 503 "), result
    lines = [json.loads(line) for line in access.read_text().splitlines()]
    assert [(r["status"], r["target"], r.get("error")) for r in lines] == [
        (503, "/slow/10", "the server is shutting down")
    ]
    assert lines[0]["bytes"] == len(result[0])

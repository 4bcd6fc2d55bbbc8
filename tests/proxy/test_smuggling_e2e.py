"""Request-smuggling and garbage defenses, over real TLS to the real process.

Each payload is refused with a short 4xx and the upstream never sees a request from it: the
edge must not forward anything whose framing two parsers could read differently.
"""

from __future__ import annotations

import socket
import time

import pytest

from .conftest import Serve, config_text

pytestmark = pytest.mark.interop

HOST = b"Host: localhost\r\n"

CASES = {
    "cl-and-te": (b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    "duplicate-cl": (b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400),
    "same-duplicate-cl": (b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 400),
    "invalid-cl": (b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: +3\r\n\r\nabc", 400),
    "cl-list": (b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: 3, 3\r\n\r\nabc", 400),
    "obs-fold": (b"GET / HTTP/1.1\r\n" + HOST + b"X-A: a\r\n  folded\r\n\r\n", 400),
    "bad-chunk-size": (b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", 400),
    "te-not-chunked-last": (b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", 400),
    "te-gzip-only": (b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: gzip\r\n\r\nabc", 400),
    "space-before-colon": (b"GET / HTTP/1.1\r\n" + HOST + b"X-A : b\r\n\r\n", 400),
    "bare-lf": (b"GET / HTTP/1.1\n" + HOST.replace(b"\r\n", b"\n") + b"\n", 400),
    "two-hosts": (b"GET / HTTP/1.1\r\n" + HOST + HOST + b"\r\n", 400),
    "no-host": (b"GET / HTTP/1.1\r\n\r\n", 400),
    "garbage": (b"\x16\x03\x01garbage\r\n\r\n", 400),
    "huge-header": (b"GET / HTTP/1.1\r\n" + HOST + b"X-Big: " + b"a" * 40000 + b"\r\n\r\n", 431),
    "many-headers": (b"GET / HTTP/1.1\r\n" + HOST + b"".join(b"X-%d: 1\r\n" % i for i in range(150)) + b"\r\n", 431),
}  # fmt: skip


def exchange(serve: Serve, payload: bytes) -> bytes:
    with serve.connect() as tls:
        tls.sendall(payload)
        tls.settimeout(10)
        out = b""
        try:
            while chunk := tls.recv(65536):
                out += chunk
        except (TimeoutError, ConnectionResetError, OSError):
            pass
    return out


def test_refused_and_never_forwarded(serve: Serve) -> None:
    # One server for all cases (each case is its own connection), so the set stays cheap to grow.
    for case, (payload, status) in sorted(CASES.items()):
        before = len(serve.seen.requests)
        out = exchange(serve, payload)
        assert out.startswith(b"HTTP/1.1 %d" % status), (case, out[:200])
        assert len(out) < 400, case  # short, no internals
        time.sleep(0.05)
        assert len(serve.seen.requests) == before, case
    # And the server is still healthy afterwards.
    out = exchange(serve, b"GET /ok HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200")


def test_slowloris_is_cut_off(serve_factory: object) -> None:
    config = config_text('["localhost"]', timeouts="header = 1")
    serve: Serve = serve_factory(config=config)  # type: ignore[operator]
    with serve.connect() as tls:
        tls.sendall(b"GET / HTTP/1.1\r\n")
        started = time.monotonic()
        tls.settimeout(10)
        out = b""
        try:
            for _ in range(20):
                tls.sendall(b"X-a: b\r\n")  # a trickle that never completes the head
                time.sleep(0.2)
        except OSError:
            pass
        try:
            while chunk := tls.recv(4096):
                out += chunk
        except OSError:
            pass
    assert out.startswith(b"HTTP/1.1 408")
    assert time.monotonic() - started < 5
    # Meanwhile the worker still serves others.
    with socket.create_connection(("127.0.0.1", serve.port), timeout=5):
        pass

"""HTTP/1.1 parse rate of ``tlsgate.http``: the compiled parser, its pure-Python twin, and bare
httptools doing no work at all.

Both implementations of the parsers (``tlsgate.http._fast``, Cython, and ``request.py`` /
``response.py``, our Python over httptools' llhttp) on the same bytes. Rows:

* request, one per feed     a typical browser GET (10 headers), fed as one read, as a
                            keep-alive connection does; events made, framing checked
* request, 16 pipelined     the same request 16 times in one read
* response, 100 B           ``expect(b"GET")`` + a 100-byte response with a Content-Length (the
                            body of the proxy benchmark)
* chunked response          ``expect(b"GET")`` + a 10-header chunked response (4 chunks of 1 KiB)
* bare httptools request    llhttp with empty Python callbacks on the same bytes: the floor that
                            the pure twin's framing sits on (one column)

Outside the timed loops, both implementations must make the same events of every row's bytes.
Every loop is bounded: it stops after ``--count`` messages or once ``--seconds`` have passed,
whichever comes first; ``--repeat`` rounds run each row and the median is printed.

    .venv/bin/python bench/http_parse.py [--count N] [--seconds S] [--repeat R]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import httptools

from tlsgate.http import (
    Data,
    EndOfMessage,
    Event,
    Request,
    Response,
    chunk,
    last_chunk,
    request,
    response,
)

try:
    from tlsgate.http import _fast
except ImportError:  # pragma: no cover - the bench says so rather than measuring pure twice
    raise SystemExit(
        "bench/http_parse.py: the compiled parser is not built (scripts/install.sh)"
    ) from None

REQUEST = (
    b"GET /api/v1/items?page=2&sort=name HTTP/1.1\r\n"
    b"Host: app.example.com\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    b"Accept-Language: en-US,en;q=0.5\r\n"
    b"Accept-Encoding: gzip, deflate, br, zstd\r\n"
    b"Connection: keep-alive\r\n"
    b"Cookie: session=6f1c0e9a2b7d4c38; theme=dark\r\n"
    b"Referer: https://app.example.com/items\r\n"
    b"Cache-Control: no-cache\r\n"
    b"Upgrade-Insecure-Requests: 1\r\n"
    b"\r\n"
)

RESPONSE = (
    b"HTTP/1.1 200 OK\r\n"
    b"Date: Sat, 29 Nov 2025 07:00:00 GMT\r\n"
    b"Server: upstream\r\n"
    b"Content-Type: application/json\r\n"
    b"Transfer-Encoding: chunked\r\n"
    b"Cache-Control: private, max-age=0\r\n"
    b"Vary: Accept-Encoding\r\n"
    b"X-Request-Id: 4b1e0c55-1f0a-4a53-9f5e-2f0d7c1b9a11\r\n"
    b"X-Content-Type-Options: nosniff\r\n"
    b"Strict-Transport-Security: max-age=31536000\r\n"
    b"Connection: keep-alive\r\n"
    b"\r\n" + b"".join(chunk(bytes([65 + i]) * 1024) for i in range(4)) + last_chunk()
)

SMALL = (
    b"HTTP/1.1 200 OK\r\n"
    b"Server: upstream\r\n"
    b"Date: Mon, 07 Dec 2026 09:00:00 GMT\r\n"
    b"Content-Type: text/plain\r\n"
    b"Content-Length: 100\r\n"
    b"\r\n" + b"x" * 100
)

PIPELINE = 16

Parsers = tuple[
    Callable[[], _fast.RequestParser | request.RequestParser],
    Callable[[], _fast.ResponseParser | response.ResponseParser],
]
IMPLEMENTATIONS: dict[str, Parsers] = {
    "compiled": (_fast.RequestParser, _fast.ResponseParser),
    "pure": (request.RequestParser, response.ResponseParser),
}

Row = Callable[[int], int]


def request_one_per_feed(parsers: Parsers) -> Row:
    parser = parsers[0]()

    def row(count: int) -> int:
        for _ in range(count):
            if len(parser.feed(REQUEST)) != 2:  # pragma: no cover - broken must not look fast
                raise AssertionError("request")
        return count

    return row


def request_pipelined(parsers: Parsers) -> Row:
    parser = parsers[0]()
    burst = REQUEST * PIPELINE

    def row(count: int) -> int:
        rounds = max(1, count // PIPELINE)
        for _ in range(rounds):
            if len(parser.feed(burst)) != 2 * PIPELINE:  # pragma: no cover
                raise AssertionError("pipelined")
        return rounds * PIPELINE

    return row


def responses_of(data: bytes) -> Callable[[Parsers], Row]:
    def make(parsers: Parsers) -> Row:
        parser = parsers[1]()

        def row(count: int) -> int:
            for _ in range(count):
                parser.expect(b"GET")
                if not isinstance(parser.feed(data)[-1], EndOfMessage):  # pragma: no cover
                    raise AssertionError("response")
            return count

        return row

    return make


class _Nothing:
    """Callbacks that do nothing: what llhttp costs through httptools before any framing work."""

    def on_url(self, url: bytes) -> None:
        pass

    def on_header(self, name: bytes, value: bytes) -> None:
        pass

    def on_headers_complete(self) -> None:
        pass

    def on_message_complete(self) -> None:
        pass


def bare_httptools(count: int) -> int:
    parser = httptools.HttpRequestParser(_Nothing())
    for _ in range(count):
        parser.feed_data(REQUEST)
    return count


ROWS: dict[str, Callable[[Parsers], Row]] = {
    "request, one per feed": request_one_per_feed,
    f"request, {PIPELINE} pipelined": request_pipelined,
    "response, 100 B": responses_of(SMALL),
    "chunked response (4 KiB)": responses_of(RESPONSE),
}


def rate(row: Callable[[int], int], count: int, seconds: float) -> float:
    """Messages per second, in batches so the clock is read rarely; bounded by count and time."""
    batch = 1000
    done = 0
    start = time.perf_counter()
    elapsed = 0.0
    while done < count and elapsed < seconds:
        done += row(min(batch, count - done))
        elapsed = time.perf_counter() - start
    return done / elapsed


def parsed(parsers: Parsers, data: bytes, *, upstream: bool) -> list[Event]:
    if not upstream:
        return parsers[0]().feed(data)
    parser = parsers[1]()
    parser.expect(b"GET")
    return parser.feed(data)


def check() -> None:
    """The rows must parse what they claim to, and both implementations agree on it, or the
    numbers mean nothing."""
    compiled, pure = IMPLEMENTATIONS["compiled"], IMPLEMENTATIONS["pure"]
    for data, upstream in ((REQUEST, False), (SMALL, True), (RESPONSE, True)):
        assert parsed(compiled, data, upstream=upstream) == parsed(pure, data, upstream=upstream)
    events = parsed(pure, REQUEST, upstream=False)
    assert isinstance(events[0], Request) and len(events[0].headers) == 10
    events = parsed(pure, RESPONSE, upstream=True)
    assert isinstance(events[0], Response)
    body = b"".join(e.data for e in events if isinstance(e, Data))
    assert body == b"".join(bytes([65 + i]) * 1024 for i in range(4))


def median_rate(row: Row, args: argparse.Namespace) -> float:
    row(1000)  # warm-up, not timed
    return statistics.median(rate(row, args.count, args.seconds) for _ in range(args.repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--count", type=int, default=1_000_000, help="at most N messages a row")
    parser.add_argument("--seconds", type=float, default=2.0, help="at most S seconds a row")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the median is printed")
    args = parser.parse_args()
    check()
    print(f"{'':<28} {'compiled':>12} {'pure':>12} {'ratio':>7}")
    for name, make in ROWS.items():
        compiled = median_rate(make(IMPLEMENTATIONS["compiled"]), args)
        pure = median_rate(make(IMPLEMENTATIONS["pure"]), args)
        print(f"{name:<28} {compiled:>10,.0f}/s {pure:>10,.0f}/s {compiled / pure:>6.1f}x")
    floor = median_rate(bare_httptools, args)
    print(f"{'bare httptools request':<28} {'':>12} {floor:>10,.0f}/s")


if __name__ == "__main__":
    main()

"""HTTP/1.1 parse rate of ``tlsgate.http``, next to bare httptools doing no work at all.

Rows:

* request, one per feed     a typical browser GET (10 headers), fed as one read, as a
                            keep-alive connection does; events made, framing checked
* request, 16 pipelined     the same request 16 times in one read
* chunked response          ``expect(b"GET")`` + a 10-header chunked response (4 chunks of 1 KiB)
* bare httptools request    llhttp with empty Python callbacks on the same bytes: the floor that
                            the Python side of the framing layer sits on

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
    Request,
    RequestParser,
    Response,
    ResponseParser,
    chunk,
    last_chunk,
)

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

PIPELINE = 16


def request_one_per_feed(count: int) -> int:
    parser = RequestParser()
    for _ in range(count):
        events = parser.feed(REQUEST)
        if len(events) != 2:  # pragma: no cover - a broken parser must not look fast
            raise AssertionError(events)
    return count


def request_pipelined(count: int) -> int:
    parser = RequestParser()
    burst = REQUEST * PIPELINE
    rounds = max(1, count // PIPELINE)
    for _ in range(rounds):
        events = parser.feed(burst)
        if len(events) != 2 * PIPELINE:  # pragma: no cover
            raise AssertionError(len(events))
    return rounds * PIPELINE


def chunked_response(count: int) -> int:
    parser = ResponseParser()
    for _ in range(count):
        parser.expect(b"GET")
        events = parser.feed(RESPONSE)
        if not isinstance(events[-1], EndOfMessage):  # pragma: no cover
            raise AssertionError(events)
    return count


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


ROWS: dict[str, Callable[[int], int]] = {
    "request, one per feed": request_one_per_feed,
    f"request, {PIPELINE} pipelined": request_pipelined,
    "chunked response (4 KiB)": chunked_response,
    "bare httptools request": bare_httptools,
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


def check() -> None:
    """The rows must parse what they claim to, or the numbers mean nothing."""
    events = RequestParser().feed(REQUEST)
    assert isinstance(events[0], Request) and len(events[0].headers) == 10
    parser = ResponseParser()
    parser.expect(b"GET")
    events = parser.feed(RESPONSE)
    assert isinstance(events[0], Response)
    body = b"".join(e.data for e in events if isinstance(e, Data))
    assert body == b"".join(bytes([65 + i]) * 1024 for i in range(4))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=1_000_000, help="at most N messages a row")
    parser.add_argument("--seconds", type=float, default=2.0, help="at most S seconds a row")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the median is printed")
    args = parser.parse_args()
    check()
    for name, row in ROWS.items():
        row(1000)  # warm-up, not timed
        rates = [rate(row, args.count, args.seconds) for _ in range(args.repeat)]
        print(f"{name:<28} {statistics.median(rates):>12,.0f} /s")


if __name__ == "__main__":
    main()

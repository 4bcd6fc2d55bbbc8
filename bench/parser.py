"""HTTP/1.1 messages parsed per second: the compiled parser next to its pure-Python twin.

Both implementations of ``tlsgate.http``'s parsers (``tlsgate.http._fast``, Cython, and
``request.py``/``response.py``, our Python over httptools' llhttp) on the same bytes, one message
per feed as a keep-alive connection delivers them:

* request     a browser-like GET head (10 headers, about 500 bytes), events made, framing checked
* response    ``expect(b"GET")`` + a 100-byte response with a Content-Length (the body of
              issue #16's proxy benchmark) and four headers

Every loop is bounded: a row stops after ``--count`` messages or once ``--seconds`` have passed,
whichever comes first; ``--repeat`` rounds run each row and the median is printed, with the
compiled/pure ratio. Outside the timed loops each row checks that both implementations made the
same events of those bytes.

    .venv/bin/python bench/parser.py [--count N] [--seconds S] [--repeat R]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from tlsgate.http import Data, EndOfMessage, Event, Request, Response, request, response

try:
    from tlsgate.http import _fast
except ImportError:  # pragma: no cover - the bench says so rather than measuring pure twice
    raise SystemExit(
        "bench/parser.py: the compiled parser is not built (scripts/install.sh)"
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

BODY = b"x" * 100
RESPONSE = (
    b"HTTP/1.1 200 OK\r\n"
    b"Server: upstream\r\n"
    b"Date: Mon, 07 Dec 2026 09:00:00 GMT\r\n"
    b"Content-Type: text/plain\r\n"
    b"Content-Length: 100\r\n"
    b"\r\n" + BODY
)

AnyRequestParser = _fast.RequestParser | request.RequestParser
AnyResponseParser = _fast.ResponseParser | response.ResponseParser
IMPLEMENTATIONS: dict[
    str, tuple[Callable[[], AnyRequestParser], Callable[[], AnyResponseParser]]
] = {
    "compiled": (_fast.RequestParser, _fast.ResponseParser),
    "pure": (request.RequestParser, response.ResponseParser),
}


def requests(name: str) -> Callable[[int], int]:
    parser = IMPLEMENTATIONS[name][0]()

    def row(count: int) -> int:
        for _ in range(count):
            if len(parser.feed(REQUEST)) != 2:  # pragma: no cover - broken must not look fast
                raise AssertionError(name)
        return count

    return row


def responses(name: str) -> Callable[[int], int]:
    parser = IMPLEMENTATIONS[name][1]()

    def row(count: int) -> int:
        for _ in range(count):
            parser.expect(b"GET")
            if len(parser.feed(RESPONSE)) != 3:  # pragma: no cover
                raise AssertionError(name)
        return count

    return row


ROWS: dict[str, Callable[[str], Callable[[int], int]]] = {
    "request (browser GET head)": requests,
    "response (100 B, Content-Length)": responses,
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


def parsed(name: str) -> tuple[list[Event], list[Event]]:
    request_parser, response_parser = IMPLEMENTATIONS[name]
    upstream = response_parser()
    upstream.expect(b"GET")
    return request_parser().feed(REQUEST), upstream.feed(RESPONSE)


def check() -> None:
    """Both rows parse what they claim to, and both implementations agree on it."""
    (request_events, response_events) = parsed("compiled")
    assert (request_events, response_events) == parsed("pure")
    head = request_events[0]
    assert isinstance(head, Request) and len(head.headers) == 10
    assert isinstance(request_events[1], EndOfMessage)
    assert isinstance(response_events[0], Response)
    assert response_events[1:] == [Data(BODY), EndOfMessage()]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--count", type=int, default=1_000_000, help="at most N messages a row")
    parser.add_argument("--seconds", type=float, default=2.0, help="at most S seconds a row")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the median is printed")
    args = parser.parse_args()
    check()
    print(f"{'':<34} {'compiled':>12} {'pure':>12} {'ratio':>7}")
    for label, make in ROWS.items():
        medians = {}
        for name in IMPLEMENTATIONS:
            row = make(name)
            row(1000)  # warm-up, not timed
            rates = [rate(row, args.count, args.seconds) for _ in range(args.repeat)]
            medians[name] = statistics.median(rates)
        ratio = medians["compiled"] / medians["pure"]
        compiled, pure = medians["compiled"], medians["pure"]
        print(f"{label:<34} {compiled:>10,.0f}/s {pure:>10,.0f}/s {ratio:>6.1f}x")


if __name__ == "__main__":
    main()

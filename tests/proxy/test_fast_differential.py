"""The compiled data-plane helpers against their reference: the same bytes, or the same refusal.

``tlsgate.proxy._fast`` writes access-log lines and rewrites headers in C; ``access_log.py`` and
``headers.py`` keep the pure implementations (``PureAccessLog``, ``headers.PURE``). Each example
gives both the same input: access records of any text (control characters, DEL, non-ASCII,
surrogates, astral code points, over-long targets) at any clock and duration, written in batches;
header lists mixing hop-by-hop, Connection-listed, forwarding and XFCC headers with random ones
(bytes that would inject a line included), from trusted and untrusted peers, with upgrades, Via
and client certificates. The bytes written, the headers returned and the heads serialized must be
equal, or both must raise the same error with the same message.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tlsgate.http import BodyKind, Headers, Request, Response
from tlsgate.proxy import access_log, headers
from tlsgate.proxy.headers import ClientInfo

fast = pytest.importorskip("tlsgate.proxy._fast", reason="the compiled data plane is not built")

DIFF = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- access log ---------------------------------------------------------------------------------

#: Any code point, surrogates included (a str from surrogateescape can hold them).
ANY_TEXT = st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF, categories=None))
TEXT = st.one_of(ANY_TEXT, st.text(st.sampled_from('a/?=%\x00\x1b\x7f\r\n\t"\\\xe9\u2028')))
LONG_TARGET = st.integers(2000, 2100).map(lambda n: "/" + "é" * n)


@st.composite
def records(draw: st.DrawFn) -> tuple[Any, ...]:
    return (
        draw(TEXT),
        draw(st.none() | TEXT),
        draw(st.none() | TEXT | LONG_TARGET),
        draw(TEXT),
        draw(st.integers(0, 999)),
        draw(st.integers(0, 2**62)),
        draw(TEXT),
        draw(st.floats(allow_nan=True, allow_infinity=True) | st.floats(0, 100)),
        draw(st.just("") | TEXT),
        draw(TEXT),
    )


CLOCK = st.floats(-1e10, 1e11) | st.integers(0, 2**33).map(lambda ms: ms / 1000)


def written(
    make: Callable[..., Any], record: Callable[..., Any], path: Path, lines: list[Any], t: float
) -> list[bytes]:
    """What the log had written after each line, and after its flush."""
    seen: list[bytes] = []

    async def run() -> None:
        log = make(str(path), clock=lambda: t)
        for fields in lines:
            log(record(*fields))
            seen.append(path.read_bytes())
        log.flush()
        seen.append(path.read_bytes())
        os.close(log.fd)

    asyncio.run(run())
    return seen


@DIFF
@given(lines=st.lists(records(), min_size=1, max_size=40), t=CLOCK)
def test_the_access_log_writes_the_same_bytes(
    tmp_path_factory: pytest.TempPathFactory, lines: list[Any], t: float
) -> None:
    where = tmp_path_factory.mktemp("log")
    pure = written(access_log.PureAccessLog, access_log.PureAccessRecord, where / "pure", lines, t)
    compiled = written(fast.AccessLog, fast.AccessRecord, where / "fast", lines, t)
    assert compiled == pure


@DIFF
@given(
    requests=st.lists(
        st.tuples(TEXT, st.binary(max_size=30), st.binary(max_size=30) | st.just(b"/" * 2100)),
        min_size=1,
        max_size=20,
    ),
    t=CLOCK,
)
def test_a_request_line_is_its_bytes_as_latin1_text(
    tmp_path_factory: pytest.TempPathFactory, requests: list[tuple[str, bytes, bytes]], t: float
) -> None:
    """The compiled connection hands the log the method and target as the client's bytes; the
    line must be the pure log's for their latin-1 text (control bytes, quotes, backslashes,
    bytes >= 0x80, an over-long target cut at the same point)."""
    where = tmp_path_factory.mktemp("log")

    async def run(path: Path, fast_path: bool) -> bytes:
        log: Any = (fast.AccessLog if fast_path else access_log.PureAccessLog)(
            str(path), clock=lambda: t
        )
        for client, method, target in requests:
            if fast_path:
                log.add_request(client, method, target, "h", 200, 7, "u:1", 0.0125, "e")
            else:
                log(
                    access_log.PureAccessRecord(
                        client,
                        method.decode("latin-1"),
                        target.decode("latin-1"),
                        "h",
                        200,
                        7,
                        "u:1",
                        0.0125,
                        "e",
                    )
                )
        log.flush()
        os.close(log.fd)
        return path.read_bytes()

    pure = asyncio.run(run(where / "pure", False))
    assert asyncio.run(run(where / "fast", True)) == pure


@pytest.mark.parametrize(
    "duration",
    [
        0.0,
        -0.0,
        0.0000625,  # 0.0625 ms: an exact binary tie at the third decimal
        0.0000375,
        0.0000005,
        1e-7,
        0.0015,
        0.0025,
        2.5e-6,
        0.1,
        1.0,
        123.456789,
        999999.9999995,
        1e6 - 1e-7,
        1e6,
        1e7,
        -0.0012,
        1e-300,
    ],
)
def test_durations_print_as_round_then_repr(tmp_path: Path, duration: float) -> None:
    """The compiled log formats common durations with C's "%.3f"; ties, zeros, the boundary of
    that fast path and what lies beyond it print as round(x, 3)'s repr does."""
    lines = [("c", "GET", "/", "h", 200, 1, "u", duration, "")]
    pure = written(access_log.PureAccessLog, access_log.PureAccessRecord, tmp_path / "p", lines, 0)
    compiled = written(fast.AccessLog, fast.AccessRecord, tmp_path / "f", lines, 0)
    assert compiled == pure


def test_the_default_clock_is_now(tmp_path: Path) -> None:
    """Without an injected clock the compiled log reads the real time, as the pure one does."""
    import json
    from datetime import UTC, datetime

    async def run() -> None:
        log = fast.AccessLog(str(tmp_path / "log"))
        before = datetime.now(UTC)
        log(fast.AccessRecord("1.2.3.4", "GET", "/", "h", 200, 2, "u:1", 0.5))
        log.flush()
        os.close(log.fd)
        stamp = datetime.fromisoformat(json.loads((tmp_path / "log").read_bytes())["time"])
        assert before.replace(microsecond=before.microsecond // 1000 * 1000) <= stamp
        assert stamp <= datetime.now(UTC)

    asyncio.run(run())


def test_a_record_is_a_record() -> None:
    a = fast.AccessRecord("c", None, "/", "h", 200, 1, "u", 0.25, site="s")
    assert a == fast.AccessRecord("c", None, "/", "h", 200, 1, "u", 0.25, "", "s")
    assert a != fast.AccessRecord("c", None, "/", "h", 201, 1, "u", 0.25, site="s")
    assert repr(a) == repr(
        access_log.PureAccessRecord("c", None, "/", "h", 200, 1, "u", 0.25, site="s")
    )
    a.status = 404
    assert a.status == 404


# -- header rewriting ---------------------------------------------------------------------------

NAMES = st.sampled_from(
    [
        *sorted(headers.HOP_BY_HOP),
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"x-forwarded-port",
        b"forwarded",
        headers.XFCC,
        b"host",
        b"x-app",
        b"strict-transport-security",
        b"content-length",
        b"via",
    ]
)
TOKEN = st.text("abcdefghijklmnopqrstuvwxyz-0123456789!#$%&'*+.^_`|~", min_size=1, max_size=12).map(
    str.encode
)
VALUES = st.one_of(
    st.binary(max_size=20),
    st.sampled_from([b"close", b"keep-alive", b"x-app, Upgrade", b" X-APP ,, te", b"websocket"]),
    st.lists(TOKEN | NAMES, max_size=3).map(b", ".join),
)
#: A name as a client may spell it in a Connection header: any case, any whitespace that
#: bytes.strip() removes around it.
SPELLED = st.tuples(
    st.sampled_from([b"", b" ", b"\t", b" \x0b", b"\x0c\r\n"]),
    NAMES | TOKEN,
    st.sampled_from([bytes.lower, bytes.upper, bytes.title, bytes.swapcase]),
    st.sampled_from([b"", b" ", b"\t ", b"\n"]),
).map(lambda t: t[0] + t[2](t[1]) + t[3])
HEADERS = st.lists(
    st.tuples(NAMES | NAMES.map(bytes.title) | TOKEN | st.binary(max_size=6), VALUES)
    | st.tuples(st.just(b"connection"), st.lists(NAMES | TOKEN, max_size=3).map(b",".join))
    | st.tuples(st.just(b"connection"), st.lists(SPELLED, max_size=4).map(b",".join)),
    max_size=12,
)
CLIENTS = st.builds(
    ClientInfo,
    st.sampled_from(["192.0.2.1", "2001:db8::1", "", "::1"]),
    st.integers(1, 65535),
    st.sampled_from([b"https", b"http"]),
)
OPTIONAL = st.none() | st.binary(max_size=12)


def outcome(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except Exception as exc:
        return (type(exc), str(exc))


@DIFF
@given(
    items=HEADERS,
    client=CLIENTS,
    host=st.binary(max_size=10),
    trusted=st.booleans(),
    upgrade=OPTIONAL,
    via=st.booleans(),
    cert=OPTIONAL,
)
def test_forwarded_request_headers_are_the_same(
    items: Headers,
    client: ClientInfo,
    host: bytes,
    trusted: bool,
    upgrade: bytes | None,
    via: bool,
    cert: bytes | None,
) -> None:
    def run(function: Callable[..., Headers]) -> Any:
        return outcome(
            lambda: function(
                list(items),
                client,
                host=host,
                trusted=trusted,
                upgrade=upgrade,
                via=via,
                client_cert=cert,
            )
        )

    assert run(fast.forwarded_request_headers) == run(headers.PURE["forwarded_request_headers"])


@DIFF
@given(
    items=HEADERS,
    client=CLIENTS,
    method=st.sampled_from([b"GET", b"POST", b"", b"G T", b"M\xe9"]) | TOKEN,
    target=st.sampled_from([b"/", b"/a?b=c", b"", b"/ x", b"/\x7f", b"/\xe9"]),
    host=st.binary(max_size=10),
    trusted=st.booleans(),
    upgrade=OPTIONAL,
    via=st.booleans(),
    cert=OPTIONAL,
    chunked=st.booleans(),
)
def test_request_heads_are_the_same(
    items: Headers,
    client: ClientInfo,
    method: bytes,
    target: bytes,
    host: bytes,
    trusted: bool,
    upgrade: bytes | None,
    via: bool,
    cert: bytes | None,
    chunked: bool,
) -> None:
    request = Request(method, target, b"1.1", list(items), BodyKind.NONE, None, True, upgrade)

    def run(function: Callable[..., bytes]) -> Any:
        return outcome(
            lambda: function(
                request,
                client,
                host=host,
                trusted=trusted,
                via=via,
                client_cert=cert,
                chunked=chunked,
            )
        )

    assert run(fast.request_head) == run(headers.PURE["request_head"])


@DIFF
@given(
    items=HEADERS,
    status=st.sampled_from([101, 200, 204, 304, 404, 502, 599, 999, 99, 1000]),
    reason=st.sampled_from([b"", b"OK", b"Weird Reason", b"a\rb", b"a\nb", b"a\0b", b"\xe9"]),
    body=st.sampled_from(list(BodyKind)),
    version=st.sampled_from([b"1.1", b"1.0"]),
    keep_alive=st.booleans(),
    upgrade=OPTIONAL,
    hsts=OPTIONAL,
    via=st.booleans(),
    close=st.booleans(),
)
def test_response_heads_are_the_same(
    items: Headers,
    status: int,
    reason: bytes,
    body: BodyKind,
    version: bytes,
    keep_alive: bool,
    upgrade: bytes | None,
    hsts: bytes | None,
    via: bool,
    close: bool,
) -> None:
    request = Request(b"GET", b"/", version, [], BodyKind.NONE, None, keep_alive, upgrade)
    response = Response(status, reason, b"1.1", list(items), body, None, True)

    def head(function: Callable[..., Any]) -> Any:
        return outcome(lambda: function(response, request, hsts=hsts, via=via, close=close))

    def lines(function: Callable[..., Any]) -> Any:
        return outcome(lambda: function(list(items), hsts=hsts, via=via, upgrade=upgrade))

    assert head(fast.response_head) == head(headers.PURE["response_head"])
    assert lines(fast.response_headers) == lines(headers.PURE["response_headers"])


def test_headers_are_tuples_of_bytes() -> None:
    """The compiled serializer reads bytes only (the parsers give nothing else)."""
    request = Request(b"GET", b"/", b"1.1", [("a", "b")], BodyKind.NONE, None, True)  # type: ignore[list-item]
    with pytest.raises(TypeError):
        fast.request_head(request, ClientInfo("1.2.3.4", 443), host=b"h", trusted=False)

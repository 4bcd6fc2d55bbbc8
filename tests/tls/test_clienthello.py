"""Reading ClientHellos (tlsgate.tls.clienthello) as OpenSSL writes them, and refusing junk."""

from __future__ import annotations

import ssl

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tlsgate.tls.clienthello import (
    ClientHello,
    ClientHelloError,
    from_extensions,
    parse_client_hello,
)


def client_hello(
    server_name: str | None = "a.example.test",
    alpn: list[str] | None = None,
    maximum: ssl.TLSVersion = ssl.TLSVersion.MAXIMUM_SUPPORTED,
) -> bytes:
    """The first flight of a real OpenSSL client (Python's ssl over memory BIOs)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # (verifying; no handshake completes here)
    ctx.check_hostname = server_name is not None  # an IP-literal client sends no SNI
    ctx.maximum_version = maximum
    if alpn:
        ctx.set_alpn_protocols(alpn)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=server_name)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def test_real_hellos() -> None:
    hello = client_hello("A.Example.Test", ["acme-tls/1"])
    assert parse_client_hello(hello) == ClientHello("a.example.test", ("acme-tls/1",))
    assert parse_client_hello(client_hello(None, ["h2", "http/1.1"])) == ClientHello(
        None, ("h2", "http/1.1")
    )
    tls12 = client_hello("x.test", None, ssl.TLSVersion.TLSv1_2)
    assert parse_client_hello(tls12) == ClientHello("x.test", ())


def test_more_bytes_needed_until_complete_even_across_records() -> None:
    hello = client_hello("split.example.test", ["acme-tls/1"])
    for cut in range(len(hello)):
        assert parse_client_hello(hello[:cut]) is None
    # The same handshake message in two records (allowed: RFC 8446 5.1).
    body = hello[5:]
    half = len(body) // 2
    split = (
        b"\x16\x03\x01" + half.to_bytes(2, "big") + body[:half]
        + b"\x16\x03\x01" + (len(body) - half).to_bytes(2, "big") + body[half:]
    )  # fmt: skip
    assert parse_client_hello(split[: len(split) - 1]) is None
    assert parse_client_hello(split) == ClientHello("split.example.test", ("acme-tls/1",))
    # Bytes after the ClientHello (a client that sent early data) do not matter.
    assert parse_client_hello(hello + b"\x17\x03\x03\x00\x01x") is not None


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", "content type 71"),
        (b"\x16\x02\x00\x00\x05hello", "bad version"),
        (b"\x16\x03\x01\x00\x00", "record length 0"),
        (b"\x16\x03\x01\x00\x04\x02\x00\x00\x00", "not ClientHello"),
        (b"\x16\x03\x01\x00\x04\x01\xff\xff\xff", "too large"),
        (b"\x16\x03\x01\x00\x06\x01\x00\x00\x02\x03\x03", "truncated random"),
    ],
)
def test_junk_is_refused(data: bytes, match: str) -> None:
    with pytest.raises(ClientHelloError, match=match):
        parse_client_hello(data)


def test_duplicate_extension_is_refused() -> None:
    hello = bytearray(client_hello("d.example.test", ["acme-tls/1"]))
    # Append a second, empty ALPN-less server_name extension... as a duplicate type 0.
    extra = b"\x00\x00\x00\x00"
    body_len = int.from_bytes(hello[6:9], "big") + len(extra)
    record_len = int.from_bytes(hello[3:5], "big") + len(extra)
    # extensions length sits right before the extensions; find it by re-parsing the fixed part.
    pos = 9 + 2 + 32
    pos += 1 + hello[pos]
    pos += 2 + int.from_bytes(hello[pos : pos + 2], "big")
    pos += 1 + hello[pos]
    ext_len = int.from_bytes(hello[pos : pos + 2], "big") + len(extra)
    hello[pos : pos + 2] = ext_len.to_bytes(2, "big")
    hello[6:9] = body_len.to_bytes(3, "big")
    hello[3:5] = record_len.to_bytes(2, "big")
    with pytest.raises(ClientHelloError, match="appears twice"):
        parse_client_hello(bytes(hello) + extra)


@given(st.binary(max_size=600))
def test_fuzz_never_raises_anything_else(data: bytes) -> None:
    try:
        parse_client_hello(data)
    except ClientHelloError:
        pass


@given(st.integers(min_value=0), st.binary(max_size=8))
def test_fuzz_mutated_real_hello(position: int, garbage: bytes) -> None:
    hello = bytearray(client_hello("f.example.test", ["acme-tls/1"]))
    at = position % len(hello)
    hello[at : at + len(garbage)] = garbage
    try:
        parse_client_hello(bytes(hello))
    except ClientHelloError:
        pass


def test_from_extensions_reads_the_bodies_openssl_hands_over() -> None:
    """The socket path's ClientHello callback passes the server_name and ALPN extension bodies
    (SSL_client_hello_get0_ext): the same reading and refusals as a whole hello."""
    sni = b"\x00\x11\x00\x00\x0eA.Example.Test"
    alpn = b"\x00\x0c\x02h2\x08http/1.1"
    assert from_extensions(sni, alpn) == ClientHello("a.example.test", ("h2", "http/1.1"))
    assert from_extensions(None, None) == ClientHello(None, ())
    assert from_extensions(sni, None) == ClientHello("a.example.test", ())
    for bad_sni, bad_alpn in [
        (b"\x00\x11\x00\x00\x0eA.Example.Tes", None),  # truncated name
        (sni + b"x", None),  # bytes after the list
        (b"\x00\x05\x00\x00\x02a\x00", None),  # NUL in the name
        (None, b"\x00\x00"),  # no protocols
        (None, b"\x00\x03\x00\x01h"),  # an empty protocol name
    ]:
        with pytest.raises(ClientHelloError):
            from_extensions(bad_sni, bad_alpn)

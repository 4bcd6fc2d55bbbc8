"""Heads and chunks going out: what we write is refused if a receiver could read other lines."""

from __future__ import annotations

from http import HTTPStatus

from tlsgate.http.events import Headers, LocalProtocolError

__all__ = [
    "REASON_PHRASES",
    "chunk",
    "last_chunk",
    "serialize_request_head",
    "serialize_response_head",
]

_TCHARS = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_VCHARS = bytes(range(0x21, 0x7F))
#: The reason phrase serialize_response_head writes for a status (the compiled heads use it too).
REASON_PHRASES = {s.value: s.phrase.encode("ascii") for s in HTTPStatus}


def _header_block(headers: Headers) -> bytes:
    """Header lines, refusing anything that would make a receiver see other lines than ours."""
    if not headers:
        return b""
    block = b"".join([b"%s: %s\r\n" % header for header in headers])
    lines = len(headers)
    if block.count(b"\n") != lines or block.count(b"\r") != lines or block.find(b"\0") >= 0:
        raise LocalProtocolError("cr, lf or nul in a header (header injection)")
    if block[:1] == b":" or block.find(b"\n:") >= 0:
        raise LocalProtocolError("empty header name")
    if b"".join([name for name, _ in headers]).translate(None, _TCHARS):
        raise LocalProtocolError("invalid header name")
    return block


def serialize_request_head(method: bytes, target: bytes, headers: Headers) -> bytes:
    if not method or method.translate(None, _TCHARS):
        raise LocalProtocolError("invalid method")
    if not target or target.translate(None, _VCHARS):
        raise LocalProtocolError("invalid request target")
    return b"%s %s HTTP/1.1\r\n%s\r\n" % (method, target, _header_block(headers))


def serialize_response_head(
    status: int, reason: bytes, headers: Headers, version: bytes = b"1.1"
) -> bytes:
    if not 100 <= status <= 999:
        raise LocalProtocolError("invalid status code")
    if version != b"1.1" and version != b"1.0":
        raise LocalProtocolError("invalid http version")
    if not reason:
        reason = REASON_PHRASES.get(status, b"")
    elif reason.find(b"\r") >= 0 or reason.find(b"\n") >= 0 or reason.find(b"\0") >= 0:
        raise LocalProtocolError("cr, lf or nul in the reason phrase (header injection)")
    return b"HTTP/%s %d %s\r\n%s\r\n" % (version, status, reason, _header_block(headers))


def chunk(data: bytes) -> bytes:
    """One chunk; empty data gives nothing, because an empty chunk would end the body."""
    if not data:
        return b""
    return b"%x\r\n%s\r\n" % (len(data), data)


def last_chunk(trailers: Headers | None = None) -> bytes:
    return b"0\r\n" + (_header_block(trailers) if trailers else b"") + b"\r\n"

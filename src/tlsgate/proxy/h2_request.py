"""What an HTTP/2 header block means to an HTTP/1.1 upstream, and back.

A stream's request arrives as fields (RFC 9113 8.3: pseudo-fields, then the rest) and leaves
as an HTTP/1.1 head; its response comes back as an HTTP/1.1 head and leaves as fields. The
session already enforced HTTP/2's own shape; these functions check what an HTTP/1.1 upstream
must not be handed, and drop what HTTP/2 must not carry.
"""

from __future__ import annotations

import re

from tlsgate.http import BodyKind, Headers, RemoteProtocolError, Request

__all__ = ["CONNECTION_SPECIFIC", "RequestRefused", "h2_fields", "request_from_fields"]

_NO_BODY = BodyKind.NONE
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


class RequestRefused(RemoteProtocolError):
    """An h2 request the edge answers itself with ``status`` (it never goes upstream)."""


def request_from_fields(
    fields: Headers, *, ended: bool, max_body: int | None
) -> tuple[Request, bytes]:
    """The HTTP/1.1 request an h2 header block stands for, and its authority (the Host sent
    upstream). The session already enforced RFC 9113 section 8.3's shape (pseudo-fields first,
    present once, lower-case names, no connection-specific fields); what is checked here is what
    an HTTP/1.1 upstream must not be handed: a CONNECT, a ``:path`` that is not origin-form, a
    Host that disagrees with ``:authority``, a Content-Length that is not a number.

    Cookie fields are joined with "; " (RFC 9113 8.2.3): HTTP/1.1 allows one Cookie field.
    """
    method = target = authority = b""
    host = b""
    headers: Headers = []
    cookies: list[bytes] = []
    length: int | None = None
    expect = False
    for name, value in fields:
        if name[:1] == b":":
            if name == b":method":
                method = value
            elif name == b":path":
                target = value
            elif name == b":authority":
                authority = value
            continue
        if _CONTROL.search(value):
            # nghttp2 refuses these; the h2 package (the pure twin) lets all but NUL, CR and
            # LF through, and an HTTP/1.1 upstream must not get them (RFC 9110 5.5).
            raise RequestRefused("control character in a field value", 400)
        if name == b"host":
            host = value
            continue
        if name == b"cookie":
            cookies.append(value)
            continue
        if name == b"content-length":
            if not value.isdigit() or (length is not None and int(value) != length):
                raise RequestRefused("invalid content-length", 400)
            length = int(value)
        elif name == b"expect" and value.lower() == b"100-continue":
            expect = True
        headers.append((name, value))
    if method == b"CONNECT":
        raise RequestRefused("CONNECT is not proxied over HTTP/2", 405)
    if not (target[:1] == b"/" or (target == b"*" and method == b"OPTIONS")):
        raise RequestRefused("the :path is not an origin-form target", 400)
    if authority and host and host != authority:
        raise RequestRefused("Host differs from :authority", 400)
    authority = authority or host
    if not authority:
        raise RequestRefused("no :authority and no Host", 400)
    if cookies:
        headers.append((b"cookie", b"; ".join(cookies)))
    headers.insert(0, (b"host", authority))
    if max_body is not None and length is not None and length > max_body:
        raise RequestRefused("request body larger than the limit", 413)
    if ended:
        body, length = _NO_BODY, (0 if length is None else length)
        if length:
            raise RequestRefused("content-length without a body", 400)
    else:
        body = BodyKind.LENGTH if length is not None else BodyKind.CHUNKED
    request = Request(method, target, b"2", headers, body, length, True, None, expect)
    return request, authority


def h2_fields(headers: Headers) -> Headers:
    """HTTP/1.1 fields as HTTP/2 allows them: the connection-specific ones dropped (RFC 9113
    8.2.2; response_headers already removed the hop-by-hop set, this also catches trailers)."""
    return [(n, v) for n, v in headers if n not in CONNECTION_SPECIFIC]


CONNECTION_SPECIFIC = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade", b"te"}
)

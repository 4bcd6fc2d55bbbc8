"""What the framing headers say: Connection tokens and keep-alive, Transfer-Encoding's final
coding, Content-Length's value.

Header-value semantics apart from how the bytes are driven through llhttp (:mod:`framer`): the
request and response parsers and the compiled twin (``_fast.pyx``) decide framing with these.
"""

from __future__ import annotations

__all__ = ["content_length", "ends_chunked", "keep_alive", "tokens"]


def tokens(value: bytes) -> list[bytes]:
    """A comma-separated header value's list items, trimmed and lower-cased (empty ones kept)."""
    return [token.strip(b" \t").lower() for token in value.split(b",")]


def keep_alive(version: bytes, connection: bytes | None) -> bool:
    """RFC 9112 9.3: HTTP/1.1 persists unless ``close``; HTTP/1.0 only with ``keep-alive``."""
    if connection is None:
        return version == b"1.1"
    # (bytes.find, not "in": bytes.__contains__ first tries the operand as an int, and raises)
    named = [connection.lower()] if connection.find(b",") < 0 else tokens(connection)
    if b"close" in named:
        return False
    return version == b"1.1" or b"keep-alive" in named


def ends_chunked(value: bytes) -> bool:
    """RFC 9112 6.1: chunked must be the final coding, applied once; empty list items are junk.

    ``value`` is as llhttp passes it (trailing whitespace kept): llhttp reads ``chunked`` then
    a tab as some other coding, and a response so framed as a body that ends at EOF, so a
    message is chunked here only if llhttp reads it so too.
    """
    codings = tokens(value)
    return (
        codings[-1] == b"chunked"
        and b"chunked" not in codings[:-1]
        and all(codings)
        and not value.rstrip(b" ").endswith(b"\t")
    )


def content_length(value: bytes) -> int | None:
    """A Content-Length value as llhttp accepts it, or None: refused."""
    if not value.isdigit():  # ASCII digits only: no sign, no spaces, no lists
        return None
    value = value.lstrip(b"0") or b"0"
    if len(value) > 19:  # llhttp already refuses >= 2**64; int() refuses > 4300 digits
        return None
    return int(value)

"""Envoy's ``x-forwarded-client-cert``: telling the upstream who the verified client is.

A value is a comma-separated list of elements, one per proxy hop, each a ``;``-separated list of
``Key=value`` pairs: ``By`` (the URI SAN of the proxy that verified the client), ``Hash`` (hex
SHA-256 of the client's DER certificate), ``Subject``, ``URI`` and ``DNS`` (one pair per SAN).
``Subject`` is always double-quoted, other values only when they contain ``,``, ``;``, ``=`` or
``"`` (or start or end with blanks, which a reader would strip). Inside quotes a ``"`` is written
``\\"`` as Envoy documents, and a backslash ``\\\\``: RFC 4514 subjects are full of backslashes,
and without that a subject ending in one could not be read back.

The header is only as trustworthy as the hop that set it, so what arrives from a client is never
passed on as it came: ``sanitize_set`` (the default) replaces it with our own element,
``sanitize`` drops it, and only a peer that is itself a verified client (another proxy) can have
its values forwarded, re-written from what :func:`parse` read, never as the raw bytes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from tlsgate.errors import TlsgateError
from tlsgate.mtls.identity import ClientIdentity

__all__ = ["FORWARD_MODES", "XfccError", "element", "outgoing", "parse"]

#: Like Envoy's forward_client_cert_details (its FORWARD_ONLY is "forward" here).
FORWARD_MODES = ("sanitize", "sanitize_set", "forward", "append_forward")

_KEY = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_SPECIAL = frozenset(',;="')
_BLANKS = " \t"


class XfccError(TlsgateError):
    """An x-forwarded-client-cert value that cannot be read unambiguously."""


# --- writing ----------------------------------------------------------------------------------


def _header_safe(key: str, value: str) -> str:
    """No control characters in a header: RFC 4514 escapes in a subject, %XX elsewhere.

    Both keep the value meaning the same to its own reader; a certificate that smuggled a line
    break into a SAN cannot add a header line upstream.
    """
    if value.isprintable():
        return value
    escape = "\\{:02X}" if key == "Subject" else "%{:02X}"
    return "".join(
        char
        if char.isprintable()
        else "".join(escape.format(b) for b in char.encode("utf-8", "surrogatepass"))
        for char in value
    )


def _quoted(key: str, value: str) -> str:
    value = _header_safe(key, value)
    if key == "Subject" or not _SPECIAL.isdisjoint(value) or value != value.strip(_BLANKS):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return value


def _format(pairs: Iterable[tuple[str, str]]) -> str:
    return ";".join(f"{key}={_quoted(key, value)}" for key, value in pairs)


def element(identity: ClientIdentity, *, by: str | None = None) -> str:
    """Our hop's element: ``By``, ``Hash``, ``Subject``, then one ``URI``/``DNS`` per SAN."""
    pairs: list[tuple[str, str]] = []
    if by is not None:
        pairs.append(("By", by))
    pairs += [("Hash", identity.sha256), ("Subject", identity.subject)]
    pairs += [("URI", uri) for uri in identity.uris]
    pairs += [("DNS", name) for name in identity.dns]
    return _format(pairs)


# --- reading ----------------------------------------------------------------------------------


class _Reader:
    """One pass over a header value; positions in messages are 0-based character offsets."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, what: str) -> XfccError:
        return XfccError(f"malformed x-forwarded-client-cert: {what} (at character {self.pos})")

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def blanks(self) -> None:
        while self.peek() and self.peek() in _BLANKS:
            self.pos += 1

    def key(self) -> str | None:
        """The key of the next pair, None for an empty pair (``;;``, ``,,``, or the end)."""
        self.blanks()
        start = self.pos
        while self.peek() and self.peek() not in "=;,":
            self.pos += 1
        key = self.text[start : self.pos].strip(_BLANKS)
        if self.peek() != "=":
            if key:
                raise self.fail("a pair without '='")
            return None
        if not _KEY.fullmatch(key):
            raise self.fail("a key must be a token (letters, digits, -, ...)" if key else "no key")
        self.pos += 1
        return key

    def value(self) -> str:
        self.blanks()
        if self.peek() != '"':
            start = self.pos
            while self.peek() and self.peek() not in ";,":
                if self.peek() == '"':
                    raise self.fail("a quote inside an unquoted value")
                self.pos += 1
            return self.text[start : self.pos].rstrip(_BLANKS)
        self.pos += 1
        out: list[str] = []
        while True:
            char = self.peek()
            if not char:
                raise self.fail("a quoted value is not closed")
            self.pos += 1
            if char == '"':
                break
            if char == "\\":
                char = self.peek()
                if not char:
                    raise self.fail("a quoted value is not closed")
                self.pos += 1
            out.append(char)
        self.blanks()
        if self.peek() not in ("", ";", ","):
            raise self.fail("text after a quoted value")
        return "".join(out)


def parse(value: str) -> list[dict[str, list[str]]]:
    """The elements of a header value, each key with its values in order; XfccError if malformed.

    Empty elements and pairs (``a=1,,b=2``, a trailing ``;``) are skipped, as RFC 9110 asks of
    list headers. Keys are kept as written (Envoy's are ``By``, ``Hash``, ``Cert``, ``Chain``,
    ``Subject``, ``URI``, ``DNS``).
    """
    if any((ord(char) < 0x20 and char != "\t") or ord(char) == 0x7F for char in value):
        raise XfccError("malformed x-forwarded-client-cert: a control character")
    reader = _Reader(value)
    elements: list[dict[str, list[str]]] = []
    current: dict[str, list[str]] = {}
    while True:
        key = reader.key()
        if key is not None:
            current.setdefault(key, []).append(reader.value())
        separator = reader.peek()
        reader.pos += 1
        if separator != ";":  # "," or the end
            if current:
                elements.append(current)
            current = {}
        if not separator:
            return elements


# --- the value sent upstream ------------------------------------------------------------------


def _forwardable(incoming: Sequence[bytes]) -> list[str]:
    """The incoming elements that read cleanly, re-written; a malformed header value is dropped
    whole, since where its elements begin and end is exactly what cannot be known."""
    out: list[str] = []
    for raw in incoming:
        try:
            elements = parse(raw.decode("utf-8"))
        except (UnicodeDecodeError, XfccError):
            continue
        out += [_format((k, v) for k, values in e.items() for v in values) for e in elements]
    return out


def outgoing(
    mode: str,
    incoming: list[bytes],
    identity: ClientIdentity | None,
    *,
    by: str | None = None,
) -> bytes | None:
    """The one x-forwarded-client-cert value to send upstream; None = send none.

    ``incoming`` are the request's own values of the header. Without a verified client
    certificate nothing is sent in any mode: an anonymous client's header is its own claim.
    """
    if mode not in FORWARD_MODES:
        raise ValueError(f"unknown x-forwarded-client-cert mode {mode!r}")
    if identity is None or mode == "sanitize":
        return None
    if mode == "sanitize_set":
        return element(identity, by=by).encode("utf-8")
    values = _forwardable(incoming)
    if mode == "append_forward":
        values.append(element(identity, by=by))
    return ",".join(values).encode("utf-8") if values else None

"""Reading a TLS ClientHello before OpenSSL does: the server name and the ALPN protocols offered.

Python's ``ssl`` shows the SNI callback the server name but not the client's ALPN list, and a
tls-alpn-01 challenge (RFC 8737) must be answered with a different certificate exactly when the
client offers ``acme-tls/1``. The edge can look at the first bytes of a connection (without
consuming them) and pick the context before the handshake starts; this module is the pure part:
bytes in, a :class:`ClientHello` (or "need more", or an exact error) out.

Only what a decision needs is read: the record and handshake framing (RFC 8446 5.1, 4.1.2), the
``server_name`` (RFC 6066 3) and ``application_layer_protocol_negotiation`` (RFC 7301 3.1)
extensions. A ClientHello split across several records is reassembled; anything malformed is
refused with :class:`ClientHelloError` rather than guessed at, and OpenSSL will refuse it too.
"""

from __future__ import annotations

from dataclasses import dataclass

from tlsgate.errors import TlsgateError

__all__ = [
    "MAX_CLIENT_HELLO",
    "ClientHello",
    "ClientHelloError",
    "from_extensions",
    "parse_client_hello",
]

#: A ClientHello larger than this is refused (real ones are < 2 KiB; post-quantum key shares
#: push them to ~1.8 KiB; 16 KiB is one full record).
MAX_CLIENT_HELLO = 16 * 1024

_HANDSHAKE = 22
_CLIENT_HELLO = 1
_SERVER_NAME = 0
_ALPN = 16


class ClientHelloError(TlsgateError):
    """The bytes are not a well-formed TLS ClientHello."""


@dataclass(frozen=True)
class ClientHello:
    server_name: str | None  # the host_name the client asked for, lower-case ASCII
    alpn: tuple[str, ...]  # protocols offered, in the client's order


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int, what: str) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise ClientHelloError(f"truncated {what}")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def uint(self, size: int, what: str) -> int:
        return int.from_bytes(self.take(size, what), "big")

    def vector(self, length_size: int, what: str) -> _Reader:
        return _Reader(self.take(self.uint(length_size, f"{what} length"), what))

    @property
    def done(self) -> bool:
        return self.pos == len(self.data)


def _handshake_bytes(data: bytes) -> bytes | None:
    """The handshake layer's bytes from as many whole records as the ClientHello needs.

    None when more bytes are needed; raises for anything that is not handshake records.
    """
    out = bytearray()
    pos = 0
    while True:
        if len(data) - pos < 5:
            return None
        content_type = data[pos]
        if content_type != _HANDSHAKE:
            raise ClientHelloError(f"not a TLS handshake record (content type {content_type})")
        if data[pos + 1] != 3:
            raise ClientHelloError("not a TLS record (bad version)")
        length = int.from_bytes(data[pos + 3 : pos + 5], "big")
        if length == 0 or length > 16384:
            raise ClientHelloError(f"bad TLS record length {length}")
        if len(data) - pos - 5 < length:
            return None
        out += data[pos + 5 : pos + 5 + length]
        pos += 5 + length
        if len(out) >= 4:
            needed = 4 + int.from_bytes(out[1:4], "big")
            if needed > MAX_CLIENT_HELLO:
                raise ClientHelloError(f"ClientHello of {needed} bytes is too large")
            if len(out) >= needed:
                return bytes(out[:needed])


def parse_client_hello(data: bytes) -> ClientHello | None:
    """The ClientHello at the start of ``data``, or None if more bytes are needed."""
    handshake = _handshake_bytes(data)
    if handshake is None:
        return None
    if handshake[0] != _CLIENT_HELLO:
        raise ClientHelloError(f"first handshake message is type {handshake[0]}, not ClientHello")
    body = _Reader(handshake[4:])
    body.take(2, "legacy_version")
    body.take(32, "random")
    body.vector(1, "legacy_session_id")
    suites = body.vector(2, "cipher_suites")
    if len(suites.data) == 0 or len(suites.data) % 2:
        raise ClientHelloError("bad cipher_suites")
    body.vector(1, "legacy_compression_methods")
    server_name: str | None = None
    alpn: tuple[str, ...] = ()
    if body.done:  # no extensions at all (an SSLv3-era hello): no SNI, no ALPN
        return ClientHello(None, ())
    extensions = body.vector(2, "extensions")
    if not body.done:
        raise ClientHelloError("bytes after the extensions")
    seen: set[int] = set()
    while not extensions.done:
        kind = extensions.uint(2, "extension type")
        payload = extensions.vector(2, "extension")
        if kind in seen:
            raise ClientHelloError(f"extension {kind} appears twice")  # RFC 8446 4.2
        seen.add(kind)
        if kind == _SERVER_NAME:
            server_name = _server_name(payload)
        elif kind == _ALPN:
            alpn = _alpn(payload)
    return ClientHello(server_name, alpn)


def from_extensions(server_name: bytes | None, alpn: bytes | None) -> ClientHello:
    """The ClientHello of a hello OpenSSL parsed already: its server_name and ALPN extensions'
    bodies as they came (None: absent). Raises :class:`ClientHelloError` as
    :func:`parse_client_hello` does for a malformed one."""
    return ClientHello(
        _server_name(_Reader(server_name)) if server_name is not None else None,
        _alpn(_Reader(alpn)) if alpn is not None else (),
    )


def _server_name(payload: _Reader) -> str | None:
    names = payload.vector(2, "server_name_list")
    if not payload.done:
        raise ClientHelloError("bytes after the server_name_list")
    host: str | None = None
    while not names.done:
        name_type = names.uint(1, "name_type")
        value = names.vector(2, "host_name").data
        if name_type != 0:
            continue  # RFC 6066: unknown name types are skipped
        if host is not None:
            raise ClientHelloError("two host_name entries")  # RFC 6066 3
        if not value or not value.isascii() or b"\x00" in value:
            raise ClientHelloError("bad host_name")
        host = value.decode("ascii").lower().rstrip(".")
    return host


def _alpn(payload: _Reader) -> tuple[str, ...]:
    protocols = payload.vector(2, "protocol_name_list")
    if not payload.done or protocols.done:
        raise ClientHelloError("bad ALPN extension")
    out = []
    while not protocols.done:
        name = protocols.vector(1, "protocol_name").data
        if not name:
            raise ClientHelloError("empty ALPN protocol name")  # RFC 7301 3.1
        out.append(name.decode("latin-1"))
    return tuple(out)

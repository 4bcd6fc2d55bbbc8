"""Just enough of the TLS record layer to see which handshake messages a TLS 1.2 server sent.

In TLS 1.2 the server's flight is plaintext, and a server that wants a client certificate says so
with a CertificateRequest before it refuses with a generic ``handshake_failure`` alert; seeing that
message is the difference between "send a client certificate" and "no cipher in common". Pure:
bytes in, message types out (TLS 1.3 encrypts these, and its refusal has its own alert).
"""

from __future__ import annotations

__all__ = ["CERTIFICATE_REQUEST", "handshake_types"]

_HANDSHAKE = 22
_CHANGE_CIPHER_SPEC = 20
CERTIFICATE_REQUEST = 13


def handshake_types(data: bytes) -> list[int]:
    """Types of the plaintext handshake messages in ``data`` (records from the server)."""
    types: list[int] = []
    body = bytearray()
    offset = 0
    while offset + 5 <= len(data):
        kind = data[offset]
        length = int.from_bytes(data[offset + 3 : offset + 5], "big")
        fragment = data[offset + 5 : offset + 5 + length]
        offset += 5 + length
        if kind == _CHANGE_CIPHER_SPEC:
            break  # everything after is encrypted
        if kind != _HANDSHAKE:
            continue
        body += fragment
        while len(body) >= 4:
            size = int.from_bytes(body[1:4], "big")
            if len(body) < 4 + size:
                break
            types.append(body[0])
            del body[: 4 + size]
    return types

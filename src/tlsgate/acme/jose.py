"""What both ends of ACME compute identically: the JOSE media type, JWK thumbprints (RFC 7638),
key authorizations (RFC 8555 8.1) and the dns-01 TXT value (8.4).

Shared wire format, so it lives beside ``server/`` and ``client/`` rather than in either: the
client builds a challenge answer from exactly the string the server's validator expects, and
neither side imports the other to get it. Pure functions, no I/O.
"""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives import hashes
from josepy import b64
from josepy.jwk import JWK

__all__ = ["CONTENT_TYPE", "dns01_txt_value", "key_authorization", "thumbprint"]

#: The only media type RFC 8555 section 6.2 allows for a request body.
CONTENT_TYPE = "application/jose+json"


def _b64s(data: bytes) -> str:
    return b64.b64encode(data).decode("ascii")


def thumbprint(jwk: JWK) -> str:
    """RFC 7638 SHA-256 thumbprint, base64url without padding (josepy computes it)."""
    return _b64s(jwk.thumbprint(hash_function=hashes.SHA256))


def key_authorization(token: str, jwk: JWK) -> str:
    """The string a challenge response must contain (RFC 8555 section 8.1)."""
    return f"{token}.{thumbprint(jwk)}"


def dns01_txt_value(key_authorization: str) -> str:
    """RFC 8555 section 8.4: base64url(SHA-256(key authorization)), no padding."""
    return _b64s(hashlib.sha256(key_authorization.encode("utf-8")).digest())

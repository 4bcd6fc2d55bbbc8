"""Ed25519 keys and ``EdDSA`` signatures for josepy (RFC 8037), which josepy 2 lacks.

Importing this module registers ``OKP`` keys and the ``EdDSA`` algorithm with josepy (once, and
never over a josepy that has learnt them itself); all cryptography is ``cryptography``'s.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519
from josepy import jwa
from josepy.errors import DeserializationError
from josepy.json_util import decode_b64jose
from josepy.jwk import JWK

__all__ = ["JWKOKP", "EdDSA"]


def _b64s(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class JWKOKP(JWK):
    """Octet key pair JWK (RFC 8037), Ed25519 only: what josepy 2 lacks for ``EdDSA``."""

    typ = "OKP"
    __slots__ = ("key",)
    cryptography_key_types = (ed25519.Ed25519PublicKey, ed25519.Ed25519PrivateKey)
    required = ("crv", JWK.type_field_name, "x")
    key: ed25519.Ed25519PublicKey | ed25519.Ed25519PrivateKey

    def fields_to_partial_json(self) -> dict[str, str]:
        """``crv`` and ``x`` (plus ``d`` for a private key): the members RFC 8037 defines."""
        key = self.key
        public = key if isinstance(key, ed25519.Ed25519PublicKey) else key.public_key()
        fields = {"crv": "Ed25519", "x": _b64s(public.public_bytes_raw())}
        if isinstance(self.key, ed25519.Ed25519PrivateKey):
            fields["d"] = _b64s(self.key.private_bytes_raw())
        return fields

    @classmethod
    def fields_from_json(cls, jobj: Mapping[str, Any]) -> dict[str, Any]:
        """Decode an Ed25519 JWK; other OKP curves (X25519, Ed448) are not signature keys here."""
        if jobj.get("crv") != "Ed25519":
            raise DeserializationError("only the Ed25519 curve is supported")
        try:
            if "d" in jobj:
                d = decode_b64jose(jobj["d"])
                return {"key": ed25519.Ed25519PrivateKey.from_private_bytes(d)}
            x = decode_b64jose(jobj["x"])
            return {"key": ed25519.Ed25519PublicKey.from_public_bytes(x)}
        except (ValueError, TypeError, KeyError) as error:
            raise DeserializationError(f"bad Ed25519 key: {error}") from error

    def public_key(self) -> JWKOKP:
        """The public half (itself when it already is public)."""
        if isinstance(self.key, ed25519.Ed25519PrivateKey):
            return type(self)(key=self.key.public_key())
        return self


class _JWAEdDSA(jwa.JWASignature):
    """``EdDSA`` (RFC 8037 section 3.1) through ``cryptography``'s Ed25519."""

    kty = JWKOKP

    def sign(self, key: Any, msg: bytes) -> bytes:
        """Sign with an Ed25519 private key (tests and the future client)."""
        signature: bytes = key.sign(msg)
        return signature

    def verify(self, key: Any, msg: bytes, sig: bytes) -> bool:
        """True when ``sig`` is a valid Ed25519 signature of ``msg`` under ``key``."""
        try:
            key.verify(sig, msg)
        except InvalidSignature:
            return False
        return True


# Register once, and never over a josepy that has learnt OKP/EdDSA itself.
if "OKP" not in JWK.TYPES:
    JWK.register(JWKOKP)
if "EdDSA" not in jwa.JWASignature.SIGNATURES:
    jwa.JWASignature.register(_JWAEdDSA("EdDSA"))
EdDSA: jwa.JWASignature = jwa.JWASignature.SIGNATURES["EdDSA"]

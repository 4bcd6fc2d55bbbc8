"""Key types: generation, loading, serialisation, and what we accept from others.

A key type is named by one short string (``ecdsa-p256``) everywhere: CLI flags, the store, JSON
output. ECDSA P-256 is the default because it is what every TLS client supports, it makes the
smallest handshakes and it signs fastest (see ``bench/``).
"""

from __future__ import annotations

from enum import StrEnum
from typing import TypeAlias

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from tlsgate.errors import InvalidKey

__all__ = [
    "DEFAULT_KEY_TYPE",
    "MIN_RSA_BITS",
    "KeyType",
    "PrivateKey",
    "PublicKey",
    "check_public_key",
    "describe_key",
    "generate_key",
    "key_type_of",
    "load_private_key",
    "parse_key_type",
    "private_key_pem",
    "signature_hash",
]

PrivateKey: TypeAlias = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
PublicKey: TypeAlias = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey

#: Below this an RSA key is refused everywhere (CA/Browser Forum baseline, NIST SP 800-131A).
MIN_RSA_BITS = 2048


class KeyType(StrEnum):
    ECDSA_P256 = "ecdsa-p256"
    ECDSA_P384 = "ecdsa-p384"
    ED25519 = "ed25519"
    RSA_2048 = "rsa-2048"
    RSA_3072 = "rsa-3072"
    RSA_4096 = "rsa-4096"


DEFAULT_KEY_TYPE = KeyType.ECDSA_P256

_ALIASES = {
    "p256": KeyType.ECDSA_P256,
    "p-256": KeyType.ECDSA_P256,
    "ec": KeyType.ECDSA_P256,
    "ecdsa": KeyType.ECDSA_P256,
    "secp256r1": KeyType.ECDSA_P256,
    "prime256v1": KeyType.ECDSA_P256,
    "p384": KeyType.ECDSA_P384,
    "p-384": KeyType.ECDSA_P384,
    "secp384r1": KeyType.ECDSA_P384,
    "rsa": KeyType.RSA_2048,
    "rsa2048": KeyType.RSA_2048,
    "rsa3072": KeyType.RSA_3072,
    "rsa4096": KeyType.RSA_4096,
}


def parse_key_type(text: str) -> KeyType:
    """Accept the canonical names and the spellings people type (``p256``, ``rsa4096``)."""
    value = text.strip().lower()
    try:
        return KeyType(value)
    except ValueError:
        pass
    if value in _ALIASES:
        return _ALIASES[value]
    choices = ", ".join(k.value for k in KeyType)
    raise InvalidKey(f"unknown key type {text!r}; choose one of: {choices}")


def generate_key(key_type: KeyType = DEFAULT_KEY_TYPE) -> PrivateKey:
    match key_type:
        case KeyType.ECDSA_P256:
            return ec.generate_private_key(ec.SECP256R1())
        case KeyType.ECDSA_P384:
            return ec.generate_private_key(ec.SECP384R1())
        case KeyType.ED25519:
            return ed25519.Ed25519PrivateKey.generate()
        case KeyType.RSA_2048 | KeyType.RSA_3072 | KeyType.RSA_4096:
            bits = int(key_type.value.split("-")[1])
            return rsa.generate_private_key(public_exponent=65537, key_size=bits)
    raise InvalidKey(f"unsupported key type {key_type!r}")  # pragma: no cover - exhaustive


def check_public_key(key: object) -> PublicKey:
    """Return ``key`` if a certificate of ours may carry it, else say precisely why not.

    Used for CSRs: a requester may send any key type OpenSSL knows, and "unsupported" must be
    told apart from "too weak".
    """
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1 | ec.SECP384R1):
            raise InvalidKey(f"unsupported elliptic curve {key.curve.name}; use P-256 or P-384")
        return key
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise InvalidKey(
                f"RSA key of {key.key_size} bits is too weak; at least {MIN_RSA_BITS} are required"
            )
        return key
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    raise InvalidKey(
        f"unsupported key type {type(key).__name__}; use ECDSA P-256/P-384, Ed25519 or RSA"
    )


def key_type_of(key: PrivateKey | PublicKey) -> str:
    """The key type name for display; RSA sizes that are not one of ours are still named."""
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return {"secp256r1": "ecdsa-p256", "secp384r1": "ecdsa-p384"}.get(
            key.curve.name, f"ecdsa-{key.curve.name}"
        )
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return f"rsa-{key.key_size}"
    return "ed25519"


def describe_key(key: PrivateKey | PublicKey) -> str:
    """Human wording: ``ECDSA P-256``, ``RSA 2048``."""
    name = key_type_of(key)
    family, _, size = name.partition("-")
    if family == "ecdsa":
        return f"ECDSA {size.upper().replace('P', 'P-', 1)}"
    if family == "rsa":
        return f"RSA {size}"
    return "Ed25519"


def signature_hash(key: PrivateKey) -> hashes.SHA256 | hashes.SHA384 | None:
    """The hash to sign with: matched to the curve strength; Ed25519 takes none."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size >= 384:
        return hashes.SHA384()
    return hashes.SHA256()


def private_key_pem(key: PrivateKey, passphrase: bytes | None = None) -> bytes:
    """PKCS#8 PEM; with a passphrase, encrypted with the best scheme ``cryptography`` offers."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def load_private_key(
    data: bytes, passphrase: bytes | None = None, *, source: str = "key"
) -> PrivateKey:
    """Load a PEM private key, turning every way it can fail into one clear :class:`InvalidKey`."""
    if b"-----BEGIN" not in data:
        raise InvalidKey(f"{source}: not a PEM private key")
    if b"ENCRYPTED" in data and not passphrase:
        raise InvalidKey(
            f"{source}: the private key is encrypted; set TLSGATE_CA_PASSPHRASE to unlock it"
        )
    try:
        key = serialization.load_pem_private_key(data, password=passphrase or None)
    except TypeError as exc:
        # The key is not encrypted but a passphrase was given: load it without.
        if "not encrypted" in str(exc):
            return load_private_key(data, None, source=source)
        raise InvalidKey(f"{source}: {exc}") from None
    except ValueError as exc:
        detail = "wrong passphrase or corrupted key" if b"ENCRYPTED" in data else "corrupted key"
        raise InvalidKey(f"{source}: cannot load private key ({detail})") from exc
    except UnsupportedAlgorithm as exc:
        raise InvalidKey(f"{source}: unsupported key algorithm") from exc
    if not isinstance(
        key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    ):
        raise InvalidKey(f"{source}: unsupported key type {type(key).__name__}")
    check_public_key(key.public_key())
    return key

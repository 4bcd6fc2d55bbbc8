"""Key types: parsing, generation, (de)serialisation and acceptance (tlsgate.pki.keys)."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x25519
from hypothesis import given, settings
from hypothesis import strategies as st

from tlsgate.errors import InvalidKey, PKIError
from tlsgate.pki.keys import (
    DEFAULT_KEY_TYPE,
    MIN_RSA_BITS,
    KeyType,
    PrivateKey,
    check_public_key,
    describe_key,
    generate_key,
    key_type_of,
    load_private_key,
    parse_key_type,
    private_key_pem,
    signature_hash,
)
from tlsgate.pki.pem import certificate_pem
from tlsgate.pki.profiles import build_root


@cache
def _key(key_type: KeyType) -> PrivateKey:
    """One key per type for the whole module (RSA-4096 generation takes a while)."""
    return generate_key(key_type)


@cache
def _rsa_1024() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=1024)


@cache
def _dsa() -> dsa.DSAPrivateKey:
    return dsa.generate_private_key(key_size=1024)


def _der(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _pkcs8_pem(key: object) -> bytes:
    assert hasattr(key, "private_bytes")
    data = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert isinstance(data, bytes)
    return data


# ---------------------------------------------------------------------------------------------
# parse_key_type
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key_type", list(KeyType))
def test_parse_key_type_canonical(key_type: KeyType) -> None:
    assert parse_key_type(key_type.value) is key_type
    assert parse_key_type(f"  {key_type.value.upper()}\n") is key_type


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("p256", KeyType.ECDSA_P256),
        ("P-256", KeyType.ECDSA_P256),
        ("ec", KeyType.ECDSA_P256),
        ("ECDSA", KeyType.ECDSA_P256),
        ("secp256r1", KeyType.ECDSA_P256),
        ("prime256v1", KeyType.ECDSA_P256),
        ("p384", KeyType.ECDSA_P384),
        ("P-384", KeyType.ECDSA_P384),
        ("secp384r1", KeyType.ECDSA_P384),
        ("rsa", KeyType.RSA_2048),
        ("RSA2048", KeyType.RSA_2048),
        ("rsa3072", KeyType.RSA_3072),
        ("rsa4096", KeyType.RSA_4096),
        ("Ed25519", KeyType.ED25519),
    ],
)
def test_parse_key_type_aliases(text: str, expected: KeyType) -> None:
    assert parse_key_type(text) is expected


@pytest.mark.parametrize("text", ["", "rsa-1024", "rsa1024", "dsa", "p521", "secp521r1", "ed448"])
def test_parse_key_type_unknown_lists_the_choices(text: str) -> None:
    with pytest.raises(InvalidKey) as info:
        parse_key_type(text)
    message = str(info.value)
    assert repr(text) in message
    for key_type in KeyType:
        assert key_type.value in message


@settings(max_examples=200)
@given(st.text(max_size=20))
def test_property_parse_key_type_total(text: str) -> None:
    try:
        key_type = parse_key_type(text)
    except InvalidKey:
        return
    assert isinstance(key_type, KeyType)
    assert parse_key_type(key_type.value) is key_type


# ---------------------------------------------------------------------------------------------
# generate_key and friends
# ---------------------------------------------------------------------------------------------

EXPECTED_DESCRIPTIONS = {
    KeyType.ECDSA_P256: "ECDSA P-256",
    KeyType.ECDSA_P384: "ECDSA P-384",
    KeyType.ED25519: "Ed25519",
    KeyType.RSA_2048: "RSA 2048",
    KeyType.RSA_3072: "RSA 3072",
    KeyType.RSA_4096: "RSA 4096",
}


@pytest.mark.parametrize("key_type", list(KeyType))
def test_generate_key(key_type: KeyType) -> None:
    key = _key(key_type)
    if key_type in (KeyType.ECDSA_P256, KeyType.ECDSA_P384):
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        expected_curve = ec.SECP256R1 if key_type is KeyType.ECDSA_P256 else ec.SECP384R1
        assert isinstance(key.curve, expected_curve)
    elif key_type is KeyType.ED25519:
        assert isinstance(key, ed25519.Ed25519PrivateKey)
    else:
        assert isinstance(key, rsa.RSAPrivateKey)
        assert key.key_size == int(key_type.value.split("-")[1])
        assert key.private_numbers().public_numbers.e == 65537
    assert key_type_of(key) == key_type.value
    assert key_type_of(key.public_key()) == key_type.value
    assert describe_key(key) == EXPECTED_DESCRIPTIONS[key_type]
    public = key.public_key()
    assert check_public_key(public) is public


def test_generate_key_default_and_fresh() -> None:
    assert DEFAULT_KEY_TYPE is KeyType.ECDSA_P256
    first, second = generate_key(), generate_key()
    assert isinstance(first, ec.EllipticCurvePrivateKey)
    assert isinstance(first.curve, ec.SECP256R1)
    assert _der(first) != _der(second)


def test_signature_hash() -> None:
    assert isinstance(signature_hash(_key(KeyType.ECDSA_P256)), hashes.SHA256)
    assert isinstance(signature_hash(_key(KeyType.ECDSA_P384)), hashes.SHA384)
    assert isinstance(signature_hash(_key(KeyType.RSA_2048)), hashes.SHA256)
    assert signature_hash(_key(KeyType.ED25519)) is None


def test_key_type_of_names_foreign_sizes() -> None:
    assert key_type_of(_rsa_1024()) == "rsa-1024"
    assert describe_key(_rsa_1024()) == "RSA 1024"
    assert key_type_of(ec.generate_private_key(ec.SECP521R1())) == "ecdsa-secp521r1"


# ---------------------------------------------------------------------------------------------
# private_key_pem / load_private_key
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key_type", list(KeyType))
def test_round_trip_without_passphrase(key_type: KeyType) -> None:
    key = _key(key_type)
    pem = private_key_pem(key)
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert b"ENCRYPTED" not in pem
    loaded = load_private_key(pem)
    assert type(loaded) is type(key)
    assert _der(loaded) == _der(key)
    # A passphrase given for an unencrypted key is ignored rather than an error.
    assert _der(load_private_key(pem, b"unused")) == _der(key)


@pytest.mark.parametrize("key_type", [KeyType.ECDSA_P256, KeyType.ED25519, KeyType.RSA_2048])
def test_round_trip_with_passphrase(key_type: KeyType) -> None:
    key = _key(key_type)
    pem = private_key_pem(key, b"correct horse")
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert _der(load_private_key(pem, b"correct horse")) == _der(key)


def test_empty_passphrase_means_unencrypted() -> None:
    pem = private_key_pem(_key(KeyType.ECDSA_P256), b"")
    assert b"ENCRYPTED" not in pem
    assert _der(load_private_key(pem)) == _der(_key(KeyType.ECDSA_P256))


def test_encrypted_key_without_passphrase() -> None:
    pem = private_key_pem(_key(KeyType.ECDSA_P256), b"secret")
    for missing in (None, b""):
        with pytest.raises(InvalidKey, match="TLSGATE_CA_PASSPHRASE") as info:
            load_private_key(pem, missing, source="ca.key")
        assert str(info.value).startswith("ca.key: ")
        assert "encrypted" in str(info.value)


def test_traditional_encrypted_key() -> None:
    """The legacy "Proc-Type: 4,ENCRYPTED" PEM is recognised as encrypted too."""
    key = _key(KeyType.ECDSA_P256)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.BestAvailableEncryption(b"secret"),
    )
    assert b"Proc-Type: 4,ENCRYPTED" in pem
    with pytest.raises(InvalidKey, match="TLSGATE_CA_PASSPHRASE"):
        load_private_key(pem)
    with pytest.raises(InvalidKey, match="wrong passphrase"):
        load_private_key(pem, b"wrong")
    assert _der(load_private_key(pem, b"secret")) == _der(key)


def test_wrong_passphrase() -> None:
    pem = private_key_pem(_key(KeyType.ECDSA_P256), b"secret")
    with pytest.raises(InvalidKey, match="wrong passphrase or corrupted key") as info:
        load_private_key(pem, b"Secret", source="ca.key")
    assert str(info.value).startswith("ca.key: ")
    assert "secret" not in str(info.value).lower().replace("ca.key", "")


def _flip_body_byte(pem: bytes) -> bytes:
    """Change one base64 character in the middle of the body (still valid base64)."""
    lines = pem.splitlines(keepends=True)
    middle = len(lines) // 2
    line = bytearray(lines[middle])
    line[len(line) // 2] = ord("A") if line[len(line) // 2] != ord("A") else ord("B")
    lines[middle] = bytes(line)
    return b"".join(lines)


@pytest.mark.parametrize("key_type", [KeyType.ECDSA_P256, KeyType.ED25519, KeyType.RSA_2048])
def test_corrupted_key(key_type: KeyType) -> None:
    pem = private_key_pem(_key(key_type))
    corrupted = [
        pem[: len(pem) // 2],  # truncated
        pem.replace(b"\n", b"\n!!", 2),  # not base64
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        b"-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n",
    ]
    if key_type is KeyType.ED25519:
        # Its short DER has the private key bytes in the middle; any value is valid there.
        corrupted.append(pem.replace(b"MC4CAQAw", b"MC4CAQEw"))
    else:
        corrupted.append(_flip_body_byte(pem))
    for data in corrupted:
        with pytest.raises(InvalidKey, match="corrupted key"):
            load_private_key(data)


def test_corrupted_encrypted_key() -> None:
    pem = private_key_pem(_key(KeyType.ECDSA_P256), b"secret")
    with pytest.raises(InvalidKey, match="wrong passphrase or corrupted key"):
        load_private_key(_flip_body_byte(pem), b"secret")
    with pytest.raises(InvalidKey):
        load_private_key(pem[: len(pem) // 2], b"secret")


@pytest.mark.parametrize("data", [b"", b"not a key", b"\x30\x82\x01\x00"])
def test_not_pem_key(data: bytes) -> None:
    with pytest.raises(InvalidKey, match="not a PEM private key"):
        load_private_key(data)


def test_der_key_is_not_pem() -> None:
    with pytest.raises(InvalidKey, match="not a PEM private key"):
        load_private_key(_der(_key(KeyType.ECDSA_P256)))


def test_certificate_is_not_a_key() -> None:
    key = _key(KeyType.ECDSA_P256)
    cert = build_root(key, "Key Test", now=datetime(2025, 1, 1, tzinfo=UTC))
    with pytest.raises(InvalidKey):
        load_private_key(certificate_pem(cert))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_dsa, "unsupported key type DSAPrivateKey"),
        (x25519.X25519PrivateKey.generate, "unsupported key type X25519PrivateKey"),
        (ed448.Ed448PrivateKey.generate, "unsupported key type Ed448PrivateKey"),
        (_rsa_1024, "1024 bits is too weak"),
        (lambda: ec.generate_private_key(ec.SECP521R1()), "unsupported elliptic curve secp521r1"),
        (lambda: ec.generate_private_key(ec.SECP256K1()), "unsupported elliptic curve secp256k1"),
    ],
)
def test_load_private_key_refuses_keys_we_do_not_use(make: object, message: str) -> None:
    assert callable(make)
    with pytest.raises(InvalidKey, match=message):
        load_private_key(_pkcs8_pem(make()))


@settings(max_examples=15, deadline=None)
@given(st.binary(min_size=1, max_size=64), st.binary(min_size=1, max_size=64))
def test_property_passphrase_round_trip(passphrase: bytes, other: bytes) -> None:
    key = _key(KeyType.ECDSA_P256)
    pem = private_key_pem(key, passphrase)
    assert b"ENCRYPTED" in pem
    assert _der(load_private_key(pem, passphrase)) == _der(key)
    if other != passphrase:
        with pytest.raises(InvalidKey):
            load_private_key(pem, other)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 255))
def test_property_damaged_key_is_invalid_key_or_loads(position: int, value: int) -> None:
    """Overwriting any byte of a key PEM gives InvalidKey or a key; never another exception."""
    pem = bytearray(private_key_pem(_key(KeyType.ECDSA_P256)))
    pem[position % len(pem)] = value
    try:
        load_private_key(bytes(pem))
    except InvalidKey:
        pass


# ---------------------------------------------------------------------------------------------
# check_public_key
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key_type", list(KeyType))
def test_check_public_key_accepts_ours(key_type: KeyType) -> None:
    public = _key(key_type).public_key()
    assert check_public_key(public) is public


def test_check_public_key_rejects_weak_rsa() -> None:
    with pytest.raises(InvalidKey, match=r"RSA key of 1024 bits is too weak.*2048") as info:
        check_public_key(_rsa_1024().public_key())
    assert str(MIN_RSA_BITS) in str(info.value)


@pytest.mark.parametrize(
    ("curve", "name"),
    [(ec.SECP521R1(), "secp521r1"), (ec.SECP256K1(), "secp256k1"), (ec.SECP224R1(), "secp224r1")],
)
def test_check_public_key_rejects_other_curves(curve: ec.EllipticCurve, name: str) -> None:
    # P-521 is unsupported by design: not every TLS client has it, and P-384 is strong enough.
    public = ec.generate_private_key(curve).public_key()
    with pytest.raises(InvalidKey, match=f"unsupported elliptic curve {name}; use P-256 or P-384"):
        check_public_key(public)


@pytest.mark.parametrize(
    ("make", "type_name"),
    [
        (lambda: _dsa().public_key(), "DSAPublicKey"),
        (lambda: x25519.X25519PrivateKey.generate().public_key(), "X25519PublicKey"),
        (lambda: ed448.Ed448PrivateKey.generate().public_key(), "Ed448PublicKey"),
        (lambda: _key(KeyType.ECDSA_P256), r"\w*PrivateKey"),  # a private key, not a public one
        (lambda: b"bytes", "bytes"),
        (lambda: None, "NoneType"),
    ],
)
def test_check_public_key_rejects_other_types(make: object, type_name: str) -> None:
    assert callable(make)
    with pytest.raises(InvalidKey, match=f"unsupported key type {type_name}"):
        check_public_key(make())


def test_invalid_key_is_a_pki_error() -> None:
    assert issubclass(InvalidKey, PKIError)

"""PEM loading with precise errors (tlsgate.pki.pem)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from functools import cache

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from hypothesis import given, settings
from hypothesis import strategies as st

from tlsgate.errors import InvalidPEM, PKIError
from tlsgate.pki.csr import build_csr
from tlsgate.pki.keys import KeyType, PrivateKey, generate_key, private_key_pem
from tlsgate.pki.names import parse_identities
from tlsgate.pki.pem import (
    certificate_pem,
    certificates_pem,
    load_certificate,
    load_certificates,
    load_csr,
    pem_block_types,
)
from tlsgate.pki.profiles import LeafProfile, build_leaf, build_root

NOW = datetime(2025, 1, 1, tzinfo=UTC)
END = b"-----END CERTIFICATE-----"


@cache
def _key(key_type: KeyType = KeyType.ECDSA_P256) -> PrivateKey:
    return generate_key(key_type)


@cache
def _roots() -> tuple[x509.Certificate, ...]:
    return tuple(build_root(_key(), f"PEM Test Root {i}", now=NOW) for i in range(3))


@cache
def _csr() -> x509.CertificateSigningRequest:
    return build_csr(_key(), parse_identities(["csr.example", "10.0.0.1"]))


def _csr_pem() -> bytes:
    return _csr().public_bytes(serialization.Encoding.PEM)


def _frame(label: str, body: bytes) -> bytes:
    return b"-----BEGIN %s-----\n%s\n-----END %s-----\n" % (label.encode(), body, label.encode())


# ---------------------------------------------------------------------------------------------
# Happy paths
# ---------------------------------------------------------------------------------------------


def test_certificate_pem_matches_cryptography() -> None:
    cert = _roots()[0]
    assert certificate_pem(cert) == cert.public_bytes(serialization.Encoding.PEM)
    assert certificates_pem([]) == b""
    assert certificates_pem(_roots()) == b"".join(certificate_pem(c) for c in _roots())


def test_load_certificate_single() -> None:
    cert = _roots()[0]
    assert load_certificate(certificate_pem(cert)) == cert
    assert load_certificates(certificate_pem(cert)) == [cert]


def test_load_certificates_bundle_keeps_order() -> None:
    roots = list(_roots())
    bundle = certificates_pem(roots)
    assert pem_block_types(bundle) == ["CERTIFICATE"] * 3
    assert load_certificates(bundle) == roots
    assert load_certificates(certificates_pem(roots[::-1])) == roots[::-1]


def test_load_certificate_refuses_a_bundle() -> None:
    with pytest.raises(InvalidPEM, match="expected one certificate, found 3"):
        load_certificate(certificates_pem(_roots()), source="server.pem")


def test_text_around_blocks_and_crlf_are_fine() -> None:
    roots = list(_roots()[:2])
    first, second = (certificate_pem(c) for c in roots)
    # openssl -showcerts / "Bag Attributes" style text between and around the blocks.
    noisy = b"subject=CN = a\nissuer=CN = a\n" + first + b"\n\nsome trailer text\n" + second
    assert load_certificates(noisy) == roots
    assert load_certificates(certificates_pem(roots).replace(b"\n", b"\r\n")) == roots
    assert load_certificates(b"\n\n" + first + b"\n\n") == roots[:1]


def test_load_csr_pem_der_and_legacy_label() -> None:
    csr = _csr()
    pem = _csr_pem()
    der = csr.public_bytes(serialization.Encoding.DER)
    assert load_csr(pem) == csr
    assert load_csr(der) == csr
    legacy = pem.replace(b"CERTIFICATE REQUEST", b"NEW CERTIFICATE REQUEST")
    assert load_csr(legacy) == csr


# ---------------------------------------------------------------------------------------------
# Truncation
# ---------------------------------------------------------------------------------------------


def test_truncated_in_the_middle() -> None:
    pem = certificate_pem(_roots()[0])
    with pytest.raises(InvalidPEM, match="truncated") as info:
        load_certificates(pem[: len(pem) // 2], source="ca.pem")
    assert str(info.value).startswith("ca.pem: ")
    with pytest.raises(InvalidPEM, match="truncated"):
        load_certificate(pem[: len(pem) // 2])
    with pytest.raises(InvalidPEM, match="truncated"):
        load_csr(_csr_pem()[: len(_csr_pem()) // 2])


@pytest.mark.parametrize(
    "tail",
    [
        b"-----BEGIN CERTIFICATE-----\nMIIB",  # inside the body
        b"-----BEGIN CERTIFICATE-----\n",  # right after the BEGIN line
        b"-----BEGIN CERTIFICATE--",  # inside the BEGIN line's dashes
        b"-----BEGIN CERTIF",  # inside the BEGIN line's label
        b"-----BEGIN ",
        b"-----BEGIN",
        b"-----BEG",  # inside the BEGIN keyword
        b"---",
    ],
)
def test_bundle_cut_in_the_second_block(tail: bytes) -> None:
    """A bundle cut anywhere in its second certificate must not load as one certificate."""
    first = certificate_pem(_roots()[0])
    with pytest.raises(InvalidPEM, match="truncated"):
        load_certificates(first + tail)


def test_every_prefix_of_a_bundle() -> None:
    """Exhaustively: a prefix either fails with InvalidPEM or holds exactly the complete blocks.

    A cut is only undetectable where it falls between blocks (nothing but whitespace after the
    last END line); then the certificates before it load and nothing else.
    """
    roots = list(_roots()[:2])
    bundle = certificates_pem(roots)
    for cut in range(len(bundle)):
        prefix = bundle[:cut]
        between_blocks = prefix.rstrip().endswith(END)
        try:
            loaded = load_certificates(prefix)
        except InvalidPEM:
            assert not between_blocks, cut
        else:
            assert between_blocks, cut
            assert loaded == roots[: prefix.count(END)], cut


def test_unclosed_block_before_a_complete_one() -> None:
    first, second = (certificate_pem(c) for c in _roots()[:2])
    broken = first[: len(first) // 2] + b"\n" + second
    with pytest.raises(InvalidPEM, match="truncated"):
        load_certificates(broken)


# ---------------------------------------------------------------------------------------------
# Wrong block types
# ---------------------------------------------------------------------------------------------


def test_key_where_certificate_expected() -> None:
    key_pem = private_key_pem(_key())
    with pytest.raises(InvalidPEM, match="expected CERTIFICATE, found PRIVATE KEY") as info:
        load_certificates(key_pem, source="cert.pem")
    assert str(info.value).startswith("cert.pem: ")
    # Nothing of the key is echoed back.
    body = key_pem.splitlines()[1].decode()
    assert body not in str(info.value)


def test_traditional_key_where_certificate_expected() -> None:
    key = _key()
    traditional = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    with pytest.raises(InvalidPEM, match="found EC PRIVATE KEY"):
        load_certificate(traditional)


def test_mixed_bundle_names_the_stray_block() -> None:
    bundle = certificate_pem(_roots()[0]) + private_key_pem(_key())
    with pytest.raises(InvalidPEM, match="found PRIVATE KEY"):
        load_certificates(bundle)


def test_csr_where_certificate_expected_and_back() -> None:
    with pytest.raises(InvalidPEM, match="expected CERTIFICATE, found CERTIFICATE REQUEST"):
        load_certificate(_csr_pem())
    with pytest.raises(
        InvalidPEM,
        match="expected CERTIFICATE REQUEST or NEW CERTIFICATE REQUEST, found CERTIFICATE",
    ):
        load_csr(certificate_pem(_roots()[0]), source="req.csr")


def test_two_csrs_refused() -> None:
    with pytest.raises(InvalidPEM, match="expected one certificate request, found 2"):
        load_csr(_csr_pem() + _csr_pem())


# ---------------------------------------------------------------------------------------------
# Not PEM / corrupted contents
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"hello", b"MIIBkTCCATegAwIBAgIU"])
def test_not_pem(data: bytes) -> None:
    with pytest.raises(InvalidPEM, match="not PEM"):
        load_certificates(data)


def test_der_certificate_is_not_pem() -> None:
    der = _roots()[0].public_bytes(serialization.Encoding.DER)
    with pytest.raises(InvalidPEM, match="not PEM"):
        load_certificate(der)


@pytest.mark.parametrize(
    "body",
    [
        b"!!!! this is not base64 !!!!",
        base64.encodebytes(b"hello world, not DER").strip(),
        base64.encodebytes(b"\x30\x82\xff\xff" + b"\x00" * 64).strip(),
        b"",
    ],
)
def test_garbage_inside_a_valid_frame(body: bytes) -> None:
    with pytest.raises(InvalidPEM, match="corrupted certificate"):
        load_certificates(_frame("CERTIFICATE", body))
    with pytest.raises(InvalidPEM, match="corrupted certificate request"):
        load_csr(_frame("CERTIFICATE REQUEST", body))


def test_garbage_der_csr() -> None:
    for data in (b"\x30\x03\x02\x01\x00", b"\x00" * 10, b"plain text"):
        with pytest.raises(InvalidPEM, match="not a PEM or DER certificate request"):
            load_csr(data, source="req.der")
    with pytest.raises(InvalidPEM, match="not a PEM or DER"):
        load_csr(b"")


def test_invalid_pem_is_a_pki_error() -> None:
    assert issubclass(InvalidPEM, PKIError)


def test_pem_block_types() -> None:
    roots = _roots()
    data = certificate_pem(roots[0]) + private_key_pem(_key()) + _csr_pem()
    assert pem_block_types(data) == ["CERTIFICATE", "PRIVATE KEY", "CERTIFICATE REQUEST"]
    assert pem_block_types(b"no pem here") == []
    with pytest.raises(InvalidPEM, match="truncated"):
        pem_block_types(data[:-40])


# ---------------------------------------------------------------------------------------------
# Property: generated certificates round-trip byte-exact
# ---------------------------------------------------------------------------------------------

_LABEL = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=20)


@st.composite
def certificates(draw: st.DrawFn) -> x509.Certificate:
    issuer_key = _key(draw(st.sampled_from([KeyType.ECDSA_P256, KeyType.ED25519])))
    subject_key = _key(draw(st.sampled_from([KeyType.ECDSA_P256, KeyType.ECDSA_P384])))
    now = draw(
        st.datetimes(
            min_value=datetime(2000, 1, 1), max_value=datetime(2045, 1, 1), timezones=st.just(UTC)
        )
    )
    # Any Unicode common name; 16 characters stay within the 64-byte UTF-8 limit.
    root = build_root(issuer_key, draw(st.text(min_size=1, max_size=16)), now=now)
    if draw(st.booleans()):
        return root
    hosts = draw(st.lists(_LABEL.map(lambda s: s + ".example"), min_size=1, max_size=4))
    profile = LeafProfile(
        server=True, client=draw(st.booleans()), lifetime=timedelta(days=draw(st.integers(1, 400)))
    )
    return build_leaf(
        root,
        issuer_key,
        subject_key.public_key(),
        parse_identities(hosts),
        profile,
        now=now,
        serial=draw(st.integers(1, 2**159 - 1)),
    )


@settings(max_examples=40, deadline=None)
@given(st.lists(certificates(), min_size=1, max_size=4))
def test_property_bundle_round_trips_byte_exact(certs: list[x509.Certificate]) -> None:
    data = certificates_pem(certs)
    loaded = load_certificates(data)
    assert loaded == certs
    assert certificates_pem(loaded) == data
    assert [c.public_bytes(serialization.Encoding.DER) for c in loaded] == [
        c.public_bytes(serialization.Encoding.DER) for c in certs
    ]
    if len(certs) == 1:
        assert certificate_pem(load_certificate(data)) == data

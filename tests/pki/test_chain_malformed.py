"""A certificate cryptography cannot read is a verdict naming the defect, never an exception.

Each certificate here is really built (and signed) with cryptography; broken extensions are raw
DER under the real OID (``UnrecognizedExtension``), duplicates are two extensions with one OID.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.pki.helpers import Hierarchy, hierarchy
from tlsgate.inspect.findings import judge_chain
from tlsgate.inspect.report import Code, Severity
from tlsgate.pki.chain import (
    Reason,
    VerificationFailed,
    build_path,
    check_revocation,
    diagnose,
    verify_chain,
)
from tlsgate.pki.keys import generate_key

NOW = datetime(2026, 6, 1, tzinfo=UTC)
SAN = x509.SubjectAlternativeName([x509.DNSName("a.example")])
SERVER = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH])


@pytest.fixture(scope="module")
def pki() -> Hierarchy:
    return hierarchy(NOW - timedelta(days=1), name="Malformed")


def raw(oid: x509.ObjectIdentifier, der: bytes) -> x509.UnrecognizedExtension:
    return x509.UnrecognizedExtension(oid, der)


def make_leaf(pki: Hierarchy, *extensions: x509.ExtensionType) -> x509.Certificate:
    """A leaf with exactly these extensions (besides basicConstraints and the AKI), in order;
    the builder's constructor takes a list as is, so two may share an OID."""
    listed = [
        x509.BasicConstraints(ca=False, path_length=None),
        x509.AuthorityKeyIdentifier.from_issuer_public_key(pki.intermediate_key.public_key()),
        *extensions,
    ]
    builder = x509.CertificateBuilder(
        issuer_name=pki.intermediate.subject,
        subject_name=x509.Name.from_rfc4514_string("CN=malformed"),
        public_key=generate_key().public_key(),
        serial_number=x509.random_serial_number(),
        not_valid_before=NOW - timedelta(hours=1),
        not_valid_after=NOW + timedelta(days=30),
        extensions=[x509.Extension(e.oid, isinstance(e, x509.BasicConstraints), e) for e in listed],
    )
    return builder.sign(pki.intermediate_key, hashes.SHA256())


def make_intermediate(pki: Hierarchy, *extensions: x509.ExtensionType) -> x509.Certificate:
    listed = [
        x509.BasicConstraints(ca=True, path_length=None),
        x509.KeyUsage(
            digital_signature=True,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=True,
            crl_sign=True,
            encipher_only=False,
            decipher_only=False,
        ),
        *extensions,
    ]
    builder = x509.CertificateBuilder(
        issuer_name=pki.root.subject,
        subject_name=pki.intermediate.subject,
        public_key=pki.intermediate_key.public_key(),
        serial_number=x509.random_serial_number(),
        not_valid_before=NOW - timedelta(days=1),
        not_valid_after=NOW + timedelta(days=300),
        extensions=[x509.Extension(e.oid, True, e) for e in listed],
    )
    return builder.sign(pki.root_key, hashes.SHA256())


GARBAGE_SAN = raw(ExtensionOID.SUBJECT_ALTERNATIVE_NAME, b"\x01\x02garbage")

LEAF_DEFECTS = {
    "malformed SAN": ((GARBAGE_SAN, SERVER), r"the leaf's subjectAltName extension is malformed"),
    "duplicate SAN": (
        (SAN, raw(ExtensionOID.SUBJECT_ALTERNATIVE_NAME, b"\x30\x00"), SERVER),
        r"the leaf's subjectAltName extension appears more than once",
    ),
    "duplicate EKU": (
        (SAN, SERVER, SERVER),
        r"the leaf's extendedKeyUsage extension appears more than once",
    ),
    "empty EKU": (
        (SAN, raw(ExtensionOID.EXTENDED_KEY_USAGE, b"\x30\x00")),
        r"the leaf's extendedKeyUsage extension is malformed",
    ),
    "malformed AIA": (
        (SAN, SERVER, raw(ExtensionOID.AUTHORITY_INFORMATION_ACCESS, b"\x30\x03\x02\x01\x01")),
        r"the leaf's authorityInfoAccess extension is malformed",
    ),
}


@pytest.mark.parametrize("hostname", ["a.example", None])
@pytest.mark.parametrize("case", sorted(LEAF_DEFECTS))
def test_a_malformed_leaf_is_a_verdict_naming_the_extension(
    pki: Hierarchy, case: str, hostname: str | None
) -> None:
    extensions, words = LEAF_DEFECTS[case]
    leaf = make_leaf(pki, *extensions)
    with pytest.raises(VerificationFailed) as exc:
        verify_chain(leaf, [pki.intermediate], [pki.root], now=NOW, hostname=hostname)
    assert exc.value.reason is Reason.MALFORMED
    assert exc.value.certificate == leaf
    assert re.search(words, str(exc.value)), str(exc.value)


def test_malformed_name_constraints_of_the_intermediate_are_named(pki: Hierarchy) -> None:
    bad = make_intermediate(pki, raw(ExtensionOID.NAME_CONSTRAINTS, b"\x30\x03\x01\x01\x00"))
    leaf = make_leaf(pki, SAN, SERVER)
    with pytest.raises(VerificationFailed) as exc:
        verify_chain(leaf, [bad], [pki.root], now=NOW, hostname="a.example")
    assert exc.value.reason is Reason.MALFORMED and exc.value.certificate == bad
    assert "the issuing certificate CN=Malformed Intermediate's nameConstraints extension is " in (
        str(exc.value)
    )


def test_an_underscore_in_a_dns_san_is_no_crash(pki: Hierarchy) -> None:
    """cryptography cannot build a verifier for ``a_b.example``: that used to escape as
    ValueError when no hostname was given (the leaf's own name was used as the subject)."""
    leaf = make_leaf(pki, x509.SubjectAlternativeName([x509.DNSName("a_b.example")]), SERVER)
    verify_chain(leaf, [pki.intermediate], [pki.root], now=NOW)  # no name to check: valid
    with pytest.raises(VerificationFailed) as exc:
        verify_chain(leaf, [pki.intermediate], [pki.root], now=NOW, hostname="a.example")
    assert exc.value.reason is Reason.HOSTNAME_MISMATCH
    with pytest.raises(VerificationFailed) as exc:
        verify_chain(leaf, [pki.intermediate], [pki.root], now=NOW, hostname="a_b.example")
    assert exc.value.reason is Reason.HOSTNAME_MISMATCH
    assert "not a DNS name or IP address" in str(exc.value)


def test_diagnose_build_path_and_revocation_take_malformed_input(pki: Hierarchy) -> None:
    leaf = make_leaf(pki, GARBAGE_SAN, SERVER)
    failure = diagnose(leaf, [pki.intermediate], [pki.root], now=NOW, hostname="a.example")
    assert failure.reason is Reason.MALFORMED
    path, anchor = build_path(leaf, [pki.intermediate, pki.root])
    assert path == [leaf, pki.intermediate, pki.root] and anchor == pki.root


def test_judge_chain_reports_malformed_with_its_own_code(pki: Hierarchy) -> None:
    leaf = make_leaf(pki, GARBAGE_SAN, SERVER)
    judgement = judge_chain(
        [leaf, pki.intermediate],
        [pki.root],
        name="a.example",
        now=NOW,
        warn_days=21,
        critical_days=7,
        trust_label="test roots",
    )
    assert judgement.path == ()
    codes = {f.code: f for f in judgement.findings}
    assert codes[Code.MALFORMED].severity is Severity.CRITICAL
    assert "subjectAltName extension is malformed" in codes[Code.MALFORMED].message
    assert Code.HOSTNAME_MISMATCH not in codes  # unreadable names are not "another host"


# Extensions whose bytes the property test below replaces with anything at all.
MUTATED = [
    ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
    ExtensionOID.EXTENDED_KEY_USAGE,
    ExtensionOID.KEY_USAGE,
    ExtensionOID.AUTHORITY_INFORMATION_ACCESS,
    ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
    ExtensionOID.BASIC_CONSTRAINTS,
    ExtensionOID.NAME_CONSTRAINTS,
    ExtensionOID.CRL_DISTRIBUTION_POINTS,
    ExtensionOID.CERTIFICATE_POLICIES,
]


def _mutations(valid: bytes) -> st.SearchStrategy[bytes]:
    """Random bytes, and the valid encoding with bytes flipped, cut or appended (closer to what
    a fuzzer finds: mostly-right DER that breaks deep inside)."""
    flipped = st.tuples(
        st.integers(0, len(valid) - 1), st.integers(1, 255), st.integers(0, len(valid))
    ).map(lambda t: (valid[: t[0]] + bytes([valid[t[0]] ^ t[1]]) + valid[t[0] + 1 :])[: t[2]])
    return st.one_of(st.binary(max_size=64), flipped, st.binary(max_size=8).map(valid.__add__))


VALID_SAN_DER = SAN.public_bytes()


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    oid=st.sampled_from(MUTATED),
    value=_mutations(VALID_SAN_DER),
    in_intermediate=st.booleans(),
    hostname=st.sampled_from(["a.example", None]),
)
def test_property_only_verification_failed_escapes(
    pki: Hierarchy,
    oid: x509.ObjectIdentifier,
    value: bytes,
    in_intermediate: bool,
    hostname: str | None,
) -> None:
    mutated = raw(oid, value)
    if in_intermediate:
        intermediate = make_intermediate(pki, mutated)
        leaf = make_leaf(pki, SAN, SERVER)
    else:
        intermediate = pki.intermediate
        others = [e for e in (SAN, SERVER) if e.oid != oid]
        leaf = (
            make_leaf(pki, *others, mutated)
            if oid != ExtensionOID.BASIC_CONSTRAINTS
            else (
                make_leaf(pki, SAN, SERVER, mutated)  # a second basicConstraints: a duplicate
            )
        )
    try:
        chain = verify_chain(leaf, [intermediate], [pki.root], now=NOW, hostname=hostname)
        check_revocation(chain, [], now=NOW)
    except VerificationFailed as exc:
        assert exc.reason in Reason and str(exc)
    judgement = judge_chain(
        [leaf, intermediate],
        [pki.root],
        name=hostname,
        now=NOW,
        warn_days=21,
        critical_days=7,
        trust_label="test roots",
    )
    assert judgement.path or any(f.severity is Severity.CRITICAL for f in judgement.findings)

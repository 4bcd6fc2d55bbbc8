"""The pure verdicts: each refusal a browser makes gets its own code and every problem is listed."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.conftest import require_tool
from tests.pki.helpers import Hierarchy, hierarchy
from tlsgate.inspect.findings import judge_chain, protocol_findings
from tlsgate.inspect.report import Code, Severity
from tlsgate.pki.profiles import LeafProfile

NOW = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def pki() -> Hierarchy:
    return hierarchy(NOW - timedelta(days=1), name="Checks")


def judge(
    chain: list[x509.Certificate],
    roots: list[x509.Certificate],
    *,
    name: str | None = "shop.test",
    now: datetime = NOW,
) -> tuple[tuple[x509.Certificate, ...], dict[Code, Severity]]:
    judgement = judge_chain(
        chain, roots, name=name, now=now, warn_days=21, critical_days=7, trust_label="test roots"
    )
    return judgement.path, {f.code: f.severity for f in judgement.findings}


def test_a_good_chain_has_a_path_and_no_findings(pki: Hierarchy) -> None:
    leaf = pki.leaf("shop.test", now=NOW)
    path, codes = judge([leaf, pki.intermediate], [pki.root])
    assert path == (leaf, pki.intermediate, pki.root)
    assert codes == {}


def test_expired_and_wrong_host_are_both_reported(pki: Hierarchy) -> None:
    leaf = pki.leaf("other.test", now=NOW, profile=LeafProfile(lifetime=timedelta(days=30)))
    path, codes = judge([leaf, pki.intermediate], [pki.root], now=NOW + timedelta(days=40))
    assert path == ()
    assert codes == {Code.EXPIRED: Severity.CRITICAL, Code.HOSTNAME_MISMATCH: Severity.CRITICAL}


def test_not_yet_valid(pki: Hierarchy) -> None:
    leaf = pki.leaf("shop.test", now=NOW + timedelta(days=2))
    _, codes = judge([leaf, pki.intermediate], [pki.root])
    assert codes[Code.NOT_YET_VALID] is Severity.CRITICAL


@pytest.mark.parametrize(
    ("days_left", "severity"), [(20, Severity.WARNING), (6, Severity.CRITICAL), (30, None)]
)
def test_expiry_windows(pki: Hierarchy, days_left: int, severity: Severity | None) -> None:
    leaf = pki.leaf("shop.test", now=NOW, profile=LeafProfile(lifetime=timedelta(days=90)))
    now = leaf.not_valid_after_utc - timedelta(days=days_left)
    path, codes = judge([leaf, pki.intermediate], [pki.root], now=now)
    assert path  # still valid: verified
    assert codes.get(Code.EXPIRES_SOON) is severity


def test_an_intermediate_expiring_first_is_a_warning_about_it() -> None:
    short = hierarchy(NOW - timedelta(days=1), intermediate_lifetime=timedelta(days=30))
    leaf = short.leaf("shop.test", now=NOW, profile=LeafProfile(lifetime=timedelta(days=20)))
    judgement = judge_chain(
        [leaf, short.intermediate],
        [short.root],
        name="shop.test",
        now=NOW + timedelta(days=14),
        warn_days=21,
        critical_days=7,
        trust_label="t",
    )
    about = {f.certificate for f in judgement.findings if f.code is Code.EXPIRES_SOON}
    assert about == {0, 1}


def test_missing_intermediate_is_an_incomplete_chain(pki: Hierarchy) -> None:
    leaf = pki.leaf("shop.test", now=NOW)
    path, codes = judge([leaf], [pki.root])
    assert path == ()
    assert codes == {Code.INCOMPLETE_CHAIN: Severity.CRITICAL}


def test_untrusted_root_is_an_unknown_issuer(pki: Hierarchy) -> None:
    leaf = pki.leaf("shop.test", now=NOW)
    other = hierarchy(NOW - timedelta(days=1), name="Other")
    _, codes = judge([leaf, pki.intermediate, pki.root], [other.root])
    assert codes == {Code.UNKNOWN_ISSUER: Severity.CRITICAL}


def _self_signed(
    name: str, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, name)])
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=60))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )


def test_self_signed_leaf(pki: Hierarchy) -> None:
    leaf = _self_signed("shop.test", ec.generate_private_key(ec.SECP256R1()))
    _, codes = judge([leaf], [pki.root])
    assert codes == {Code.SELF_SIGNED: Severity.CRITICAL}


def test_rsa_1024_is_a_weak_key(pki: Hierarchy) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    leaf = _self_signed("shop.test", key)
    _, codes = judge([leaf], [leaf])
    assert codes[Code.WEAK_KEY] is Severity.CRITICAL


def test_sha1_signature_is_weak(tmp_path: Path) -> None:
    # cryptography refuses to sign with SHA-1 at all; OpenSSL's command line still can.
    openssl = require_tool("openssl")
    out = tmp_path / "sha1.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-sha1",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            str(tmp_path / "k.pem"),
            "-out",
            str(out),
            "-subj",
            "/CN=shop.test",
            "-addext",
            "subjectAltName=DNS:shop.test",
            "-days",
            "30",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    leaf = x509.load_pem_x509_certificate(out.read_bytes())
    now = leaf.not_valid_before_utc + timedelta(hours=1)
    _, codes = judge([leaf], [], now=now)
    assert codes[Code.WEAK_SIGNATURE] is Severity.CRITICAL


def test_an_ip_address_is_matched_against_ip_sans(pki: Hierarchy) -> None:
    leaf = pki.leaf("127.0.0.1", now=NOW)
    path, codes = judge([leaf, pki.intermediate], [pki.root], name="127.0.0.1")
    assert path and codes == {}
    _, codes = judge([leaf, pki.intermediate], [pki.root], name="127.0.0.2")
    assert Code.HOSTNAME_MISMATCH in codes


def test_no_name_skips_the_host_check(pki: Hierarchy) -> None:
    leaf = pki.leaf("shop.test", now=NOW)
    path, codes = judge([leaf, pki.intermediate], [pki.root], name=None)
    assert path and codes == {}


def test_a_leaf_without_subject_alt_name_says_so(pki: Hierarchy) -> None:
    """Not "invalid" with the verifier's own words: the finding names the missing SAN."""
    subject = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "shop.test")])
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(pki.intermediate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=60))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(pki.intermediate_key, hashes.SHA256())
    )
    judgement = judge_chain(
        [leaf, pki.intermediate], [pki.root], name=None, now=NOW, warn_days=21,
        critical_days=7, trust_label="t",
    )  # fmt: skip
    assert [f.code for f in judgement.findings] == [Code.NO_SUBJECT_ALT_NAME]
    assert "common name" in judgement.findings[0].message


def test_an_empty_chain_judges_nothing() -> None:
    judgement = judge_chain(
        [], [], name="x.test", now=NOW, warn_days=21, critical_days=7, trust_label="t"
    )
    assert judgement.path == () and judgement.findings == []


@pytest.mark.parametrize(
    ("version", "legacy"),
    [("TLSv1", True), ("TLSv1.1", True), ("TLSv1.2", False), ("TLSv1.3", False)],
)
def test_legacy_protocols(version: str, legacy: bool) -> None:
    findings = protocol_findings(version)
    assert bool(findings) is legacy
    if legacy:
        assert findings[0].code is Code.LEGACY_TLS and "2020" in findings[0].message

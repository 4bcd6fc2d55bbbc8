"""``check FILE``: chains, CA certificates and garbage, judged and explained without a network."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from rich.console import Console

from tests.pki.helpers import Hierarchy, hierarchy
from tlsgate.inspect import CheckOptions, Code, Report, Severity, check_file, load_trust
from tlsgate.inspect.explain import explain
from tlsgate.pki.profiles import LeafProfile

NOW = datetime.now(UTC)


@pytest.fixture(scope="module")
def pki() -> Hierarchy:
    return hierarchy(NOW - timedelta(days=1), name="Files")


@pytest.fixture
def options(pki: Hierarchy, tmp_path: Path) -> CheckOptions:
    root = tmp_path / "root.pem"
    root.write_bytes(pki.root.public_bytes(Encoding.PEM))
    return CheckOptions(trust=load_trust(root))


def text_of(report: Report) -> str:
    console = Console(record=True, width=200, color_system=None)
    explain(report, console)
    return console.export_text()


def test_a_full_chain_file_is_ok(pki: Hierarchy, options: CheckOptions, tmp_path: Path) -> None:
    leaf = pki.leaf("files.test", now=NOW)
    path = tmp_path / "fullchain.pem"
    path.write_bytes(leaf.public_bytes(Encoding.PEM) + pki.intermediate.public_bytes(Encoding.PEM))
    report = check_file(path, options, name="files.test")
    assert report.severity is Severity.OK and len(report.path) == 3
    text = text_of(report)
    assert "Path to a trusted root" in text and "Verdict: OK" in text
    data = json.loads(json.dumps(report.to_json()))
    assert data["kind"] == "file" and data["verified"] is True and data["exit_code"] == 0


def test_a_der_leaf_alone_is_an_incomplete_chain(
    pki: Hierarchy, options: CheckOptions, tmp_path: Path
) -> None:
    path = tmp_path / "leaf.der"
    path.write_bytes(pki.leaf("files.test", now=NOW).public_bytes(Encoding.DER))
    report = check_file(path, options)
    assert [f.code for f in report.findings] == [Code.INCOMPLETE_CHAIN]


def test_a_ca_certificate_is_judged_on_dates_and_key(
    pki: Hierarchy, options: CheckOptions, tmp_path: Path
) -> None:
    path = tmp_path / "int.pem"
    path.write_bytes(pki.intermediate.public_bytes(Encoding.PEM))
    report = check_file(path, options, name=None)
    assert report.severity is Severity.OK, report.findings
    assert "CA certificate" in text_of(report)
    late = CheckOptions(trust=options.trust, now=pki.intermediate.not_valid_after_utc)
    assert Code.EXPIRES_SOON in {f.code for f in check_file(path, late).findings}


def test_an_expiring_leaf_warns(pki: Hierarchy, options: CheckOptions, tmp_path: Path) -> None:
    leaf = pki.leaf("files.test", now=NOW, profile=LeafProfile(lifetime=timedelta(days=10)))
    path = tmp_path / "soon.pem"
    path.write_bytes(leaf.public_bytes(Encoding.PEM) + pki.intermediate.public_bytes(Encoding.PEM))
    report = check_file(path, options)
    assert report.severity is Severity.WARNING
    assert "expires in" in text_of(report)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", "empty"),
        (b"-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n", "not a certificate"),
        (b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "no CERTIFICATE"),
        (bytes(range(256)), "not a certificate"),
    ],
)
def test_garbage_is_a_finding_not_a_crash(
    options: CheckOptions, tmp_path: Path, content: bytes, words: str
) -> None:
    path = tmp_path / "bad.pem"
    path.write_bytes(content)
    report = check_file(path, options)
    assert [f.code for f in report.findings] == [Code.INVALID_FILE]
    assert words in report.findings[0].message
    assert "Verdict: CRITICAL" in text_of(report)


def test_a_missing_file(options: CheckOptions, tmp_path: Path) -> None:
    report = check_file(tmp_path / "nope.pem", options)
    assert report.findings[0].code is Code.INVALID_FILE
    assert "No such file" in report.findings[0].message


def test_a_trusted_chain_that_fails_on_dates_says_so(
    pki: Hierarchy, options: CheckOptions, tmp_path: Path
) -> None:
    leaf = pki.leaf("files.test", now=NOW)
    path = tmp_path / "fullchain.pem"
    path.write_bytes(leaf.public_bytes(Encoding.PEM) + pki.intermediate.public_bytes(Encoding.PEM))
    report = check_file(path, options, name="other.test")
    text = text_of(report)
    assert "leads to a trusted root" in text and "No path" not in text

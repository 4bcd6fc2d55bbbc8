"""Client certificates are judged as client certificates: ``check FILE`` and ``monitor``'s store.

A SPIFFE SVID or an e-mail certificate has no host name to match and may not be meant for
servers at all; judging it as a server certificate called every one CRITICAL. Each is issued here
by the internal CA through the real CLI, as a user would, then checked through the real CLI.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.pki.helpers import hierarchy
from tlsgate.ca import CertificateAuthority
from tlsgate.cli import main
from tlsgate.inspect import CheckOptions, Code, Severity, check_file, load_trust
from tlsgate.inspect.findings import judge_chain
from tlsgate.pki.chain import Usage
from tlsgate.pki.names import parse_identities
from tlsgate.pki.pem import certificate_pem
from tlsgate.pki.profiles import LeafProfile

SVID = "spiffe://example.org/ns/prod/sa/web"
RAW = ("validation failed", "<Certificate", "encountered processing", "candidates exhausted")


def issue(out: Path, *args: str) -> Path:
    """``tlsgate ca issue ARGS --out OUT``; the fullchain file it wrote."""
    assert main(["ca", "issue", *args, "--out", str(out)]) == 0
    return out / "fullchain.pem"


@pytest.fixture
def issued(ca: CertificateAuthority, tmp_path: Path) -> dict[str, Path]:
    """An SVID, an e-mail certificate and a client-only DNS one, as the README issues them."""
    (tmp_path / "root.pem").write_bytes(certificate_pem(ca.root))
    return {
        "svid": issue(tmp_path / "svid", "--client", "--spiffe", SVID),
        "email": issue(tmp_path / "email", "me@example.com", "--client"),
        "client": issue(tmp_path / "client", "worker.internal", "--client"),
    }


def check(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code = main(["check", *argv, "--json"])
    out = capsys.readouterr()
    assert "internal error" not in out.err, out.err
    report = json.loads(out.out)
    for finding in report["findings"]:
        assert not any(raw in finding["message"] for raw in RAW), finding
    return code, report


@pytest.mark.parametrize("kind", ["svid", "email", "client"])
def test_check_file_calls_a_client_certificate_ok(
    kind: str, issued: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report = check(capsys, str(issued[kind]), "--ca", str(tmp_path / "root.pem"))
    assert (code, report["verdict"], report["findings"]) == (0, "ok", []), report
    assert len(report["path"]) == 3  # verified up to the root, not merely not refused
    assert report["judged_as"] == "client"
    assert main(["check", str(issued[kind]), "--ca", str(tmp_path / "root.pem")]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "It is a client certificate" in text and "Verdict: OK: a server accepts this" in text


def test_a_client_certificate_checked_for_a_host_is_refused_in_plain_words(
    issued: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Asked "would a server presenting this pass for worker.internal", the answer stays no."""
    root = str(tmp_path / "root.pem")
    code, report = check(
        capsys, str(issued["client"]), "--ca", root, "--servername", "worker.internal"
    )
    assert code == 2
    (finding,) = report["findings"]
    assert finding["code"] == Code.WRONG_USAGE
    assert "client certificate" in finding["message"] and "server" in finding["message"]
    code, report = check(capsys, str(issued["svid"]), "--ca", root, "--servername", "web.internal")
    assert code == 2
    assert [f["code"] for f in report["findings"]] == [Code.HOSTNAME_MISMATCH]


def test_an_e_mail_certificate_without_client_usage_is_wrong_usage(
    issued: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server_only = issue(tmp_path / "email-server", "ops@example.com", "--server")
    capsys.readouterr()  # what ca issue printed
    code, report = check(capsys, str(server_only), "--ca", str(tmp_path / "root.pem"))
    assert code == 2
    (finding,) = report["findings"]
    assert finding["code"] == Code.WRONG_USAGE
    assert "--client" in finding["message"]


def test_a_client_certificate_is_still_judged_on_dates_and_trust(
    issued: dict[str, Path], tmp_path: Path, now: datetime
) -> None:
    """The client policy is a policy, not a pass: expiry and an unknown issuer still count."""
    trusted = CheckOptions(trust=load_trust(tmp_path / "root.pem"), now=now + timedelta(days=91))
    report = check_file(issued["svid"], trusted)
    assert report.severity is Severity.CRITICAL
    assert Code.EXPIRED in [f.code for f in report.findings]
    (tmp_path / "other.pem").write_bytes(certificate_pem(hierarchy(now, name="Other").root))
    stranger = CheckOptions(trust=load_trust(tmp_path / "other.pem"))
    report = check_file(issued["svid"], stranger)
    assert report.severity is Severity.CRITICAL and not report.path
    assert [f.code for f in report.findings] == [Code.INCOMPLETE_CHAIN]


def test_judge_chain_picks_the_usage_from_the_certificate(
    ca: CertificateAuthority, now: datetime
) -> None:
    client = ca.issue(
        parse_identities(["worker.internal"]),
        now=now,
        profile=LeafProfile(server=False, client=True),
    )
    both = ca.issue(
        parse_identities(["api.internal"]), now=now, profile=LeafProfile(server=True, client=True)
    )
    chain = (client.certificate, client.intermediate)
    judged = judge_chain(
        chain, (ca.root,), name=None, now=now, warn_days=21, critical_days=7, trust_label="t"
    )
    assert judged.usage is Usage.CLIENT and judged.path and not judged.findings
    chain = (both.certificate, both.intermediate)
    judged = judge_chain(
        chain, (ca.root,), name=None, now=now, warn_days=21, critical_days=7, trust_label="t"
    )
    assert judged.usage is Usage.SERVER and judged.path and not judged.findings


def test_monitor_store_calls_svids_and_e_mail_certificates_ok(
    ca: CertificateAuthority,
    issued: dict[str, Path],
    state_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = tmp_path / "monitor.toml"
    config.write_text(f'[[target]]\nstore = "{state_dir}"\nname = "ca"\n')
    code = main(["monitor", "-c", str(config), "--once", "--json"])
    out = capsys.readouterr()
    reports = {r["target"]: r for r in json.loads(out.out)}
    verdicts = {target: r["verdict"] for target, r in reports.items()}
    assert verdicts == {
        "ca: root CA": "ok",
        "ca: intermediate CA": "ok",
        f"ca: issued {SVID}": "ok",
        "ca: issued me@example.com": "ok",
        "ca: issued worker.internal": "ok",
    }, out.out
    assert code == 0, out.err

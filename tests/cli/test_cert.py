"""``tlsgate cert obtain`` against a real ``tlsgate ca serve`` (and its refusals)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509

from tests.acme.test_interop_e2e import AcmeCA, acme_ca  # noqa: F401  (the fixture)

from .test_ca_cli import refused

pytestmark = pytest.mark.interop


def test_obtain_writes_files_reuses_the_account_and_runs_the_hook(
    acme_ca: AcmeCA,  # noqa: F811
    tmp_path: Path,
) -> None:
    out = tmp_path / "certs"
    marker = tmp_path / "deployed"
    state = tmp_path / "client-state"
    cmd = [
        sys.executable, "-m", "tlsgate", "cert", "obtain", "o.example.test", "p.example.test",
        "--directory", acme_ca.directory, "--ca-root", str(acme_ca.root),
        "--http-01-address", "127.0.0.1", "--http-01-port", str(acme_ca.http_port),
        "--out", str(out), "--state", str(state), "--email", "ops@example.test",
        "--deploy-hook", f'echo "$TLSGATE_CERT_DIR $TLSGATE_NAMES" > {marker}',
    ]  # fmt: skip
    for _ in range(2):
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr + acme_ca.log.read_text()
    assert stat.S_IMODE(os.stat(out / "key.pem").st_mode) == 0o600
    leaf = x509.load_pem_x509_certificate((out / "cert.pem").read_bytes())
    fullchain = x509.load_pem_x509_certificates((out / "fullchain.pem").read_bytes())
    assert fullchain[0] == leaf and len(fullchain) == 2
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(san.get_values_for_type(x509.DNSName)) == ["o.example.test", "p.example.test"]
    assert marker.read_text().split() == [str(out), "o.example.test", "p.example.test"]
    # One account key for this CA, reused by the second run.
    assert len(list((state / "acme-accounts").iterdir())) == 1


def test_obtain_refusals(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    refused(
        capsys, "cert", "obtain", "x.test", "--directory", "https://127.0.0.1:9/directory",
        "--ca-root", str(tmp_path / "missing.pem"), "--state", str(tmp_path / "s"),
        "--http-01-port", "0", match="does not exist",
    )  # fmt: skip
    refused(
        capsys, "cert", "obtain", "x.test", "--directory", "https://127.0.0.1:9/directory",
        "--state", str(tmp_path / "s"), "--http-01-port", "0", "--eab", "nokey",
        match="KEY_ID:BASE64URL_MAC_KEY",
    )  # fmt: skip
    refused(
        capsys, "cert", "obtain", "x.test", "--directory", "https://127.0.0.1:9/directory",
        "--state", str(tmp_path / "s"), "--http-01-port", "0", match="cannot read the ACME",
    )  # fmt: skip

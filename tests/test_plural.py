"""Counts in messages agree with their number ("1 entry", never "1 entries")."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509

from tlsgate.cli import main
from tlsgate.plural import count


def test_count() -> None:
    assert count(0, "certificate") == "0 certificates"
    assert count(1, "certificate") == "1 certificate"
    assert count(2, "entry", "entries") == "2 entries"
    assert count(1, "entry", "entries") == "1 entry"


def test_ca_crl_says_one_entry(
    state_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ca", "init"]) == 0
    assert main(["ca", "issue", "a.example", "--out", str(tmp_path / "a")]) == 0
    cert = (tmp_path / "a" / "cert.pem").read_bytes()
    number = x509.load_pem_x509_certificate(cert).serial_number
    assert main(["ca", "revoke", f"{number:X}"]) == 0
    capsys.readouterr()
    assert main(["ca", "crl", "--out", str(tmp_path / "crl.pem")]) == 0
    assert capsys.readouterr().err == f"wrote CRL with 1 entry to {tmp_path / 'crl.pem'}\n"

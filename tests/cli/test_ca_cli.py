"""``tlsgate ca``: the exit-code contract, the files it writes, and that refusals write nothing."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tlsgate.cli import main
from tlsgate.pki.csr import build_csr
from tlsgate.pki.keys import generate_key
from tlsgate.pki.names import parse_identities
from tlsgate.store.sqlite import SQLiteStore

Run = tuple[int, str, str]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> Run:
    try:
        code = main(list(args))
    except SystemExit as exc:  # argparse errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def ok(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code, out, err = run(capsys, *args)
    assert code == 0, err
    return out


def refused(capsys: pytest.CaptureFixture[str], *args: str, match: str) -> str:
    """Exit code 2 and exactly one line on stderr that says what is wrong."""
    code, out, err = run(capsys, *args)
    assert code == 2, (code, out, err)
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert match.lower() in lines[0].lower(), lines[0]
    assert "Traceback" not in err
    return lines[0]


def cert_count(state_dir: Path) -> int:
    store = SQLiteStore(state_dir)
    try:
        return len(store.list_certificates())
    finally:
        store.close()


@pytest.fixture
def inited(state_dir: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    ok(capsys, "ca", "init", "--name", "Acme Test")
    return state_dir


def test_init_issue_list_show_revoke_crl(
    inited: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "out"
    data = json.loads(
        ok(capsys, "ca", "issue", "localhost", "127.0.0.1", "--out", str(out_dir), "--json")
    )
    assert data["names"] == ["localhost", "127.0.0.1"]
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "cert.pem",
        "chain.pem",
        "fullchain.pem",
        "key.pem",
    ]
    assert stat.S_IMODE((out_dir / "key.pem").stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate((out_dir / "cert.pem").read_bytes())
    assert (out_dir / "fullchain.pem").read_bytes() == (out_dir / "cert.pem").read_bytes() + (
        out_dir / "chain.pem"
    ).read_bytes()
    serial = data["serial"]
    assert int(serial, 16) == cert.serial_number

    listed = json.loads(ok(capsys, "ca", "list", "--json"))
    assert [c["serial"] for c in listed] == [serial]
    assert listed[0]["status"] == "valid"
    assert serial in ok(capsys, "ca", "list")

    colon = ":".join(serial[i : i + 2] for i in range(0, len(serial), 2)).lower()
    shown = json.loads(ok(capsys, "ca", "show", colon, "--json"))
    assert shown["serial"] == serial and shown["pem"].startswith("-----BEGIN CERTIFICATE-----")
    assert (
        ok(capsys, "ca", "show", f"serial={serial}", "--pem") == (out_dir / "cert.pem").read_text()
    )

    ok(capsys, "ca", "revoke", serial, "--reason", "keyCompromise")
    refused(capsys, "ca", "revoke", serial, match="already revoked")
    revoked = json.loads(ok(capsys, "ca", "show", serial, "--json"))
    assert (revoked["requester"], revoked["revoked_by"]) == ("cli", "cli")
    assert "by cli" in ok(capsys, "ca", "show", serial)
    assert (
        json.loads(ok(capsys, "ca", "list", "--json", "--status", "revoked"))[0]["serial"] == serial
    )
    assert json.loads(ok(capsys, "ca", "list", "--json", "--status", "valid")) == []

    crl_path = tmp_path / "crl.pem"
    ok(capsys, "ca", "crl", "--out", str(crl_path))
    crl = x509.load_pem_x509_crl(crl_path.read_bytes())
    assert crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None


def test_expiring_within(inited: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ok(capsys, "ca", "issue", "soon.example", "--days", "3", "--out", str(tmp_path / "a"))
    ok(capsys, "ca", "issue", "later.example", "--out", str(tmp_path / "b"))
    soon = json.loads(ok(capsys, "ca", "list", "--expiring-within", "7", "--json"))
    assert [c["names"] for c in soon] == [["soon.example"]]


def test_export_root(inited: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pem = ok(capsys, "ca", "export-root")
    root = x509.load_pem_x509_certificate(pem.encode())
    assert root.issuer == root.subject
    ok(capsys, "ca", "export-root", "--intermediate", "--out", str(tmp_path / "bundle.pem"))
    assert len(x509.load_pem_x509_certificates((tmp_path / "bundle.pem").read_bytes())) == 2


def test_issue_from_csr(inited: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = generate_key()
    csr = build_csr(key, parse_identities(["svc.internal"]))
    csr_path = tmp_path / "req.csr"
    csr_path.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    out_dir = tmp_path / "out"
    ok(capsys, "ca", "issue", "--csr", str(csr_path), "--client", "--out", str(out_dir))
    assert not (out_dir / "key.pem").exists()  # the requester keeps its key
    cert = x509.load_pem_x509_certificate((out_dir / "cert.pem").read_bytes())
    assert cert.public_key() == key.public_key()
    refused(
        capsys,
        "ca",
        "issue",
        "other.internal",
        "--csr",
        str(csr_path),
        "--out",
        str(tmp_path / "x"),
        match="other names",
    )


def test_spiffe_svid(inited: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = json.loads(
        ok(
            capsys,
            "ca",
            "issue",
            "--client",
            "--spiffe",
            "spiffe://prod.example/ns/x/sa/y",
            "--out",
            str(tmp_path / "svid"),
            "--json",
        )
    )
    assert data["names"] == ["spiffe://prod.example/ns/x/sa/y"]
    assert sorted(data["usages"]) == ["client", "server"]


def test_default_out_dir_and_refusing_to_overwrite(
    inited: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    ok(capsys, "ca", "issue", "*.example.com")
    assert (tmp_path / "wildcard.example.com" / "key.pem").exists()
    before = (tmp_path / "wildcard.example.com" / "key.pem").read_bytes()
    refused(capsys, "ca", "issue", "*.example.com", match="already exists")
    assert (tmp_path / "wildcard.example.com" / "key.pem").read_bytes() == before
    assert cert_count(inited) == 1
    ok(capsys, "ca", "issue", "*.example.com", "--force")
    assert cert_count(inited) == 2


def test_init_twice_and_force(inited: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = ok(capsys, "ca", "export-root")
    refused(capsys, "ca", "init", match="already exists")
    assert ok(capsys, "ca", "export-root") == root
    ok(capsys, "ca", "init", "--force")
    assert ok(capsys, "ca", "export-root") != root


def test_name_constraints_cli(
    state_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ok(capsys, "ca", "init", "--permit-dns", "corp.example", "--permit-ip", "10.0.0.0/8")
    ok(capsys, "ca", "issue", "a.corp.example", "10.1.1.1", "--out", str(tmp_path / "a"))
    refused(
        capsys, "ca", "issue", "www.bank.example", "--out", str(tmp_path / "b"), match="outside"
    )
    assert not (tmp_path / "b").exists()
    assert cert_count(state_dir) == 1


# -- bad input: exit 2, one line, nothing written ------------------------------------------------
@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    return tmp_path / "never-created"


def assert_nothing_written(state_dir: Path, out_dir: Path, count: int = 0) -> None:
    assert not out_dir.exists()
    assert cert_count(state_dir) == count


def test_issue_before_init(
    state_dir: Path, out_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    refused(capsys, "ca", "issue", "a.example", "--out", str(out_dir), match="tlsgate ca init")
    assert not out_dir.exists()


def test_corrupted_key_file(
    inited: Path, out_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for key_file in (inited / "keys").iterdir():
        data = bytearray(key_file.read_bytes())
        data[60:80] = b"A" * 20
        key_file.write_bytes(bytes(data))
    refused(capsys, "ca", "issue", "a.example", "--out", str(out_dir), match="private key")
    assert_nothing_written(inited, out_dir)


def test_missing_key_file(inited: Path, out_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for key_file in (inited / "keys").iterdir():
        key_file.unlink()
    refused(capsys, "ca", "issue", "a.example", "--out", str(out_dir), match="missing")
    assert_nothing_written(inited, out_dir)


def test_truncated_csr(
    inited: Path, tmp_path: Path, out_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pem = build_csr(generate_key(), parse_identities(["a.example"])).public_bytes(
        serialization.Encoding.PEM
    )
    path = tmp_path / "cut.csr"
    path.write_bytes(pem[: len(pem) // 2])
    refused(capsys, "ca", "issue", "--csr", str(path), "--out", str(out_dir), match="truncated")
    assert_nothing_written(inited, out_dir)


def test_csr_with_bad_signature(
    inited: Path, tmp_path: Path, out_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    der = bytearray(
        build_csr(generate_key(), parse_identities(["a.example"])).public_bytes(
            serialization.Encoding.DER
        )
    )
    der[-5] ^= 0xFF
    path = tmp_path / "bad.csr"
    path.write_bytes(x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM))
    refused(
        capsys,
        "ca",
        "issue",
        "--csr",
        str(path),
        "--out",
        str(out_dir),
        match="signature is invalid",
    )
    assert_nothing_written(inited, out_dir)


def test_csr_file_missing(
    inited: Path, tmp_path: Path, out_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    refused(
        capsys,
        "ca",
        "issue",
        "--csr",
        str(tmp_path / "nope.csr"),
        "--out",
        str(out_dir),
        match="does not exist",
    )


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["a.example", "--key-type", "dsa-1024"], "unknown key type"),
        (["*.*.com"], "wildcard"),
        (["*.com"], "wildcard"),
        ([], "no names"),
        (["a..example"], "empty label"),
        (["10.0.0.0/8"], "network range"),
        (["a.example", "--days", "0"], "positive"),
        (["a.example", "--days", "10", "--hours", "2"], "not allowed with"),
        (["a.example", "--days", "99999"], "outlive its issuer"),
        (["--spiffe", "spiffe://Bad_Domain/x"], "trust domain"),
        (["--spiffe", "spiffe://td/a/", "--client"], "trailing slash"),
        # Not SPIFFE IDs at all: each used to be issued, as another URI or a DNS name.
        (["--spiffe", "spife://prod.example/ns/x"], "starts with spiffe://"),
        (["--spiffe", "notauri"], "starts with spiffe://"),
        (["--spiffe", "notauri", "--client"], "spiffe://TRUST-DOMAIN/PATH"),
        (["--spiffe", "https://prod.example/x", "--client"], "starts with spiffe://"),
        (["--spiffe", ""], "starts with spiffe://"),
        (["a.example", "--spiffe", "spiffe://td/a?x=1"], "query"),
    ],
)
def test_bad_issue_input(
    inited: Path, out_dir: Path, capsys: pytest.CaptureFixture[str], args: list[str], match: str
) -> None:
    refused(capsys, "ca", "issue", *args, "--out", str(out_dir), match=match)
    assert_nothing_written(inited, out_dir)


def test_bad_init_input_writes_nothing(state_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    refused(capsys, "ca", "init", "--key-type", "rsa-512", match="unknown key type")
    refused(capsys, "ca", "init", "--permit-dns", "*.example.com", match="wildcard")
    refused(capsys, "ca", "init", "--permit-ip", "10.0.0.1/8", match="network range")
    refused(capsys, "ca", "init", "--root-days", "10", "--int-days", "20", match="outlive")
    refused(capsys, "ca", "init", "--crl-url", "ftp://x", match="crl-url")
    refused(capsys, "ca", "issue", "a.example", match="tlsgate ca init")


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["ca", "show", "xyz"], "invalid serial"),
        (["ca", "show", "0"], "positive"),
        (["ca", "show", "DEADBEEF"], "no certificate"),
        (["ca", "revoke", "DEADBEEF"], "no certificate"),
        (["ca", "revoke", "DEADBEEF", "--reason", "bored"], "unknown revocation reason"),
        (["ca", "list", "--expiring-within", "soon"], "whole number"),
        (["ca", "frobnicate"], "invalid choice"),
    ],
)
def test_bad_lookup_input(
    inited: Path, capsys: pytest.CaptureFixture[str], args: list[str], match: str
) -> None:
    refused(capsys, *args, match=match)


def test_encrypted_state(
    state_dir: Path,
    out_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TLSGATE_CA_PASSPHRASE", "s3cret")
    ok(capsys, "ca", "init")
    monkeypatch.delenv("TLSGATE_CA_PASSPHRASE")
    refused(
        capsys, "ca", "issue", "a.example", "--out", str(out_dir), match="TLSGATE_CA_PASSPHRASE"
    )
    monkeypatch.setenv("TLSGATE_CA_PASSPHRASE", "wrong")
    refused(capsys, "ca", "issue", "a.example", "--out", str(out_dir), match="wrong passphrase")
    assert_nothing_written(state_dir, out_dir)
    monkeypatch.setenv("TLSGATE_CA_PASSPHRASE", "s3cret")
    ok(capsys, "ca", "issue", "a.example", "--out", str(out_dir))


def test_subprocess_contract(state_dir: Path, tmp_path: Path) -> None:
    """The installed entry point: real exit codes and stderr, no traceback."""
    env = {**os.environ, "TLSGATE_STATE": str(state_dir)}
    cmd = [sys.executable, "-m", "tlsgate"]
    init = subprocess.run([*cmd, "ca", "init"], env=env, capture_output=True, text=True, timeout=60)
    assert init.returncode == 0, init.stderr
    bad = subprocess.run(
        [*cmd, "ca", "issue", "*.*.com", "--out", str(tmp_path / "x")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and bad.stderr.startswith("tlsgate: error:")
    usage = subprocess.run(
        [*cmd, "ca", "issue", "--days"], env=env, capture_output=True, text=True, timeout=60
    )
    assert usage.returncode == 2 and usage.stderr.count("\n") == 1


def test_minutes_long_certificate_is_barely_backdated(
    inited: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """notBefore of a 3-minute certificate is its issuance, not 5 minutes before (which made
    it look two-thirds spent to a client that renews at two thirds of its life)."""
    before = datetime.now(UTC).replace(microsecond=0)
    ok(capsys, "ca", "issue", "short.example", "--minutes", "3", "--out", str(tmp_path / "s"))
    after = datetime.now(UTC)
    cert = x509.load_pem_x509_certificate((tmp_path / "s" / "cert.pem").read_bytes())
    assert before - timedelta(seconds=2) <= cert.not_valid_before_utc <= after
    assert cert.not_valid_after_utc - cert.not_valid_before_utc <= timedelta(minutes=3, seconds=2)
    # A 90-day certificate keeps the 5-minute margin for clients whose clock is behind.
    ok(capsys, "ca", "issue", "long.example", "--out", str(tmp_path / "l"))
    cert = x509.load_pem_x509_certificate((tmp_path / "l" / "cert.pem").read_bytes())
    issued = cert.not_valid_after_utc - timedelta(days=90)
    assert cert.not_valid_before_utc == issued - timedelta(minutes=5)

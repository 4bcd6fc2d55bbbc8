"""``openssl verify`` accepts every certificate we issue and rejects what it must."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509

from tests.conftest import require_tool
from tlsgate.cli import main
from tlsgate.pki.keys import generate_key, load_private_key
from tlsgate.pki.names import NameConstraints
from tlsgate.pki.pem import certificate_pem
from tlsgate.pki.profiles import LeafProfile, build_leaf
from tlsgate.store.sqlite import SQLiteStore

from .conftest import CAFiles, cli, make_ca, run

pytestmark = pytest.mark.interop


@pytest.fixture
def openssl() -> str:
    return require_tool("openssl")


def verify(openssl: str, ca: CAFiles, cert_dir: Path, *extra: str) -> tuple[bool, str]:
    proc = run(
        [
            openssl,
            "verify",
            "-CAfile",
            str(ca.root),
            "-untrusted",
            str(cert_dir / "chain.pem"),
            *extra,
            str(cert_dir / "fullchain.pem"),
        ]
    )
    return proc.returncode == 0 and proc.stdout.strip().endswith(": OK"), proc.stdout + proc.stderr


@pytest.mark.parametrize("key_type", ["ecdsa-p256", "ecdsa-p384", "rsa-2048", "ed25519"])
def test_every_issued_leaf_verifies(openssl: str, tmp_path: Path, key_type: str) -> None:
    ca = make_ca(tmp_path, "--key-type", key_type)
    server = ca.issue("server", "www.example.com", "10.0.0.1", "--key-type", key_type)
    good, out = verify(
        openssl,
        ca,
        server,
        "-x509_strict",
        "-purpose",
        "sslserver",
        "-verify_hostname",
        "www.example.com",
    )
    assert good, out
    client = ca.issue("client", "svc.internal", "--client", "--key-type", key_type)
    good, out = verify(openssl, ca, client, "-x509_strict", "-purpose", "sslclient")
    assert good, out
    # Negative controls: wrong purpose, wrong host, and another CA as anchor.
    good, _ = verify(openssl, ca, client, "-purpose", "sslserver")
    assert not good
    good, _ = verify(openssl, ca, server, "-verify_hostname", "other.example.com")
    assert not good
    other = make_ca(tmp_path / "other")
    proc = run(
        [
            openssl,
            "verify",
            "-CAfile",
            str(other.root),
            "-untrusted",
            str(server / "chain.pem"),
            str(server / "fullchain.pem"),
        ]
    )
    assert proc.returncode != 0


def test_spiffe_svid_verifies(openssl: str, ca_files: CAFiles) -> None:
    svid = ca_files.issue("svid", "--client", "--spiffe", "spiffe://prod.example/ns/x/sa/y")
    good, out = verify(openssl, ca_files, svid, "-x509_strict", "-purpose", "sslclient")
    assert good, out


def test_openssl_generated_csr(openssl: str, ca_files: CAFiles, tmp_path: Path) -> None:
    key, csr = tmp_path / "k.pem", tmp_path / "r.csr"
    proc = run(
        [
            openssl,
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(csr),
            "-subj",
            "/CN=svc",
            "-addext",
            "subjectAltName=DNS:svc.internal,IP:10.0.0.1",
        ]
    )
    assert proc.returncode == 0, proc.stderr
    out = ca_files.issue("fromcsr", "--csr", str(csr))
    good, text = verify(openssl, ca_files, out, "-verify_ip", "10.0.0.1")
    assert good, text
    # The certificate carries the key openssl generated.
    pub = run([openssl, "pkey", "-in", str(key), "-pubout"]).stdout
    cert_pub = run([openssl, "x509", "-in", str(out / "cert.pem"), "-noout", "-pubkey"]).stdout
    assert pub == cert_pub


def test_name_constraints_refused_and_forgery_rejected(openssl: str, tmp_path: Path) -> None:
    ca = make_ca(tmp_path, "--permit-dns", "corp.example")
    inside = ca.issue("inside", "db.corp.example")
    good, out = verify(openssl, ca, inside)
    assert good, out
    # The CA refuses outside names; forge one with the intermediate key to see OpenSSL reject it.
    outside = ca.work / "outside"
    assert (
        main(["ca", "issue", "www.bank.example", "--out", str(outside), "--state", str(ca.state)])
        == 2
    )
    assert not outside.exists()
    store = SQLiteStore(ca.state)
    record = store.active_authority()
    assert record is not None
    intermediate = x509.load_pem_x509_certificate(record.intermediate_pem)
    int_key = load_private_key(store.load_key(record.intermediate_key_id))
    store.close()
    forged = build_leaf(
        intermediate,
        int_key,
        generate_key().public_key(),
        [x509.DNSName("www.bank.example")],
        LeafProfile(),
        now=datetime.now(UTC),
        constraints=NameConstraints(),
    )
    forged_dir = tmp_path / "forged"
    forged_dir.mkdir()
    (forged_dir / "chain.pem").write_bytes(record.intermediate_pem)
    (forged_dir / "fullchain.pem").write_bytes(certificate_pem(forged) + record.intermediate_pem)
    good, out = verify(openssl, ca, forged_dir)
    assert not good
    assert "permitted subtree violation" in out


def test_revoked_certificate_rejected_with_crl_check(
    openssl: str, ca_files: CAFiles, tmp_path: Path
) -> None:
    revoked = ca_files.issue("revoked", "a.example")
    kept = ca_files.issue("kept", "b.example")
    serial = run(
        [openssl, "x509", "-in", str(revoked / "cert.pem"), "-noout", "-serial"]
    ).stdout.strip()
    # Exactly as `openssl x509 -serial` prints it: serial=0A1B...
    cli("ca", "revoke", serial, "--reason", "keyCompromise", "--state", str(ca_files.state))
    crl = tmp_path / "crl.pem"
    cli("ca", "crl", "--out", str(crl), "--state", str(ca_files.state))
    good, out = verify(openssl, ca_files, revoked, "-crl_check", "-CRLfile", str(crl))
    assert not good and "certificate revoked" in out
    good, out = verify(openssl, ca_files, kept, "-crl_check", "-CRLfile", str(crl))
    assert good, out
    # Every link checked: the root's CRL covers the intermediate.
    root_crl = tmp_path / "root-crl.pem"
    cli("ca", "crl", "--root", "--out", str(root_crl), "--state", str(ca_files.state))
    good, out = verify(
        openssl, ca_files, kept, "-crl_check_all", "-CRLfile", str(crl), "-CRLfile", str(root_crl)
    )
    assert good, out
    good, out = verify(
        openssl,
        ca_files,
        revoked,
        "-crl_check_all",
        "-CRLfile",
        str(crl),
        "-CRLfile",
        str(root_crl),
    )
    assert not good and "certificate revoked" in out
    # openssl reads the CRL itself: issuer, number and the entry's reason.
    text = run([openssl, "crl", "-in", str(crl), "-noout", "-text"]).stdout
    assert "Key Compromise" in text and "X509v3 CRL Number" in text

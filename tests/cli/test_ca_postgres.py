"""``tlsgate ca`` against PostgreSQL: the same commands, the same contract, state in a database.

The commands run unchanged (``TLSGATE_STORE=postgresql://...``, or ``--store``); what they write
lands in the database, nothing in the local state directory, and the key in the database is
encrypted when the CA has a passphrase.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from cryptography import x509

from tests.cli.test_ca_cli import ok, refused
from tests.store.postgres import PostgresServer


@pytest.fixture
def database(
    postgres_server: PostgresServer, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    url = postgres_server.create_database()
    monkeypatch.setenv("TLSGATE_STORE", url)
    return url


def test_ca_commands_against_postgres(
    database: str, state_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ok(capsys, "ca", "init", "--name", "Cluster CA")
    refused(capsys, "ca", "init", match="already exists")
    out_dir = tmp_path / "out"
    issued = json.loads(ok(capsys, "ca", "issue", "a.example", "--out", str(out_dir), "--json"))
    serial = issued["serial"]
    listed = json.loads(ok(capsys, "ca", "list", "--json"))
    assert [c["serial"] for c in listed] == [serial]
    ok(capsys, "ca", "revoke", serial, "--reason", "keyCompromise")
    refused(capsys, "ca", "revoke", serial, match="already revoked")
    crl_path = tmp_path / "crl.pem"
    ok(capsys, "ca", "crl", "--out", str(crl_path))
    crl = x509.load_pem_x509_crl(crl_path.read_bytes())
    assert crl.get_revoked_certificate_by_serial_number(int(serial, 16)) is not None
    assert not state_dir.exists()  # everything went to the database
    with psycopg.connect(database) as conn:
        count = conn.execute("SELECT count(*) FROM certificate").fetchone()
    assert count == (1,)  # the issued leaf


def test_store_option_and_state_are_exclusive(
    database: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TLSGATE_STORE")
    ok(capsys, "ca", "init", "--store", database)
    info = ok(capsys, "ca", "info", "--store", database)
    assert "Certificate authority" in info
    with pytest.raises(SystemExit):
        from tlsgate.cli import main

        main(["ca", "info", "--store", database, "--state", "/tmp/x"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_passphrase_protects_the_key_in_the_database(
    database: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TLSGATE_CA_PASSPHRASE", "s3cret")
    ok(capsys, "ca", "init")
    with psycopg.connect(database) as conn:
        pems = [bytes(pem) for (pem,) in conn.execute("SELECT pem FROM private_key")]
    assert len(pems) == 2 and all(b"ENCRYPTED PRIVATE KEY" in pem for pem in pems)
    monkeypatch.setenv("TLSGATE_CA_PASSPHRASE", "wrong")
    refused(capsys, "ca", "issue", "a.example", "--out", "x", match="wrong passphrase")


def test_unreachable_database_is_one_clear_line(tmp_path: Path) -> None:
    from tests.conftest import free_port

    url = f"postgresql://tlsgate:pw@127.0.0.1:{free_port()}/state"
    env = {**os.environ, "TLSGATE_STORE": url, "TLSGATE_STATE": str(tmp_path / "state")}
    result = subprocess.run(
        [sys.executable, "-m", "tlsgate", "ca", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert "PostgreSQL at 127.0.0.1:" in result.stderr and "is unreachable" in result.stderr
    assert "pw" not in result.stderr.replace("postgres", "")

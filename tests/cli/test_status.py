"""``tlsgate status``: what it shows for a store the renewal loop wrote, and its exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tlsgate.cli import main
from tlsgate.pki.pem import certificate_pem
from tlsgate.pki.serial import format_serial, random_serial
from tlsgate.store.base import ManagedCertificate, RenewalState
from tlsgate.store.sqlite import SQLiteStore

LE = "acme:https://acme-v02.api.letsencrypt.org/directory"
#: A CA's error as the renewal loop records it: long, with a URL and brackets rich must not eat.
ERROR = (
    "urn:ietf:params:acme:error:connection: the CA could not connect to new.example.com:80 "
    "to validate http-01 at http://new.example.com/.well-known/acme-challenge/"
    + "x" * 43
    + " [Errno 111] Connection refused"
)
JSON_KEYS = [
    "name",
    "issuer",
    "serial",
    "not_after",
    "next_renewal",
    "reason",
    "failures",
    "last_error",
    "last_attempt",
    "last_success",
]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        code = main(list(args))
    except SystemExit as exc:  # argparse errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def status_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[Any]]:
    code, out, err = run(capsys, "status", "--json", *args)
    assert err == ""
    data = json.loads(out)
    assert isinstance(data, list)
    return code, data


def served(store: SQLiteStore, name: str, not_after: datetime, issuer: str = "internal") -> int:
    """Store a served certificate (self-signed will do: status only reads it); its serial."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(random_serial())
        .not_valid_before(not_after - timedelta(days=90))
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    store.save_managed(
        ManagedCertificate(name, certificate_pem(cert), b"key", not_after, issuer, not_after)
    )
    return cert.serial_number


@pytest.fixture
def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def test_empty_store(store: SQLiteStore, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "status")
    assert (code, err) == (0, "")
    assert "no managed certificates" in out.lower()
    assert status_json(capsys) == (0, [])


def test_all_fine(store: SQLiteStore, now: datetime, capsys: pytest.CaptureFixture[str]) -> None:
    serial = served(store, "localhost", now + timedelta(days=60))
    state = RenewalState(
        "localhost",
        "internal",
        now + timedelta(days=30),
        "lifetime",
        last_attempt=now - timedelta(days=30),
        last_success=now - timedelta(days=30),
    )
    store.save_renewal_state(state)

    code, data = status_json(capsys)
    assert code == 0
    assert data == [
        {
            "name": "localhost",
            "issuer": "internal",
            "serial": format_serial(serial),
            "not_after": (now + timedelta(days=60)).isoformat(),
            "next_renewal": (now + timedelta(days=30)).isoformat(),
            "reason": "lifetime",
            "failures": 0,
            "last_error": None,
            "last_attempt": (now - timedelta(days=30)).isoformat(),
            "last_success": (now - timedelta(days=30)).isoformat(),
        }
    ]
    assert list(data[0]) == JSON_KEYS

    code, out, err = run(capsys, "status")
    assert (code, err) == (0, "")
    line = next(line for line in out.splitlines() if "localhost" in line)
    assert format_serial(serial) in line
    assert f"{now + timedelta(days=60):%Y-%m-%d}" in line
    assert "59 days" in line or "60 days" in line
    assert f"{now + timedelta(days=30):%Y-%m-%d %H:%M}" in line and "lifetime" in line


def test_failing_renewal_without_a_certificate_yet(
    store: SQLiteStore, now: datetime, capsys: pytest.CaptureFixture[str]
) -> None:
    served(store, "app.example.com", now + timedelta(days=50), issuer=LE)
    store.save_renewal_state(RenewalState("app.example.com", LE, now + timedelta(days=20), "ari"))
    failing = RenewalState(
        "new.example.com",
        LE,
        now + timedelta(minutes=10),
        "backoff",
        failures=3,
        last_attempt=now - timedelta(minutes=2),
        last_error=ERROR,
    )
    store.save_renewal_state(failing)

    code, data = status_json(capsys)
    assert code == 1
    assert [d["name"] for d in data] == ["app.example.com", "new.example.com"]
    new = data[1]
    assert (new["serial"], new["not_after"], new["issuer"]) == (None, None, LE)
    assert (new["failures"], new["last_error"], new["reason"]) == (3, ERROR, "backoff")
    assert new["last_attempt"] == (now - timedelta(minutes=2)).isoformat()

    code, out, err = run(capsys, "status")
    assert (code, err) == (1, "")
    row = next(line for line in out.splitlines() if line.lstrip().startswith("new.example.com"))
    assert "none yet" in row and "backoff" in row
    # The table names the CA by host (a column that may fold); the whole URL is in --json.
    assert "acme:acme-v02" in out and "https://acme" not in out and "/directory" not in out
    assert "3 in a row" in out
    # The error is all there, brackets included, wrapped to the terminal's width.
    assert "".join(out.split()).count("".join(ERROR.split())) == 1
    assert all(len(line) <= 160 for line in out.splitlines())


def test_expired_certificate_wins_over_a_failing_renewal(
    store: SQLiteStore, now: datetime, capsys: pytest.CaptureFixture[str]
) -> None:
    served(store, "old.example.com", now - timedelta(days=2), issuer=LE)
    store.save_renewal_state(
        RenewalState(
            "old.example.com",
            LE,
            now + timedelta(minutes=5),
            "emergency",
            failures=9,
            last_error="rateLimited",
        )
    )
    code, data = status_json(capsys)
    assert code == 2
    assert data[0]["not_after"] == (now - timedelta(days=2)).isoformat()
    code, out, err = run(capsys, "status")
    assert (code, err) == (2, "")
    assert "expired 2 days ago" in out and "emergency" in out and "rateLimited" in out


def test_certificate_without_renewal_state_and_unreadable_pem(
    store: SQLiteStore, now: datetime, capsys: pytest.CaptureFixture[str]
) -> None:
    """A certificate the renewal loop has not looked at yet, and one whose PEM is damaged:
    both listed rather than failing the whole overview."""
    served(store, "a.example", now + timedelta(days=3))
    store.save_managed(
        ManagedCertificate("b.example", b"not a pem", b"key", now + timedelta(days=9), "x", now)
    )
    code, data = status_json(capsys)
    assert code == 0
    a, b = data
    assert (a["next_renewal"], a["reason"], a["failures"], a["last_error"]) == (None, None, 0, None)
    assert b["serial"] is None and b["not_after"] == (now + timedelta(days=9)).isoformat()
    code, out, _ = run(capsys, "status")
    assert code == 0
    assert "unreadable" in out
    assert "2 days" in out or "3 days" in out


def test_state_option_wins_over_the_environment(
    store: SQLiteStore, now: datetime, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    served(store, "a.example", now + timedelta(days=30))
    elsewhere = tmp_path / "elsewhere"
    SQLiteStore(elsewhere).close()  # an existing, empty state
    assert status_json(capsys, "--state", str(elsewhere)) == (0, [])
    _, data = status_json(capsys)  # TLSGATE_STATE, the fixture's store
    assert [d["name"] for d in data] == ["a.example"]


def test_exit_codes_through_the_entry_point(store: SQLiteStore, now: datetime) -> None:
    """What a monitoring check sees: the process's exit status, nothing on stderr."""
    cmd = [sys.executable, "-m", "tlsgate", "status", "--state", str(store.directory)]

    def status() -> int:
        done = subprocess.run(cmd, env=dict(os.environ), capture_output=True, timeout=60)
        assert done.stderr == b""
        return done.returncode

    assert status() == 0
    store.save_renewal_state(
        RenewalState("a.example", "internal", None, "initial", failures=1, last_error="boom")
    )
    assert status() == 1
    served(store, "b.example", now - timedelta(seconds=1))
    assert status() == 2


@pytest.mark.parametrize(
    ("issuer", "shown"),
    [
        ("internal", "internal"),
        (LE, "acme:acme-v02.api.letsencrypt.org"),
        ("acme:https://ca.internal:9000/acme/acme/directory", "acme:ca.internal:9000/acme/acme"),
        ("acme:somewhere", "acme:somewhere"),
    ],
)
def test_table_names_the_ca_by_host(issuer: str, shown: str) -> None:
    from tlsgate.cli.status import _short_issuer

    assert _short_issuer(issuer) == shown


def test_an_unreachable_store_is_said_in_those_words(capsys: pytest.CaptureFixture[str]) -> None:
    """PostgreSQL down: serve nodes keep serving, but status must not look like "no
    certificates"; it names the store (without its password) and exits 2."""
    pytest.importorskip("psycopg")
    from tests.conftest import free_port

    url = f"postgresql://tlsgate:secret@127.0.0.1:{free_port()}/tlsgate"
    code, out, _ = run(capsys, "status", "--store", url)
    assert code == 2
    assert "the store at postgresql://tlsgate@127.0.0.1:" in out
    assert "is unreachable: " in out and "secret" not in out
    code, out, err = run(capsys, "status", "--json", "--store", url)
    assert code == 2 and out == ""
    assert "is unreachable: " in err and "secret" not in err

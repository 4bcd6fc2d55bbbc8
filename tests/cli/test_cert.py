"""``tlsgate cert obtain`` against a real ``tlsgate ca serve`` (and its refusals)."""

from __future__ import annotations

import json
import os
import socketserver
import stat
import subprocess
import sys
import threading
from pathlib import Path

import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest
from cryptography import x509

from tests.acme.ca_serve import AcmeCA, running_acme_ca
from tests.acme.test_interop_e2e import acme_ca  # noqa: F401
from tests.store.postgres import PostgresServer

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
    assert len(list((state / "keys").glob("acme-account-*.key"))) == 1


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


def test_renew_when_due_with_replaces_and_keep_files_when_the_ca_is_down(
    acme_ca: AcmeCA,  # noqa: F811
    tmp_path: Path,
) -> None:
    out, state, log = tmp_path / "certs", tmp_path / "client-state", tmp_path / "hooks.log"
    base = [sys.executable, "-m", "tlsgate", "cert"]

    def tlsgate(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*base, *args], capture_output=True, text=True, timeout=120)

    proc = tlsgate(
        "obtain", "r.example.test", "--directory", acme_ca.directory,
        "--ca-root", str(acme_ca.root), "--http-01-address", "127.0.0.1",
        "--http-01-port", str(acme_ca.http_port), "--out", str(out), "--state", str(state),
        "--deploy-hook", f"echo deploy >> {log}",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    first = x509.load_pem_x509_certificate((out / "cert.pem").read_bytes())
    # A fresh 90-day certificate is not due: nothing happens, exit 0 (cron-friendly).
    proc = tlsgate("renew", "--state", str(state), "--pre-hook", f"echo pre >> {log}")
    assert proc.returncode == 0 and "not-due" in proc.stdout, proc.stdout + proc.stderr
    assert x509.load_pem_x509_certificate((out / "cert.pem").read_bytes()) == first
    proc = tlsgate(
        "renew", "--force", "--state", str(state),
        "--pre-hook", f"echo pre >> {log}", "--post-hook", f"echo post >> {log}",
    )  # fmt: skip
    assert proc.returncode == 0 and "renewed" in proc.stdout, proc.stdout + proc.stderr
    second = x509.load_pem_x509_certificate((out / "cert.pem").read_bytes())
    assert second.serial_number != first.serial_number
    assert log.read_text().split() == ["deploy", "pre", "deploy", "post"]
    # The new order said which certificate it replaces (ARI), as the CA recorded it.
    from tlsgate.acme.ari import cert_id
    from tlsgate.store.sqlite import SQLiteStore

    store = SQLiteStore(acme_ca.state)
    try:
        record = store.get_certificate(second.serial_number)
        assert record.order_id is not None
        assert store.get_order(record.order_id).replaces == cert_id(first)
    finally:
        store.close()
    # The CA unreachable: exit 1, the files stay, the failure is recorded for the backoff.
    lineage = next((state / "acme-certs").iterdir())
    data = json.loads(lineage.read_text())
    data["directory"] = "https://127.0.0.1:9/directory"
    lineage.write_text(json.dumps(data))
    proc = tlsgate("renew", "--force", "--state", str(state))
    assert proc.returncode == 1 and "failed" in proc.stdout, proc.stdout + proc.stderr
    assert x509.load_pem_x509_certificate((out / "cert.pem").read_bytes()) == second
    assert json.loads(lineage.read_text())["failures"] == 1


def test_obtain_and_renew_with_the_account_key_in_postgresql(
    acme_ca: AcmeCA,  # noqa: F811
    postgres_server: PostgresServer,
    tmp_path: Path,
) -> None:
    """With --store postgresql://... the account key is the one `serve` nodes share; the files
    still go to --out and the renewal records to this machine's directory ($TLSGATE_STATE)."""
    from tlsgate.store import open_store

    url = postgres_server.create_database()
    out, local = tmp_path / "certs", tmp_path / "local"
    env = {k: v for k, v in os.environ.items() if k != "TLSGATE_STORE"}
    env["TLSGATE_STATE"] = str(local)

    def tlsgate(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tlsgate", "cert", *args, "--store", url],
            capture_output=True, text=True, timeout=120, env=env,
        )  # fmt: skip

    proc = tlsgate(
        "obtain", "pg.example.test", "--directory", acme_ca.directory,
        "--ca-root", str(acme_ca.root), "--http-01-address", "127.0.0.1",
        "--http-01-port", str(acme_ca.http_port), "--out", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr + acme_ca.log.read_text()
    first = x509.load_pem_x509_certificate((out / "cert.pem").read_bytes())
    store = open_store(url)
    try:

        def absent() -> bytes:
            raise AssertionError("no account key in the PostgreSQL store")

        key = store.client_account_key(acme_ca.directory, absent)
    finally:
        store.close()
    proc = tlsgate("renew", "--force")
    assert proc.returncode == 0 and "renewed" in proc.stdout, proc.stdout + proc.stderr
    second = x509.load_pem_x509_certificate((out / "cert.pem").read_bytes())
    assert second.serial_number != first.serial_number
    store = open_store(url)
    try:
        assert store.client_account_key(acme_ca.directory, absent) == key  # the same account
    finally:
        store.close()
    # Nothing of the account in the local directory: only the renewal record.
    assert [p.name for p in local.iterdir()] == ["acme-certs"]
    assert len(list((local / "acme-certs").iterdir())) == 1


class FileDns(socketserver.BaseRequestHandler):
    """A UDP DNS server answering TXT queries from a JSON file (name -> [values])."""

    records: Path

    def handle(self) -> None:
        data, sock = self.request
        query = dns.message.from_wire(data)
        response = dns.message.make_response(query)
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        try:
            table = json.loads(self.records.read_text())
        except (OSError, ValueError):
            table = {}
        values = table.get(name, [])
        if question.rdtype == dns.rdatatype.TXT and values:
            texts = [f'"{v}"' for v in values]
            response.answer.append(
                dns.rrset.from_text_list(question.name, 1, dns.rdataclass.IN, "TXT", texts)
            )
        elif not values:
            response.set_rcode(dns.rcode.NXDOMAIN)
        sock.sendto(response.to_wire(), self.client_address)


HOOK = """
import json, sys
path, action, name, value = sys.argv[1:5]
try:
    table = json.load(open(path))
except (OSError, ValueError):
    table = {}
values = table.setdefault(name, [])
if action == "present":
    values.append(value)
elif value in values:
    values.remove(value)
json.dump(table, open(path, "w"))
with open(path + ".log", "a") as log:
    log.write(f"{action} {name}\\n")
"""


def test_obtain_a_wildcard_through_a_dns01_hook(tmp_path: Path) -> None:
    records = tmp_path / "zone.json"
    handler = type("Handler", (FileDns,), {"records": records})
    server = socketserver.ThreadingUDPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        resolver = f"127.0.0.1:{server.server_address[1]}"
        with running_acme_ca(tmp_path, "--dns-resolver", resolver) as ca:
            hook = tmp_path / "hook.py"
            hook.write_text(HOOK)
            out = tmp_path / "wild"
            proc = subprocess.run(
                [sys.executable, "-m", "tlsgate", "cert", "obtain", "*.h.example.test",
                 "--directory", ca.directory, "--ca-root", str(ca.root),
                 "--dns-01-hook", f"{sys.executable} {hook} {records}",
                 "--out", str(out), "--state", str(tmp_path / "client-state")],
                capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            assert proc.returncode == 0, proc.stdout + proc.stderr + ca.log.read_text()
    finally:
        server.shutdown()
        server.server_close()
    leaf = x509.load_pem_x509_certificate((out / "cert.pem").read_bytes())
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["*.h.example.test"]
    assert Path(f"{records}.log").read_text().split() == [
        "present", "_acme-challenge.h.example.test", "cleanup", "_acme-challenge.h.example.test",
    ]  # fmt: skip
    assert json.loads(records.read_text()) == {"_acme-challenge.h.example.test": []}

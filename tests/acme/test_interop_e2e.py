"""`tlsgate ca serve` against ACME clients no one here wrote: certbot and lego (Debian).

Each trusts the CA root through its own variable (``REQUESTS_CA_BUNDLE``,
``LEGO_CA_CERTIFICATES``): no "insecure" flag anywhere. Names resolve to loopback through
``--resolve``; the clients answer http-01 / tls-alpn-01 on the ports the server validates.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from tests.conftest import require_tool
from tlsgate.store.sqlite import SQLiteStore

from .ca_serve import AcmeCA, running_acme_ca

pytestmark = pytest.mark.interop


@pytest.fixture
def acme_ca(tmp_path: Path) -> Iterator[AcmeCA]:
    with running_acme_ca(tmp_path) as ca:
        yield ca


def certbot(ca: AcmeCA, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    dirs = tmp_path / "certbot"
    cmd = [
        require_tool("certbot"), *args, "--non-interactive",
        "--config-dir", str(dirs / "config"), "--work-dir", str(dirs / "work"),
        "--logs-dir", str(dirs / "logs"),
    ]  # fmt: skip
    env = {**os.environ, "REQUESTS_CA_BUNDLE": str(ca.root)}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr + ca.log.read_text()
    return proc


def serials(path: Path) -> list[int]:
    return [c.serial_number for c in x509.load_pem_x509_certificates(path.read_bytes())]


def test_certbot_issues_renews_and_revokes(acme_ca: AcmeCA, tmp_path: Path) -> None:
    certbot(
        acme_ca, tmp_path, "certonly", "--standalone", "--agree-tos",
        "--email", "ops@example.test", "--server", acme_ca.directory,
        "--http-01-port", str(acme_ca.http_port), "--http-01-address", "127.0.0.1",
        "-d", "a.example.test", "-d", "b.example.test",
    )  # fmt: skip
    live = tmp_path / "certbot" / "config" / "live" / "a.example.test"
    first = serials(live / "cert.pem")[0]
    certbot(acme_ca, tmp_path, "renew", "--force-renewal", "--no-random-sleep-on-renew")
    second = serials(live / "cert.pem")[0]
    assert second != first
    certbot(
        acme_ca, tmp_path, "revoke", "--cert-path", str(live / "cert.pem"),
        "--reason", "keycompromise", "--no-delete-after-revoke", "--server", acme_ca.directory,
    )  # fmt: skip
    store = SQLiteStore(acme_ca.state)
    try:
        record = store.get_certificate(second)
        assert record.status.value == "revoked" and record.revocation_reason == "key-compromise"
        assert record.revoked_by is not None and record.revoked_by.startswith("acme:")
        assert store.get_certificate(first).requester.startswith("acme:")
    finally:
        store.close()


def test_certbot_webroot(acme_ca: AcmeCA, tmp_path: Path) -> None:
    """certbot writes the answer into a directory an ordinary web server publishes."""
    webroot = tmp_path / "www"
    webroot.mkdir()
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(webroot),
         str(acme_ca.http_port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", acme_ca.http_port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "http.server did not start"
                time.sleep(0.05)
        certbot(
            acme_ca, tmp_path, "certonly", "--webroot", "-w", str(webroot), "--agree-tos",
            "--email", "ops@example.test", "--server", acme_ca.directory, "-d", "w.example.test",
        )  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=10)
    live = tmp_path / "certbot" / "config" / "live" / "w.example.test" / "cert.pem"
    assert serials(live)


@pytest.mark.parametrize("challenge", ["http", "tls"])
def test_lego_issues(acme_ca: AcmeCA, tmp_path: Path, challenge: str) -> None:
    port = acme_ca.http_port if challenge == "http" else acme_ca.tls_port
    name = f"lego-{challenge}.example.test"
    cmd = [
        require_tool("lego"), "--server", acme_ca.directory, "--email", "ops@example.test",
        "--accept-tos", "--domains", name, f"--{challenge}",
        f"--{challenge}.port", f"127.0.0.1:{port}", "--path", str(tmp_path / "lego"), "run",
    ]  # fmt: skip
    env = {**os.environ, "LEGO_CA_CERTIFICATES": str(acme_ca.root)}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr + acme_ca.log.read_text()
    cert = x509.load_pem_x509_certificates(
        (tmp_path / "lego" / "certificates" / f"{name}.crt").read_bytes()
    )[0]
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [name]

"""Real TLS handshakes on loopback, the root as the only trust anchor (no verification bypass)."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import pytest

from tests.conftest import require_tool

from .conftest import CAFiles, TLSServer, make_ca, run

pytestmark = pytest.mark.interop


def handshake(root: Path, port: int, server_hostname: str) -> tuple[str | None, dict[str, object]]:
    context = ssl.create_default_context(cafile=str(root))  # the root is the only anchor
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=server_hostname) as tls:
            cert = tls.getpeercert()
            assert cert is not None
            return tls.version(), dict(cert)


def test_python_ssl_trusts_only_our_root(ca_files: CAFiles, tls_server: TLSServer) -> None:
    version, cert = handshake(ca_files.root, tls_server.port, "localhost")
    assert version in ("TLSv1.2", "TLSv1.3")
    assert ("DNS", "localhost") in cert["subjectAltName"]  # type: ignore[operator]
    handshake(ca_files.root, tls_server.port, "127.0.0.1")


def test_python_ssl_negative_controls(
    ca_files: CAFiles, tls_server: TLSServer, tmp_path: Path
) -> None:
    with pytest.raises(ssl.SSLCertVerificationError, match=r"Hostname mismatch|doesn.t match"):
        handshake(ca_files.root, tls_server.port, "wrong.example")
    other = make_ca(tmp_path / "other")
    with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"):
        handshake(other.root, tls_server.port, "localhost")


def test_server_without_intermediate_is_refused(ca_files: CAFiles) -> None:
    cert_dir = ca_files.issue("nochain", "localhost")
    (cert_dir / "fullchain.pem").write_bytes((cert_dir / "cert.pem").read_bytes())
    with TLSServer(cert_dir) as server, pytest.raises(ssl.SSLCertVerificationError):
        handshake(ca_files.root, server.port, "localhost")


def test_curl_with_cacert(ca_files: CAFiles, tls_server: TLSServer, tmp_path: Path) -> None:
    curl = require_tool("curl")
    port = tls_server.port
    base = [curl, "--silent", "--show-error", "--max-time", "10", "--cacert", str(ca_files.root)]
    proc = run([*base, "--resolve", f"localhost:{port}:127.0.0.1", f"https://localhost:{port}/"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "hello over TLS\n"
    proc = run([*base, f"https://127.0.0.1:{port}/"])
    assert proc.returncode == 0, proc.stderr
    # Negative controls: a name the certificate is not for, and a root that did not sign it.
    proc = run(
        [*base, "--resolve", f"other.example:{port}:127.0.0.1", f"https://other.example:{port}/"]
    )
    assert proc.returncode == 60, proc.stderr
    other = make_ca(tmp_path / "other")
    proc = run(
        [
            curl,
            "--silent",
            "--max-time",
            "10",
            "--cacert",
            str(other.root),
            "--resolve",
            f"localhost:{port}:127.0.0.1",
            f"https://localhost:{port}/",
        ]
    )
    assert proc.returncode == 60


def test_openssl_s_client(ca_files: CAFiles, tls_server: TLSServer) -> None:
    openssl = require_tool("openssl")
    proc = run(
        [
            openssl,
            "s_client",
            "-connect",
            f"127.0.0.1:{tls_server.port}",
            "-servername",
            "localhost",
            "-verify_hostname",
            "localhost",
            "-CAfile",
            str(ca_files.root),
            "-verify_return_error",
            "-brief",
        ],
        timeout=30,
    )
    assert "Verification: OK" in proc.stdout + proc.stderr, proc.stdout + proc.stderr

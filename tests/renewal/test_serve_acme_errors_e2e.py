"""Each way an ACME site can fail is reported for that site, and the others are served.

One `tlsgate ca serve` and one `tlsgate serve` with five ACME sites: one that works, and one
each with a directory URL nobody answers, a CA whose certificate is not trusted, a name the CA
refuses, and a dns-01 hook that fails. Then a restart, which must reuse the valid certificate.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from tests.acme.ca_serve import AcmeCA
from tests.conftest import free_port
from tests.proxy.upstream_app import run_upstream

from .acme_edge import Edge, Traffic, serve_config, verified_serial, wait_for

pytestmark = pytest.mark.interop


def stranger_root(path: Path) -> Path:
    """A root certificate nobody issued the CA's HTTPS certificate from."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Some Other Root")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    path.write_bytes(cert.public_bytes(Encoding.PEM))
    return path


def test_each_failure_is_reported_per_site_and_the_rest_is_served(tmp_path: Path) -> None:
    ca = AcmeCA(tmp_path, "--allow", "good.example.test", "--allow", "hook.example.test")
    ca.start()
    nobody = free_port()
    sites = f"""
[[site]]
hosts = "good.example.test"
upstream = "UPSTREAM"

[[site]]
hosts = "nowhere.example.test"
upstream = "UPSTREAM"
[site.acme]
directory = "https://localhost:{nobody}/directory"

[[site]]
hosts = "untrusted.example.test"
upstream = "UPSTREAM"
[site.acme]
ca = "{stranger_root(tmp_path / "stranger.pem")}"

[[site]]
hosts = "rejected.example.test"
upstream = "UPSTREAM"

[[site]]
hosts = "hook.example.test"
upstream = "UPSTREAM"
[site.acme]
dns_hook = "sh -c 'echo zone example.test: API token expired; exit 3' hook"
"""
    try:
        with run_upstream() as (upstream_port, _):
            config = serve_config(
                directory=ca.directory, root=ca.root, http_port=ca.http_port,
                tls_port=ca.tls_port, upstream_port=upstream_port, sites=sites, workers=1,
            )  # fmt: skip
            edge = Edge(tmp_path, config, ca.tls_port)
            edge.start()
            try:
                serial = wait_for(
                    lambda: verified_serial(edge.port, "good.example.test", [ca.root]),
                    60, "the good site's certificate", edge.text,
                )  # fmt: skip
                expected = {
                    "nowhere.example.test": "cannot read the ACME directory",
                    "untrusted.example.test": "certificate is not trusted",
                    "rejected.example.test": "rejectedIdentifier",
                    "hook.example.test": "API token expired",
                }

                def reported() -> bool:
                    rows = {str(row["name"]): row for row in edge.status()}
                    return all(
                        name in rows and needle in str(rows[name]["last_error"] or "")
                        for name, needle in expected.items()
                    )

                wait_for(reported, 60, "every failure in tlsgate status", edge.text)
                text = edge.text()
                for name in expected:
                    assert f"site {name}: no certificate from" in text
                    assert "no valid certificate to serve meanwhile" in text
                # No traceback anywhere: every failure is a sentence.
                assert "Traceback" not in text
                # The good site answers through all of this.
                traffic = Traffic(edge.port, "good.example.test", [ca.root], limit=2)
                wait_for(lambda: traffic.requests >= 5, 20, "requests", edge.text)
                traffic.stop()
                assert not traffic.failures
                status = subprocess.run(
                    [sys.executable, "-m", "tlsgate", "status", "--state", str(edge.state)],
                    capture_output=True, text=True, timeout=60, check=False,
                )  # fmt: skip
                assert status.returncode == 1  # something needs a look
                for name in (*expected, "good.example.test"):
                    assert name in status.stdout
            finally:
                edge.stop()
            first_run = edge.text()
            # A restart serves the stored certificate at once and does not order it again.
            edge.start()
            try:
                again = wait_for(
                    lambda: verified_serial(edge.port, "good.example.test", [ca.root]),
                    30, "the restarted edge", edge.text,
                )  # fmt: skip
                assert again == serial
                wait_for(
                    lambda: "site good.example.test: next renewal" in edge.text()[len(first_run) :],
                    30, "the restart's renewer to plan", edge.text,
                )  # fmt: skip
                second_run = edge.text()[len(first_run) :]
                assert "site good.example.test: requesting" not in second_run
                # The failing sites keep their backoff across the restart instead of retrying
                # at once (a crash loop must not turn into a flood of orders).
                assert "site nowhere.example.test: next renewal" in second_run
                assert "site nowhere.example.test: requesting" not in second_run
            finally:
                edge.stop()
    finally:
        ca.stop()

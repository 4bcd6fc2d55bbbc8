"""``/metrics`` on the admin listener parses with prometheus_client and counts what happened."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import free_port
from tests.proxy.conftest import Serve
from tlsgate.pki.serial import format_serial

pytestmark = pytest.mark.interop


def scrape(port: int) -> dict[str, list[Any]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def fetch(serve: Serve, path: str) -> bytes:
    with serve.connect() as tls:
        tls.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
        out = b""
        while chunk := tls.recv(65536):
            out += chunk
    return out


@pytest.mark.parametrize("workers", [1, 2])
def test_metrics(serve_factory: Any, workers: int) -> None:
    admin = free_port()
    serve: Serve = serve_factory("--admin-listen", f"127.0.0.1:{admin}", workers=workers)
    for _ in range(10):
        assert fetch(serve, "/x").startswith(b"HTTP/1.1 200")
    assert fetch(serve, "/status/503").startswith(b"HTTP/1.1 503")
    # One process folds its counts when it renders; a worker folds them every second.
    deadline = time.monotonic() + 10
    while True:
        families = scrape(admin)
        requests = {
            s.labels["code"]: s.value
            for s in families.get("tlsgate_requests", [])
            if s.name == "tlsgate_requests_total" and s.labels["site"] == "localhost"
        }
        if requests == {"2xx": 10.0, "5xx": 1.0} or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert requests == {"2xx": 10.0, "5xx": 1.0}
    connections = [
        s.value for s in families["tlsgate_tls_connections"] if s.name.endswith("_total")
    ]
    assert sum(connections) >= 11
    expiry = [s for s in families["tlsgate_cert_not_after_timestamp_seconds"]]
    # The leaf and its intermediate, as presented.
    assert len(expiry) == 2 and {s.labels["target"] for s in expiry} == {"localhost"}
    assert min(s.value for s in expiry) > time.time() + 80 * 86400
    hist = [s for s in families["tlsgate_request_duration_seconds"] if s.name.endswith("_count")]
    assert sum(s.value for s in hist) == 11


def served_leaf(serve: Serve) -> x509.Certificate:
    with serve.connect() as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


@pytest.mark.parametrize("workers", [1, 2])
def test_certificate_metrics_match_the_served_certificate(serve_factory: Any, workers: int) -> None:
    # The labels tlsgate monitor uses for the endpoints it watches, so one rule alerts on both.
    admin = free_port()
    serve: Serve = serve_factory("--admin-listen", f"127.0.0.1:{admin}", workers=workers)
    leaf = served_leaf(serve)
    deadline = time.monotonic() + 10
    while True:  # the renewal loop records its first plan just after start-up
        before = time.time()
        families = scrape(admin)
        after = time.time()
        if families["tlsgate_cert_renewal_failures"] or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    labels = {
        "target": "localhost",
        "subject": leaf.subject.rfc4514_string(),
        "serial": format_serial(leaf.serial_number),
        "issuer": leaf.issuer.rfc4514_string(),
    }
    assert "localhost" in labels["subject"] and "tlsgate" in labels["issuer"].lower()
    # Every presented certificate is reported: the leaf first, then its intermediate.
    not_after = families["tlsgate_cert_not_after_timestamp_seconds"]
    assert len(not_after) == 2 and not_after[0].labels == labels
    intermediate = not_after[1].labels
    assert intermediate["target"] == "localhost" and intermediate["subject"] == labels["issuer"]
    assert not_after[0].value == leaf.not_valid_after_utc.timestamp()
    expires_in = families["tlsgate_cert_expires_in_seconds"]
    assert [s.labels for s in expires_in] == [s.labels for s in not_after]
    # Computed at scrape time: not_after minus the moment of the scrape.
    assert not_after[0].value - after <= expires_in[0].value <= not_after[0].value - before
    failures = families["tlsgate_cert_renewal_failures"]
    assert [(s.labels, s.value) for s in failures] == [({"target": "localhost"}, 0.0)]
    (next_renewal,) = families["tlsgate_cert_next_renewal_timestamp_seconds"]
    assert next_renewal.labels == {"target": "localhost"}
    assert before < next_renewal.value < not_after[0].value


def test_serve_and_monitor_label_a_certificate_alike(serve_factory: Any, tmp_path: Path) -> None:
    """One alert rule for both: the series serve exports for its certificates are exactly the
    ones `tlsgate monitor` exports for serve as a target (when the target is named after the
    site), so an expiry shows once whichever way it is watched."""
    admin = free_port()
    serve: Serve = serve_factory("--admin-listen", f"127.0.0.1:{admin}")
    config = tmp_path / "monitor.toml"
    config.write_text(
        f'[monitor]\nca = "{serve.root}"\n[[target]]\nendpoint = "127.0.0.1:{serve.port}"\n'
        'servername = "localhost"\nname = "localhost"\n'
    )
    run = subprocess.run(
        [sys.executable, "-m", "tlsgate", "monitor", "-c", str(config), "--once", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    (report,) = json.loads(run.stdout)
    from_monitor = {
        (c["subject"], c["serial"], c["issuer"], c["not_after"]) for c in report["chain"]
    }
    served = scrape(admin)["tlsgate_cert_not_after_timestamp_seconds"]
    from_serve = {
        (
            s.labels["subject"],
            s.labels["serial"],
            s.labels["issuer"],
            datetime.fromtimestamp(s.value, UTC).isoformat(),
        )
        for s in served
        if s.labels["target"] == "localhost"
    }
    assert from_serve == from_monitor and len(from_serve) == 2

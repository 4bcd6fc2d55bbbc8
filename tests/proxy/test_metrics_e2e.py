"""``/metrics`` on the admin listener parses with prometheus_client and counts what happened."""

from __future__ import annotations

import time
import urllib.request
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import free_port

from .conftest import Serve

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
    time.sleep(0.2)
    families = scrape(admin)
    requests = {
        s.labels["code"]: s.value
        for s in families["tlsgate_requests"]
        if s.name == "tlsgate_requests_total" and s.labels["site"] == "localhost"
    }
    assert requests == {"2xx": 10.0, "5xx": 1.0}
    expiry = [s for s in families["tlsgate_cert_not_after_timestamp_seconds"]]
    assert len(expiry) == 1 and expiry[0].labels["site"] == "localhost"
    assert expiry[0].value > time.time() + 80 * 86400
    hist = [s for s in families["tlsgate_request_duration_seconds"] if s.name.endswith("_count")]
    assert sum(s.value for s in hist) == 11

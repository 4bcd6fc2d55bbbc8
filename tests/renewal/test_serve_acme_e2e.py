"""`tlsgate serve` gets and renews its certificates from real ACME CAs by itself.

Against Debian's pebble (5 % of nonces rejected, authorizations reused: its defaults) and against
our own `tlsgate ca serve`, each validating on serve's own listeners: site a.example.test by
http-01 on the plain-HTTP port, site b.example.test by tls-alpn-01 on the TLS port, in a serve
with two worker processes (the challenge answers travel through the store). Certificates live
one minute (30 s from pebble), so renewals come every half-life while a client keeps
requesting; the CA is stopped in between, and serve must keep serving, say when it retries, and
renew once the CA is back.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from tests.acme.ca_serve import AcmeCA
from tests.acme.pebble import Pebble
from tests.conftest import free_port
from tests.proxy.upstream_app import run_upstream

from .acme_edge import Edge, Traffic, serve_config, verified_serial, wait_for

pytestmark = pytest.mark.interop

SITES = """
[[site]]
hosts = ["a.example.test", "www.a.example.test"]
upstream = "UPSTREAM"
[site.acme]
challenges = ["http-01"]

[[site]]
hosts = "b.example.test"
upstream = "UPSTREAM"
[site.acme]
challenges = ["tls-alpn-01"]

[[site]]
hosts = "localhost"
upstream = "UPSTREAM"
issuer = "internal"
"""


class CA(Protocol):
    directory: str
    root: Path  # what trusts the CA's HTTPS
    http_port: int
    tls_port: int

    def start(self) -> None: ...

    def stop(self) -> None: ...


class Issuing:
    """The CA under test and the roots its certificates chain to (pebble makes a new one on
    every start)."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        http_port, tls_port = free_port(), free_port()
        self.ca: CA
        if kind == "pebble":
            self.pebble = Pebble(tmp_path, http_port=http_port, tls_port=tls_port, validity=30)
            self.ca = self.pebble
        else:
            self.ca = AcmeCA(tmp_path, "--lifetime", "1m", http_port=http_port, tls_port=tls_port)
        self.tmp_path = tmp_path
        self.roots: list[Path] = []

    def start(self) -> None:
        self.ca.start()
        if self.kind == "pebble":
            path = self.tmp_path / f"issuing-root-{len(self.roots)}.pem"
            path.write_bytes(self.pebble.issuing_root().public_bytes(Encoding.PEM))
            self.roots.append(path)
        elif not self.roots:
            self.roots.append(self.ca.root)

    def close(self) -> None:
        if self.kind == "pebble":
            self.pebble.close()
        else:
            self.ca.stop()


@pytest.fixture(params=["pebble", "ca-serve"])
def issuing(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Issuing]:
    issuing = Issuing(request.param, tmp_path)
    try:  # (a start that fails half-way still stops what it started)
        issuing.start()
        yield issuing
    finally:
        issuing.close()


def test_serve_obtains_renews_and_rides_out_a_ca_outage(issuing: Issuing, tmp_path: Path) -> None:
    ca = issuing.ca
    with run_upstream() as (upstream_port, _):
        config = serve_config(
            directory=ca.directory, root=ca.root, http_port=ca.http_port,
            tls_port=ca.tls_port, upstream_port=upstream_port, sites=SITES,
        )  # fmt: skip
        edge = Edge(tmp_path, config, ca.tls_port)
        edge.start()
        try:
            roots = issuing.roots
            # Both ACME sites get a certificate that verifies against the CA's root; until
            # then they present the self-signed placeholder, which verifies against nothing.
            for name in ("a.example.test", "www.a.example.test", "b.example.test"):
                wait_for(
                    lambda name=name: verified_serial(edge.port, name, roots),  # type: ignore[misc]
                    60, f"a certificate for {name}", edge.text,
                )  # fmt: skip
            text = edge.text()
            assert "tls-alpn-01: answering the validation of b.example.test" in text
            rows = {row["name"]: row for row in edge.status()}
            assert str(rows["a.example.test"]["issuer"]).startswith("acme:")
            assert rows["localhost"]["issuer"] == "internal"

            traffic = Traffic(edge.port, "a.example.test", roots, limit=150)
            try:
                # A renewal at about half the one-minute life, with no failed request.
                wait_for(lambda: len(traffic.serials) >= 2, 60, "a first renewal", edge.text)
                assert not traffic.failures, traffic.failures
                issuing.ca.stop()
                # The next renewal fails: logged with the next attempt, the certificate stays.
                wait_for(
                    lambda: "site a.example.test: no certificate from" in edge.text(),
                    60, "a failed renewal", edge.text,
                )  # fmt: skip
                failed = [
                    line for line in edge.text().splitlines()
                    if "site a.example.test: no certificate from" in line
                ]  # fmt: skip
                assert "still serving the current one until" in failed[0]
                assert "next attempt 20" in failed[0]
                status = edge.status_of("a.example.test")
                assert status["last_error"] and int(str(status["failures"])) >= 1
                served = verified_serial(edge.port, "a.example.test", roots)
                assert served is not None and served in traffic.serials
                issuing.start()  # pebble comes back with no memory of us and a new root
                wait_for(lambda: len(traffic.serials) >= 3, 45, "a renewal after", edge.text)
            finally:
                traffic.stop()
            assert not traffic.failures, traffic.failures
            assert traffic.requests > 100
            assert len(set(traffic.serials)) == len(traffic.serials)  # each one new
            wait_for(
                lambda: edge.status_of("a.example.test")["last_error"] is None,
                30, "the error to clear", edge.text,
            )  # fmt: skip
            if issuing.kind == "ca-serve":
                # It speaks ARI, so renewal orders say which certificate they replace.
                db = sqlite3.connect(issuing.ca.state / "tlsgate.db")  # type: ignore[attr-defined]
                try:
                    (replacing,) = db.execute(
                        "SELECT COUNT(*) FROM acme_order WHERE replaces IS NOT NULL"
                    ).fetchone()
                finally:
                    db.close()
                assert replacing >= 1
        finally:
            edge.stop()
    assert edge.proc is not None and edge.proc.returncode == 0, edge.text()[-3000:]

"""A revoked client certificate is refused by a running ``tlsgate serve`` without a restart.

The certificate is revoked the way an operator does it, by ``tlsgate ca revoke`` in another
process on the same state; the serve then refuses new handshakes with it, each with the TLS
alert ``certificate_revoked`` (what the client sees), and connections already open stay open:
- after ``kill -HUP`` (with the store poll turned down to an hour, so only the signal can be
  what applied it);
- without any signal, by the store watch (no ``crl_refresh`` shortened here: the default 300 s
  would be far beyond the deadline);
- for a CRL file of another CA (``trust`` + ``crl``), re-read on ``kill -HUP``;
- with a PostgreSQL store, by the notification the revocation sends (the poll an hour away).
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from tests.conftest import free_port
from tests.store.postgres import PostgresServer

from .conftest import Serve, config_text, wait_ready
from .test_mtls_e2e import PROD, issue, tlsgate
from .upstream_app import run_upstream

pytestmark = pytest.mark.interop

#: What OpenSSL calls the alert a client gets for a revoked certificate (RFC 8446 6.2).
REVOKED = "SSLV3_ALERT_CERTIFICATE_REVOKED"
REQUEST = b"GET /echo HTTP/1.1\r\nHost: localhost\r\n\r\n"


def client_context(serve: Serve, cert: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(serve.root))
    context.load_cert_chain(cert / "fullchain.pem", cert / "key.pem")
    return context


def response(tls: ssl.SSLSocket) -> bytes:
    """One HTTP response (the head and its Content-Length body), so the connection can go on."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = tls.recv(65536)
        assert chunk, data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = tls.recv(65536)
        assert chunk, data
        body += chunk
    return head


def attempt(serve: Serve, cert: Path) -> str:
    """A new connection with ``cert`` and one request: "200" when the upstream answered, else
    OpenSSL's name for the TLS alert the client got (in the handshake with TLS 1.2, on the
    first read with TLS 1.3, where the server checks the certificate after its Finished)."""
    raw = socket.create_connection(("127.0.0.1", serve.port), timeout=10)
    try:
        with client_context(serve, cert).wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(REQUEST)
            return response(tls).split(b" ", 2)[1].decode()
    except ssl.SSLError as exc:
        return str(exc.reason)
    finally:
        raw.close()


def serial_of(cert: Path) -> str:
    leaf = x509.load_pem_x509_certificate((cert / "fullchain.pem").read_bytes())
    return format(leaf.serial_number, "X")


def refused_from_now_on(serve: Serve, cert: Path, timeout: float = 30) -> None:
    """Wait (polling, with a deadline) until new handshakes with ``cert`` are refused with
    ``certificate_revoked``, six times in a row (with several workers, by every one of them)."""
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while seen[-6:] != [REVOKED] * 6:
        assert time.monotonic() < deadline, (seen[-10:], serve.log.read_text())
        outcome = attempt(serve, cert)
        assert outcome in ("200", REVOKED), outcome
        seen.append(outcome)
        if outcome != REVOKED:
            time.sleep(0.1)


@pytest.mark.parametrize("workers", [1, 2])
def test_kill_hup_applies_a_revocation_at_once(
    serve_factory: Any, tmp_path: Path, workers: int
) -> None:
    """One worker: the master serves; two: the master writes the CRL, the workers load it."""
    state = tmp_path / "state"
    tlsgate(state, "ca", "init")
    config = (
        config_text('["localhost"]', server='store_poll = "1h"').replace(
            "workers = 1", f"workers = {workers}"
        )
        + '\n[site.client_auth]\nmode = "require"\n'
    )
    assert f"workers = {workers}" in config
    serve: Serve = serve_factory(config=config, state=state)
    client = issue(state, tmp_path / "client", PROD)
    assert attempt(serve, client) == "200"
    with socket.create_connection(("127.0.0.1", serve.port), timeout=10) as raw:
        with client_context(serve, client).wrap_socket(raw, server_hostname="localhost") as open_:
            open_.sendall(REQUEST)
            assert response(open_).startswith(b"HTTP/1.1 200")

            tlsgate(state, "ca", "revoke", serial_of(client), "--reason", "keyCompromise")
            # Nothing looks at the store for an hour, nor at the CRL for five minutes: only the
            # signal can apply the revocation.
            assert attempt(serve, client) == "200"
            serve.proc.send_signal(signal.SIGHUP)
            refused_from_now_on(serve, client)

            open_.sendall(REQUEST)  # the connection made before the revocation goes on
            assert response(open_).startswith(b"HTTP/1.1 200")
    assert serve.proc.poll() is None


def test_a_revocation_in_the_store_applies_without_a_signal(
    serve_factory: Any, tmp_path: Path
) -> None:
    """Two workers: the master sees the revocation in the store and every worker follows."""
    state = tmp_path / "state"
    tlsgate(state, "ca", "init")
    serve: Serve = serve_factory("--client-auth", "require", workers=2, state=state)
    client = issue(state, tmp_path / "client", PROD)
    other = issue(state, tmp_path / "other", PROD)
    assert attempt(serve, client) == "200"
    tlsgate(state, "ca", "revoke", serial_of(client))
    refused_from_now_on(serve, client)
    assert attempt(serve, other) == "200"  # only the revoked certificate is refused


def test_kill_hup_re_reads_a_crl_file(serve_factory: Any, tmp_path: Path) -> None:
    """``trust`` and ``crl`` of a CA serve does not run (here another tlsgate state's)."""
    clients_ca = tmp_path / "clients-ca"
    tlsgate(clients_ca, "ca", "init")
    trust, crl = tmp_path / "clients-ca.pem", tmp_path / "clients-ca.crl"
    tlsgate(clients_ca, "ca", "export-root", "--intermediate", "--out", str(trust))
    tlsgate(clients_ca, "ca", "crl", "--out", str(crl))
    config = config_text('["localhost"]') + (
        f'\n[site.client_auth]\nmode = "require"\ntrust = "{trust}"\ncrl = "{crl}"\n'
    )
    serve: Serve = serve_factory(config=config)
    client = issue(clients_ca, tmp_path / "client", PROD)
    assert attempt(serve, client) == "200"
    tlsgate(clients_ca, "ca", "revoke", serial_of(client))
    tlsgate(clients_ca, "ca", "crl", "--out", str(crl))
    assert attempt(serve, client) == "200"  # CRL files are re-read every 5 minutes, or on HUP
    serve.proc.send_signal(signal.SIGHUP)
    refused_from_now_on(serve, client)


def test_postgresql_tells_serve_of_a_revocation_at_once(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    """With a database store the revocation's NOTIFY is what applies it: the poll is an hour."""
    url = postgres_server.create_database()

    def cli(*args: str) -> None:
        subprocess.run(
            [sys.executable, "-m", "tlsgate", *args, "--store", url],
            capture_output=True, check=True, timeout=60,
            env={**os.environ, "TLSGATE_STATE": str(tmp_path / "cli-local")},
        )  # fmt: skip

    cli("ca", "init")
    root, client = tmp_path / "root.pem", tmp_path / "client"
    cli("ca", "export-root", "--out", str(root))
    cli("ca", "issue", "--client", "--spiffe", PROD, "--out", str(client))
    port, http_port = free_port(), free_port()
    with run_upstream() as (upstream_port, seen):
        config = tmp_path / "tlsgate.toml"
        config.write_text(
            config_text('["localhost"]', server='store_poll = "1h"').format(
                port=port, http_port=http_port, upstream_port=upstream_port
            )
            + '\n[site.client_auth]\nmode = "require"\n'
        )
        log = tmp_path / "serve.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "tlsgate", "serve", "-c", str(config), "--store", url],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, "TLSGATE_STATE": str(tmp_path / "serve-local")},
            )  # fmt: skip
        try:
            wait_ready(port, proc, log)
            serve = Serve(proc, port, http_port, tmp_path, root, upstream_port, seen, log)
            assert attempt(serve, client) == "200"
            cli("ca", "revoke", serial_of(client))
            refused_from_now_on(serve, client)
        finally:
            proc.kill()
            proc.wait()

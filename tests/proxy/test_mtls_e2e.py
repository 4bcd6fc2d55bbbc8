"""Mutual TLS at the edge with real clients: curl and openssl s_client against `tlsgate serve`.

One serve, two sites on one port: ``localhost`` asks for client certificates from the internal
CA (SPIFFE IDs of namespace prod may pass, /admin only for the ops service account) and
``open.localhost`` asks for none. Each kind of client gets the outcome a user expects, and the
upstream sees an identity header only for accepted certificates, never one a client sent.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_tool
from tlsgate.ca import CertificateAuthority
from tlsgate.pki.keys import private_key_pem
from tlsgate.pki.names import parse_identities
from tlsgate.pki.profiles import LeafProfile
from tlsgate.proxy import socket_tls
from tlsgate.store import open_store

from .conftest import Serve, config_text

pytestmark = pytest.mark.interop

PROD = "spiffe://example.org/ns/prod/sa/web"
OPS = "spiffe://example.org/ns/ops/sa/admin"
STAGING = "spiffe://example.org/ns/staging/sa/web"

CLIENT_AUTH = f"""
[site.client_auth]
mode = "require"
allow_spiffe = ["spiffe://example.org/ns/prod/sa/*", "{OPS}"]
crl_refresh = 1

[[site.client_auth.path]]
prefix = "/admin"
allow_spiffe = ["{OPS}"]
"""


def tlsgate(state: Path, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "tlsgate", *args, "--state", str(state)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return proc.stdout


def issue(state: Path, out: Path, spiffe: str, *, now: datetime | None = None) -> Path:
    """A client certificate (X.509-SVID) from the CA in ``state``; ``now`` backdates it."""
    if now is None:
        tlsgate(state, "ca", "issue", "--client", "--spiffe", spiffe, "--out", str(out))
        return out
    store = open_store(state)
    try:
        issued = CertificateAuthority.load(store).issue(
            parse_identities([spiffe]), now=now,
            profile=LeafProfile(server=False, client=True, lifetime=timedelta(days=1)),
        )  # fmt: skip
    finally:
        store.close()
    assert issued.private_key is not None
    out.mkdir()
    (out / "fullchain.pem").write_bytes(issued.fullchain_pem)
    (out / "key.pem").write_bytes(private_key_pem(issued.private_key))
    return out


def curl(serve: Serve, path: str, cert: Path | None, *extra: str, host: str = "localhost") -> Any:
    cmd = [
        require_tool("curl"), "-sS", "--max-time", "10", "--cacert", str(serve.root),
        "--resolve", f"{host}:{serve.port}:127.0.0.1",
        "-o", "-", "-w", "\n%{http_code}", f"https://{host}:{serve.port}{path}", *extra,
    ]  # fmt: skip
    if cert is not None:
        cmd += ["--cert", str(cert / "fullchain.pem"), "--key", str(cert / "key.pem")]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)


def upstream_xfcc(serve: Serve) -> list[str]:
    last = serve.seen.requests[-1]
    return [v.decode() for n, v in last.headers if n == b"x-forwarded-client-cert"]


@pytest.fixture
def mtls(serve_factory: Any, tmp_path: Path) -> Serve:
    state = tmp_path / "state"
    tlsgate(state, "ca", "init")
    config = (
        config_text('["localhost"]')
        + CLIENT_AUTH
        + '\n[[site]]\nhosts = ["open.localhost"]\nupstream = "http://127.0.0.1:{upstream_port}"\n'
    )
    serve: Serve = serve_factory(config=config, state=state)
    return serve


def wait_logged(serve: Serve, *lines: str, timeout: float = 10) -> None:
    """The server logs a refusal just after its alert has gone out, so the client may see the
    alert before the line is written: wait for it (bounded)."""
    deadline = time.monotonic() + timeout
    while not all(line in serve.log.read_text() for line in lines):
        assert time.monotonic() < deadline, serve.log.read_text()
        time.sleep(0.05)


def test_who_gets_in_and_what_the_upstream_learns(mtls: Serve, tmp_path: Path) -> None:
    serve = mtls
    # Sites that ask for client certificates are chosen from the ClientHello in OpenSSL's
    # callback: the compiled data plane drives their TLS too (the pure path: the loop's).
    path = "OpenSSL on the socket" if socket_tls.available() else "the event loop's"
    wait_logged(serve, f"TLS: {path}")
    prod = issue(serve.state, tmp_path / "prod", PROD)
    ops = issue(serve.state, tmp_path / "ops", OPS)
    staging = issue(serve.state, tmp_path / "staging", STAGING)

    # No certificate: refused in the handshake (no HTTP answer at all), nothing reaches the
    # upstream, and the log says who and why.
    before = len(serve.seen.requests)
    result = curl(serve, "/echo", None)
    assert result.returncode != 0 and result.stdout.endswith("000"), result
    assert "alert certificate required" in result.stderr, result  # OpenSSL's alert arrives
    assert len(serve.seen.requests) == before
    wait_logged(serve, "refused in the TLS handshake: peer_did_not_return_a_certificate")

    # An allowed SPIFFE ID: through, and the upstream learns who (and not what the client
    # claimed about itself).
    forged = 'By=x;Hash=00;Subject="CN=root";URI=spiffe://example.org/ns/ops/sa/admin'
    result = curl(serve, "/echo", prod, "-H", f"X-Forwarded-Client-Cert: {forged}")
    assert result.stdout.endswith("\n200"), result
    (header,) = upstream_xfcc(serve)
    assert f"URI={PROD}" in header and "Hash=" in header and forged not in header

    # Valid but not allowed here: 403 with the reason, nothing upstream.
    before = len(serve.seen.requests)
    result = curl(serve, "/echo", staging)
    assert result.stdout.endswith("\n403"), result
    assert STAGING in result.stdout
    assert len(serve.seen.requests) == before

    # Per-path rules: /admin is for ops only.
    assert curl(serve, "/admin/users", prod).stdout.endswith("\n403")
    assert curl(serve, "/admin/../admin/users", prod).stdout.endswith("\n403")
    assert curl(serve, "/admin/users", ops).stdout.endswith("\n200")

    # A site without client certificates: the forged header never reaches its upstream.
    result = curl(
        serve, "/echo", None, "-H", f"X-Forwarded-Client-Cert: {forged}", host="open.localhost"
    )
    assert result.stdout.endswith("\n200"), result
    assert upstream_xfcc(serve) == []
    body = json.loads(result.stdout.rsplit("\n", 1)[0])
    assert all(name != "x-forwarded-client-cert" for name, _ in body["headers"])


def test_expired_foreign_and_revoked_certificates_are_refused(mtls: Serve, tmp_path: Path) -> None:
    serve = mtls
    expired = issue(
        serve.state, tmp_path / "expired", PROD, now=datetime.now(UTC) - timedelta(days=10)
    )
    other_state = tmp_path / "other-ca"
    tlsgate(other_state, "ca", "init")
    foreign = issue(other_state, tmp_path / "foreign", PROD)
    good = issue(serve.state, tmp_path / "good", PROD)
    for cert in (expired, foreign):
        before = len(serve.seen.requests)
        result = curl(serve, "/echo", cert)
        assert result.returncode != 0, result
        assert len(serve.seen.requests) == before
    assert curl(serve, "/echo", good).stdout.endswith("\n200")

    # openssl s_client gets no HTTP answer; the edge's log says why.
    openssl = require_tool("openssl")
    probe = subprocess.run(
        [openssl, "s_client", "-connect", f"127.0.0.1:{serve.port}", "-servername", "localhost",
         "-CAfile", str(serve.root), "-cert", str(expired / "fullchain.pem"),
         "-key", str(expired / "key.pem"), "-ign_eof"],
        input="GET /echo HTTP/1.1\r\nHost: localhost\r\n\r\n", capture_output=True, text=True,
        timeout=30, check=False,
    )  # fmt: skip
    assert "HTTP/1.1" not in probe.stdout, probe.stdout
    assert "alert certificate expired" in probe.stdout + probe.stderr, probe.stdout
    wait_logged(serve, "certificate has expired", "unable to get local issuer")

    # Revoked: refused once the CRL refresh (1 s here) has seen it; new handshakes only.
    serial = (
        subprocess.run(
            [
                require_tool("openssl"),
                "x509",
                "-noout",
                "-serial",
                "-in",
                str(good / "fullchain.pem"),
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
        .stdout.strip()
        .split("=", 1)[1]
    )
    tlsgate(serve.state, "ca", "revoke", serial)
    deadline = time.monotonic() + 20
    while curl(serve, "/echo", good).returncode == 0:
        assert time.monotonic() < deadline, serve.log.read_text()
        time.sleep(0.3)
    wait_logged(serve, "certificate revoked")
    assert "alert certificate revoked" in curl(serve, "/echo", good).stderr


@contextlib.contextmanager
def echo_server() -> Iterator[int]:
    """A plain TCP echo service (the kind of non-HTTP upstream a tcp site fronts)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve_one(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            while data := conn.recv(65536):
                conn.sendall(b"echo:" + data)

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=serve_one, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def test_a_tcp_site_relays_bytes_for_allowed_clients_only(
    serve_factory: Any, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    tlsgate(state, "ca", "init")
    with echo_server() as echo_port:
        config = config_text('["localhost"]') + (
            f'\n[[site]]\nhosts = ["db.localhost"]\nmode = "tcp"\n'
            f'upstream = "tcp://127.0.0.1:{echo_port}"\n'
            f'[site.client_auth]\nmode = "require"\nallow_spiffe = ["{PROD}"]\n'
        )
        serve: Serve = serve_factory(config=config, state=state)
        prod = issue(serve.state, tmp_path / "prod", PROD)
        staging = issue(serve.state, tmp_path / "staging", STAGING)

        def talk(cert: Path | None) -> bytes:
            context = ssl.create_default_context(cafile=str(serve.root))
            if cert is not None:
                context.load_cert_chain(cert / "fullchain.pem", cert / "key.pem")
            raw = socket.create_connection(("127.0.0.1", serve.port), timeout=10)
            with context.wrap_socket(raw, server_hostname="db.localhost") as tls:
                tls.sendall(b"PING\r\n")
                try:
                    return tls.recv(100)
                except (OSError, ssl.SSLError):
                    return b""

        assert talk(prod) == b"echo:PING\r\n"
        assert talk(staging) == b""  # valid certificate, not allowed: the connection ends
        assert talk(prod) == b"echo:PING\r\n"  # and the relay still works after a refusal
        with pytest.raises(ssl.SSLError):  # TLS 1.2 sees the refusal in the handshake
            context = ssl.create_default_context(cafile=str(serve.root))
            context.maximum_version = ssl.TLSVersion.TLSv1_2
            raw = socket.create_connection(("127.0.0.1", serve.port), timeout=10)
            with context.wrap_socket(raw, server_hostname="db.localhost") as tls:
                tls.recv(1)
        # The HTTP site on the same port is unaffected.
        assert curl(serve, "/echo", None).stdout.endswith("\n200")
        log = serve.log.read_text()
        (refusal,) = [line for line in log.splitlines() if "refused on tcp site" in line]
        assert "db.localhost" in refusal and STAGING in refusal and "not allowed" in refusal
        deadline = time.monotonic() + 10  # access-log lines are written in batches
        while '"method":"TCP"' not in serve.log.read_text():
            assert time.monotonic() < deadline, serve.log.read_text()
            time.sleep(0.1)
        assert '"host":"db.localhost"' in serve.log.read_text()

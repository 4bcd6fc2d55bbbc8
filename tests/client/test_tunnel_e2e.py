"""``tlsgate tunnel`` between real processes: service A -> tunnel -> serve (mTLS) -> service B.

Service A is this test speaking plain HTTP to the tunnel's loopback port; ``tlsgate serve``
requires client certificates and lets only the tunnel's SPIFFE ID in; service B is the test
upstream, which shows what arrived (``Host``, ``X-Forwarded-Client-Cert``). With one-minute
certificates the tunnel renews every ~30 s, and requests keep working across the renewal on new
and on kept-alive connections while the certificate serve sees changes.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.conftest import free_port
from tests.proxy.conftest import Serve, config_text
from tlsgate.ca import CertificateAuthority
from tlsgate.store.sqlite import SQLiteStore

from .helpers import plain_echo, tls_server

A_ID = "spiffe://example.org/ns/a/sa/client"
INTRUDER = "spiffe://example.org/ns/x/sa/intruder"
SERVER_ID = "spiffe://example.org/ns/b/sa/echo"

CLIENT_AUTH = f"""
[site.client_auth]
mode = "require"
allow_spiffe = ["{A_ID}"]
"""


@dataclass
class Tunnel:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    def stop(self, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            return self.proc.wait(timeout)
        return self.proc.returncode

    def conn(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)


@pytest.fixture
def tunnels(tmp_path: Path) -> Iterator[Any]:
    """Start tunnels (several at once: each process takes a second to import)."""
    started: list[Tunnel] = []

    def start(state: Path, *args: str) -> Tunnel:
        port = free_port()
        log = tmp_path / f"tunnel{len(started)}.log"
        cmd = [
            sys.executable, "-m", "tlsgate", "tunnel",
            "--listen", f"127.0.0.1:{port}", "--state", str(state), *args,
        ]  # fmt: skip
        with log.open("wb") as out:
            proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, "TLSGATE_STATE": str(state)},
            )  # fmt: skip
        tunnel = Tunnel(proc, port, log)
        started.append(tunnel)
        return tunnel

    yield start
    for tunnel in started:
        if tunnel.proc.poll() is None:
            tunnel.proc.kill()
            tunnel.proc.wait()


def wait_listening(*tunnels: Tunnel, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    for tunnel in tunnels:
        while True:
            if tunnel.proc.poll() is not None:
                raise AssertionError(f"tunnel exited: {tunnel.log.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", tunnel.port), timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline, tunnel.log.read_text()
                time.sleep(0.05)


def wait_logged(log: Path, text: str, timeout: float = 10) -> None:
    """``text`` shows up in the log (a process may log just after its peer saw the outcome)."""
    deadline = time.monotonic() + timeout
    while text not in log.read_text():
        assert time.monotonic() < deadline, f"{text!r} not logged: {log.read_text()}"
        time.sleep(0.05)


def new_ca(state: Path) -> CertificateAuthority:
    store = SQLiteStore(state)
    try:
        return CertificateAuthority.init(store, now=datetime.now(UTC))
    finally:
        store.close()


def echo(conn: http.client.HTTPConnection, method: str = "GET", **kw: Any) -> dict[str, Any]:
    conn.request(method, "/echo", **kw)
    response = conn.getresponse()
    body = response.read()
    assert response.status == 200, body
    data: dict[str, Any] = json.loads(body)
    return data


def header(seen: dict[str, Any], name: str) -> str:
    (value,) = [v for n, v in seen["headers"] if n == name]
    return str(value)


def xfcc_hash(seen: dict[str, Any]) -> str:
    value = header(seen, "x-forwarded-client-cert")
    assert f"URI={A_ID}" in value, value
    return value.split("Hash=", 1)[1].split(";", 1)[0]


def serials_by_hash(state: Path) -> dict[str, tuple[int, tuple[str, ...], str]]:
    """sha256(DER) -> (serial, names, requester) for every certificate the CA signed."""
    store = SQLiteStore(state)
    try:
        records = CertificateAuthority.load(store).certificates()
    finally:
        store.close()
    out = {}
    for r in records:
        der = x509.load_pem_x509_certificate(r.pem).public_bytes(serialization.Encoding.DER)
        out[hashlib.sha256(der).hexdigest()] = (r.serial, r.names, r.requester)
    return out


def test_service_a_reaches_service_b_through_the_tunnel_across_renewals(
    serve_factory: Any, tunnels: Any, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    new_ca(state)
    serve: Serve = serve_factory(config=config_text('["service-b"]') + CLIENT_AUTH, state=state)
    target = ["--to", f"https://service-b:{serve.port}", "--connect", f"127.0.0.1:{serve.port}"]
    foreign_state = tmp_path / "foreign"
    new_ca(foreign_state)
    a = tunnels(state, *target, "--identity", A_ID, "--lifetime", "1m")
    intruder = tunnels(state, *target, "--identity", INTRUDER)
    # Its own CA: serve refuses its certificate (it trusts serve's root with --ca).
    foreign = tunnels(foreign_state, *target, "--identity", A_ID, "--ca", str(serve.root))
    wait_listening(a, intruder, foreign)

    keep = a.conn()
    seen = echo(keep)
    # B sees the request for its own name and who the client was, verified by serve.
    assert header(seen, "host") == f"service-b:{serve.port}"
    first_hash = xfcc_hash(seen)

    # Bodies both ways, in both framings, on the same kept-alive connection.
    body = os.urandom(300_000)
    seen = echo(keep, "POST", body=body, headers={"content-type": "application/octet-stream"})
    assert seen["body_size"] == len(body)
    assert seen["body_sha256"] == hashlib.sha256(body).hexdigest()
    seen = echo(keep, "POST", body=iter([body[:1000], body[1000:]]), encode_chunked=True)
    assert seen["body_sha256"] == hashlib.sha256(body).hexdigest()
    keep.request("GET", "/bytes/1000000")
    response = keep.getresponse()
    assert response.status == 200 and len(response.read()) == 1_000_000
    keep.request("GET", "/chunked/5")
    response = keep.getresponse()
    assert response.read() == b"0123456789" * 5
    # Connection: close is honoured.
    once = a.conn()
    once.request("GET", "/hello", headers={"connection": "close"})
    response = once.getresponse()
    assert response.status == 200 and response.getheader("connection") == "close"
    response.read()
    once.close()

    # An Upgrade becomes a byte pipe (B echoes what it gets).
    with socket.create_connection(("127.0.0.1", a.port), timeout=15) as raw:
        raw.sendall(
            b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += raw.recv(4096)
        assert head.startswith(b"HTTP/1.1 101 "), head
        raw.sendall(b"ping")
        assert raw.recv(4096) == b"echo:ping"

    # Another identity gets serve's 403 through; a certificate from another CA, a 502 saying so.
    conn = intruder.conn()
    conn.request("GET", "/echo")
    response = conn.getresponse()
    assert response.status == 403 and INTRUDER in response.read().decode()
    conn.close()
    conn = foreign.conn()
    conn.request("GET", "/echo")
    response = conn.getresponse()
    text = response.read().decode()
    conn.close()
    assert response.status == 502 and "refused our client certificate" in text, text
    wait_logged(foreign.log, "refused our client certificate")
    wait_logged(serve.log, "refused in the TLS handshake")  # logged after its alert went out
    # The upgraded connection's close (a close_notify after the 101) ended the tunnel cleanly.
    assert "Error calling eof_received" not in serve.log.read_text()

    # Across a renewal (every ~30 s with one-minute certificates): no request fails, and serve
    # sees a new certificate on new connections and on the kept-alive one.
    fresh_hashes, kept_hashes = {first_hash}, {first_hash}
    deadline = time.monotonic() + 90
    requests = 0
    while len(fresh_hashes) < 2 or len(kept_hashes) < 2:
        assert time.monotonic() < deadline, f"no renewal seen in 90 s: {a.log.read_text()}"
        kept_hashes.add(xfcc_hash(echo(keep)))
        new = a.conn()
        fresh_hashes.add(xfcc_hash(echo(new)))
        new.close()
        requests += 2
        time.sleep(0.25)
    keep.close()
    certs = serials_by_hash(state)
    serials = {certs[h][0] for h in fresh_hashes | kept_hashes}
    assert len(serials) >= 2 and requests > 10
    assert all(certs[h][1:] == ((A_ID,), "client") for h in fresh_hashes | kept_hashes)
    assert "presenting certificate" in a.log.read_text()

    assert a.stop() == 0  # SIGTERM: a clean stop


def test_tcp_mode_pipes_bytes_with_half_close_to_an_svid_server(
    ca: CertificateAuthority, state_dir: Path, tunnels: Any
) -> None:
    with tls_server(ca, [SERVER_ID], mode="echo") as server:
        common = ["--tcp", "--to", "https://echo.internal:443", "--connect"]
        common.append(f"127.0.0.1:{server.port}")
        good = tunnels(state_dir, *common, "--identity", A_ID, "--expect-spiffe", SERVER_ID)
        wrong = tunnels(
            state_dir, *common, "--identity", A_ID, "--expect-spiffe", "spiffe://example.org/x"
        )
        wait_listening(good, wrong)

        data = os.urandom(2_000_000)  # larger than any buffer: back-pressure both ways
        with socket.create_connection(("127.0.0.1", good.port), timeout=15) as conn:
            conn.sendall(data)
            conn.shutdown(socket.SHUT_WR)  # our end of input -> close_notify -> server replies
            got = b""
            while piece := conn.recv(65536):
                got += piece
        assert got == b"echo:" + data
        uris = (
            server.seen.clients[-1]
            .extensions.get_extension_for_class(x509.SubjectAlternativeName)
            .value.get_values_for_type(x509.UniformResourceIdentifier)
        )
        assert uris == [A_ID]

        # A server with another SPIFFE ID: the connection is closed, nothing is sent to it.
        before = len(server.seen.echoed)
        with socket.create_connection(("127.0.0.1", wrong.port), timeout=15) as conn:
            conn.sendall(b"secret")
            try:
                assert conn.recv(100) == b""
            except ConnectionResetError:
                pass
        assert len(server.seen.echoed) == before
        wait_logged(wrong.log, "refusing to talk to it")
        assert good.stop() == 0 and wrong.stop() == 0


def test_tcp_mode_through_a_serve_tcp_site(
    serve_factory: Any, tunnels: Any, tmp_path: Path
) -> None:
    """tunnel --tcp -> serve's mode = "tcp" site (client certificates required) -> a TCP service."""
    state = tmp_path / "state"
    new_ca(state)
    with plain_echo() as echo_port:
        config = config_text('["localhost"]') + (
            f'\n[[site]]\nhosts = ["db.internal"]\nmode = "tcp"\n'
            f'upstream = "tcp://127.0.0.1:{echo_port}"\n{CLIENT_AUTH}'
        )
        serve: Serve = serve_factory(config=config, state=state)
        target = ["--tcp", "--to", f"https://db.internal:{serve.port}"]
        target += ["--connect", f"127.0.0.1:{serve.port}"]
        good = tunnels(state, *target, "--identity", A_ID)
        intruder = tunnels(state, *target, "--identity", INTRUDER)
        wait_listening(good, intruder)

        with socket.create_connection(("127.0.0.1", good.port), timeout=15) as conn:
            conn.sendall(b"ping")
            got = b""
            while len(got) < len(b"echo:ping"):
                piece = conn.recv(100)
                assert piece, got
                got += piece
            assert got == b"echo:ping"

        # serve lets the certificate through the handshake, then ends the connection for an
        # identity its allow list does not name: nothing reaches the TCP service.
        with socket.create_connection(("127.0.0.1", intruder.port), timeout=15) as conn:
            conn.sendall(b"ping")
            with contextlib.suppress(ConnectionResetError):
                assert conn.recv(100) == b""
        assert good.stop() == 0 and intruder.stop() == 0

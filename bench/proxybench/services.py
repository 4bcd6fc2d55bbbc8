"""Processes the harness starts (each in its own session), its TLS client, content
checks, and the certificates every proxy serves."""

from __future__ import annotations

import shlex
import socket
import ssl
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from proxybench.common import (
    CLIENT_SPIFFE,
    HOST,
    LARGE_BODY,
    REPO,
    SMALL_BODY,
    BenchError,
    progress,
)
from service import Service as Service
from service import start


def spawn(name: str, argv: Sequence[str], log: Path, port: int, cwd: Path = REPO) -> Service:
    progress(f"starting {name}: {shlex.join(argv)}")
    return start(name, argv, log, port=port, cwd=cwd)


def client_context(ca_file: Path, client: ClientCert | None = None) -> ssl.SSLContext:
    """The harness's own TLS client; with ``client`` it presents that certificate."""
    context = ssl.create_default_context(cafile=str(ca_file))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if client is not None:
        context.load_cert_chain(client.fullchain, client.key)
    return context


def wait_ready(service: Service, timeout: float, tls: ssl.SSLContext | None) -> None:
    """Until the port accepts a connection (and a TLS handshake), the process dies, or timeout."""
    deadline = time.monotonic() + timeout
    last_error = ""
    while time.monotonic() < deadline:
        if not service.alive():
            raise BenchError(
                f"{service.name} exited with {service.popen.returncode} while starting:\n"
                f"{service.log_tail()}"
            )
        try:
            with socket.create_connection((HOST, service.port), timeout=2.0) as sock:
                if tls is not None:
                    with tls.wrap_socket(sock, server_hostname="localhost"):
                        pass
            return
        except (OSError, ssl.SSLError) as exc:
            last_error = str(exc)
        time.sleep(0.1)
    raise BenchError(
        f"{service.name} did not accept a {'TLS ' if tls else ''}connection on port "
        f"{service.port} within {timeout:g} s ({last_error}):\n{service.log_tail()}"
    )


def http_get(port: int, path: str, tls: ssl.SSLContext | None) -> tuple[int, bytes]:
    """One GET over a fresh connection (HTTP/1.1, Connection: close): status and body."""
    with socket.create_connection((HOST, port), timeout=10.0) as raw:
        sock: socket.socket = raw
        if tls is not None:
            sock = tls.wrap_socket(raw, server_hostname="localhost")
        request = f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        sock.sendall(request.encode())
        chunks = []
        while chunk := sock.recv(1 << 16):
            chunks.append(chunk)
        if tls is not None:
            sock.close()
    response = b"".join(chunks)
    head, _, body = response.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].split()
    status = int(status_line[1]) if len(status_line) > 1 else 0
    if b"transfer-encoding: chunked" in head.lower():
        body = dechunk(body)
    return status, body


def dechunk(data: bytes) -> bytes:
    out, rest = [], data
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out.append(rest[:size])
        rest = rest[size + 2 :]
    return b"".join(out)


def check_content(name: str, port: int, tls: ssl.SSLContext | None, small: bytes) -> None:
    """Before any load: both paths answer 200 with exactly the upstream's bodies."""
    for path, expected_len in (("/100b", SMALL_BODY), ("/1m", LARGE_BODY)):
        try:
            status, body = http_get(port, path, tls)
        except (OSError, ssl.SSLError) as exc:
            raise BenchError(f"{name}: GET {path} failed: {exc}") from None
        if status == 0:
            raise BenchError(f"{name}: GET {path}: no HTTP response, the connection closed")
        if status != 200 or len(body) != expected_len:
            raise BenchError(
                f"{name}: GET {path} gave status {status} and {len(body)} bytes,"
                f" expected 200 and {expected_len}"
            )
        if path == "/100b" and body != small:
            raise BenchError(f"{name}: GET /100b returned a different body")


@dataclass(frozen=True)
class ClientCert:
    """The client certificate (an X.509-SVID for CLIENT_SPIFFE) HAProxy presents."""

    fullchain: Path
    key: Path
    combined: Path  # fullchain + key in one PEM: HAProxy's `crt`


@dataclass(frozen=True)
class Certs:
    fullchain: Path
    key: Path
    root_ca: Path
    client: ClientCert | None = None


def make_certs(
    tmp: Path, tlsgate: str, *, client: bool = False, key_type: str = "ecdsa-p256"
) -> Certs:
    """The server certificate (a ``key_type`` key), and with ``client`` a client one, from
    one fresh tlsgate CA."""
    state, out, client_out = tmp / "ca-state", tmp / "cert", tmp / "client-cert"
    progress(f"creating a CA and a {key_type} certificate for localhost, {HOST} with tlsgate ca")
    issue = [tlsgate, "ca", "issue", "localhost", HOST, "--key-type", key_type]
    commands = [
        [tlsgate, "ca", "init", "--state", str(state)],
        [*issue, "--out", str(out), "--state", str(state)],
        [tlsgate, "ca", "export-root", "--out", str(tmp / "root.pem"), "--state", str(state)],
    ]
    if client:
        issue = [tlsgate, "ca", "issue", "--client", "--spiffe", CLIENT_SPIFFE]
        commands.append([*issue, "--out", str(client_out), "--state", str(state)])
    for argv in commands:
        result = subprocess.run(
            argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=120, check=False
        )
        if result.returncode != 0:
            raise BenchError(
                f"{shlex.join(argv)} failed ({result.returncode}):\n"
                f"{result.stderr.decode(errors='replace')}"
            )
    client_cert = None
    if client:
        fullchain, key = client_out / "fullchain.pem", client_out / "key.pem"
        if not (fullchain.is_file() and key.is_file()):
            raise BenchError(f"tlsgate ca issue --client did not write {client_out}")
        combined = tmp / "client-combined.pem"
        combined.write_bytes(fullchain.read_bytes() + key.read_bytes())
        combined.chmod(0o600)
        client_cert = ClientCert(fullchain, key, combined)
    certs = Certs(out / "fullchain.pem", out / "key.pem", tmp / "root.pem", client_cert)
    for path in (certs.fullchain, certs.key, certs.root_ca):
        if not path.is_file():
            raise BenchError(f"tlsgate ca did not write {path}")
    return certs


def small_body() -> bytes:
    text = "tlsgate proxy benchmark: a 100-byte response body from the upstream nginx. "
    body = (text * 2)[: SMALL_BODY - 1] + "\n"
    assert len(body) == SMALL_BODY and '"' not in body and "\\" not in body
    return body.encode()

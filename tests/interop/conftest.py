"""Fixtures for interop tests: a CA made through the CLI and a real TLS server on loopback."""

from __future__ import annotations

import http.server
import ssl
import subprocess
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tlsgate.cli import main


def cli(*args: str) -> None:
    code = main(list(args))
    assert code == 0, f"tlsgate {' '.join(args)} exited {code}"


def run(argv: Sequence[str], *, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )


@dataclass
class CAFiles:
    state: Path
    root: Path
    work: Path

    def issue(self, name: str, *args: str) -> Path:
        out = self.work / name
        cli("ca", "issue", *args, "--out", str(out), "--state", str(self.state))
        return out


def make_ca(work: Path, *init_args: str) -> CAFiles:
    work.mkdir(parents=True, exist_ok=True)
    state = work / "state"
    cli("ca", "init", *init_args, "--state", str(state))
    root = work / "root.pem"
    cli("ca", "export-root", "--out", str(root), "--state", str(state))
    return CAFiles(state=state, root=root, work=work)


@pytest.fixture
def ca_files(tmp_path: Path) -> CAFiles:
    return make_ca(tmp_path / "ca")


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"hello over TLS\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class TLSServer:
    """A real HTTPS server on 127.0.0.1 presenting ``cert_dir``'s fullchain.pem and key.pem."""

    def __init__(self, cert_dir: Path) -> None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(cert_dir / "fullchain.pem", cert_dir / "key.pem")
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> TLSServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=10)


@pytest.fixture
def tls_server(ca_files: CAFiles) -> Iterator[TLSServer]:
    cert_dir = ca_files.issue("localhost", "localhost", "127.0.0.1", "::1")
    with TLSServer(cert_dir) as server:
        yield server

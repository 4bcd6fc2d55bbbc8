"""`tlsgate serve` with ACME sites as a real process, and a client that keeps requesting.

Shared by the end-to-end tests against pebble and against `tlsgate ca serve`: the CA validates
on ``http_port`` / ``tls_port``, which are serve's own listeners.
"""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509


def serve_config(
    *, directory: str, root: Path, http_port: int, tls_port: int, upstream_port: int,
    sites: str, workers: int = 2,
) -> str:  # fmt: skip
    return (
        f'[server]\nlisten = "127.0.0.1:{tls_port}"\nhttp_listen = "127.0.0.1:{http_port}"\n'
        f'workers = {workers}\naccess_log = "off"\n\n'
        f'[acme]\ndirectory = "{directory}"\nca = "{root}"\nemail = "ops@example.test"\n'
        + sites.replace("UPSTREAM", f"http://127.0.0.1:{upstream_port}")
    )


class Edge:
    def __init__(self, tmp_path: Path, config: str, port: int) -> None:
        self.dir = tmp_path / "edge"
        self.dir.mkdir(exist_ok=True)
        (self.dir / "tlsgate.toml").write_text(config)
        self.state = self.dir / "state"
        self.port = port
        self.log = self.dir / "serve.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tlsgate", "serve",
                 "-c", str(self.dir / "tlsgate.toml"), "--state", str(self.state)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def status(self) -> list[dict[str, object]]:
        out = subprocess.run(
            [sys.executable, "-m", "tlsgate", "status", "--json", "--state", str(self.state)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        rows: list[dict[str, object]] = json.loads(out.stdout)
        return rows

    def status_of(self, name: str) -> dict[str, object]:
        return next(row for row in self.status() if row["name"] == name)


def verified_serial(port: int, name: str, roots: list[Path]) -> int | None:
    """The serial of the certificate ``name`` gets, if it verifies against ``roots`` (a
    placeholder or a wrong chain does not), else None."""
    context = ssl.create_default_context()
    context.load_verify_locations(cadata="".join(p.read_text() for p in roots))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with context.wrap_socket(raw, server_hostname=name) as tls:
                der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError):
        return None
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def wait_for(
    check: Callable[[], object], timeout: float, what: str, log: Callable[[], str]
) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}\n{log()[-6000:]}")


@dataclass
class Traffic:
    """One keep-alive connection requesting every 50 ms, and a new connection every 250 ms
    recording the serial it was served; every answer must be a 200 (bounded by ``limit``)."""

    port: int
    name: str
    roots: list[Path]
    limit: float
    serials: list[int] = field(default_factory=list)
    requests: int = 0
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._threads = [
            threading.Thread(target=self._keep_alive, daemon=True),
            threading.Thread(target=self._new_connections, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(15)

    def _context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        context.load_verify_locations(cadata="".join(p.read_text() for p in self.roots))
        return context

    def _get(self, tls: ssl.SSLSocket, close: bool) -> None:
        tls.sendall(
            f"GET /traffic HTTP/1.1\r\nHost: {self.name}\r\n"
            f"{'Connection: close' if close else ''}\r\n\r\n".encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = tls.recv(65536)
            if not chunk:
                raise ConnectionError("closed before the response")
            head += chunk
        status = head.split(b" ", 2)[1]
        length = 0
        for line in head.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            if key.strip().lower() == b"content-length":
                length = int(value)
        body = head.split(b"\r\n\r\n", 1)[1]
        while len(body) < length:
            chunk = tls.recv(65536)
            if not chunk:
                raise ConnectionError("closed in the body")
            body += chunk
        if status != b"200":
            raise ConnectionError(f"status {status.decode()}")
        self.requests += 1

    def _keep_alive(self) -> None:
        deadline = time.monotonic() + self.limit
        try:
            raw = socket.create_connection(("127.0.0.1", self.port), timeout=10)
            with self._context().wrap_socket(raw, server_hostname=self.name) as tls:
                while not self._stop.is_set() and time.monotonic() < deadline:
                    self._get(tls, close=False)
                    time.sleep(0.05)
        except Exception as exc:
            self.failures.append(f"keep-alive: {exc!r}")

    def _new_connections(self) -> None:
        deadline = time.monotonic() + self.limit
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                raw = socket.create_connection(("127.0.0.1", self.port), timeout=10)
                with self._context().wrap_socket(raw, server_hostname=self.name) as tls:
                    der = tls.getpeercert(binary_form=True)
                    assert der is not None
                    serial = x509.load_der_x509_certificate(der).serial_number
                    self._get(tls, close=True)
                if not self.serials or self.serials[-1] != serial:
                    self.serials.append(serial)
            except Exception as exc:
                self.failures.append(f"new connection: {exc!r}")
            time.sleep(0.25)

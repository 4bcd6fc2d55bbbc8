"""`tlsgate ca serve` as a real process the tests start, stop and start again on its state.

Names under ``*.example.test`` resolve to loopback through ``--resolve``; the validator connects
to ``http_port`` / ``tls_port``, where the client under test answers.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import free_port


class AcmeCA:
    def __init__(
        self,
        tmp_path: Path,
        *extra: str,
        http_port: int | None = None,
        tls_port: int | None = None,
        store: str | None = None,
        init: bool = True,
        public_url: str | None = None,
    ) -> None:
        """``store`` (a ``postgresql://`` URL) is shared with other nodes: only the first one
        runs ``ca init`` on it (``init``); ``public_url`` is the load balancer's URL."""
        self.state = tmp_path / "state"
        self.env = {**os.environ, "TLSGATE_STATE": str(self.state)}
        if store is not None:
            self.env["TLSGATE_STORE"] = store
        else:
            self.env.pop("TLSGATE_STORE", None)
        self.env.pop("TLSGATE_CA_PASSPHRASE", None)
        tlsgate = [sys.executable, "-m", "tlsgate"]
        steps = [["ca", "export-root", "--out", str(tmp_path / "root.pem")]]
        for args in [["ca", "init"], *steps] if init else steps:
            subprocess.run(
                [*tlsgate, *args], env=self.env, check=True, capture_output=True, timeout=60
            )
        self.root = tmp_path / "root.pem"  # trusts its HTTPS and signs what it issues
        self.port = free_port()
        self.http_port = http_port or free_port()
        self.tls_port = tls_port or free_port()
        self.url = public_url or f"https://localhost:{self.port}"
        self.directory = f"{self.url}/directory"
        if public_url is not None:
            extra = ("--public-url", public_url, *extra)
        self.log = tmp_path / "ca-serve.log"
        self.cmd = [
            *tlsgate, "ca", "serve",
            "--listen", f"127.0.0.1:{self.port}",
            "--http-01-port", str(self.http_port),
            "--tls-alpn-01-port", str(self.tls_port),
            "--resolve", "*.example.test=127.0.0.1",
            *extra,
        ]  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            start = out.tell()
            self.proc = subprocess.Popen(
                self.cmd, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
        deadline = time.monotonic() + 30
        while "ACME directory at" not in self.log.read_text()[start:]:
            assert self.proc.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


@contextlib.contextmanager
def running_acme_ca(tmp_path: Path, *extra: str) -> Iterator[AcmeCA]:
    """A real `tlsgate ca serve` with its own state; ``extra`` are more options for it."""
    ca = AcmeCA(tmp_path, *extra)
    ca.start()
    try:
        yield ca
    finally:
        ca.stop()

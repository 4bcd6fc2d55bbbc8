"""Debian's pebble (and pebble-challtestsrv) as real processes the tests start and stop.

pebble keeps its defaults that make clients robust: 5 % of good nonces rejected (badNonce) and
authorizations reused half the time; only the 0-5 s sleep before validation is off
(``PEBBLE_VA_NOSLEEP``) to keep the tests short. pebble-challtestsrv answers pebble's DNS with
127.0.0.1 for every name, so pebble validates against whatever listens on ``http_port`` and
``tls_port`` on loopback. pebble's HTTPS certificate comes from our CA, so clients trust pebble
through our root (``root``), never through an "insecure" switch.

pebble keeps everything in memory: :meth:`Pebble.stop` and :meth:`Pebble.start` again is a CA
that forgot every account and made itself a new issuing root.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from cryptography import x509

from tests.conftest import free_port, require_tool


def wait_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)


class Pebble:
    def __init__(
        self,
        tmp_path: Path,
        *,
        http_port: int | None = None,
        tls_port: int | None = None,
        validity: int | None = None,
    ) -> None:
        require_tool("pebble")
        require_tool("pebble-challtestsrv")
        self.dir = tmp_path / "pebble"
        self.dir.mkdir()
        self.http_port = http_port or free_port()
        self.tls_port = tls_port or free_port()
        self.port, self.mgmt, self.dns_port = free_port(), free_port(), free_port()
        self.directory = f"https://localhost:{self.port}/dir"
        self.roots_url = f"https://localhost:{self.mgmt}/roots/0"
        self.root = self.dir / "root.pem"  # our CA's root: what trusts pebble's HTTPS
        self._dns: subprocess.Popen[bytes] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        env = {**os.environ, "TLSGATE_STATE": str(self.dir / "state")}
        tlsgate = [sys.executable, "-m", "tlsgate"]
        for args in (
            ["ca", "init"],
            ["ca", "export-root", "--out", str(self.root)],
            ["ca", "issue", "localhost", "127.0.0.1", "--out", str(self.dir / "pc")],
        ):
            subprocess.run([*tlsgate, *args], env=env, check=True, capture_output=True, timeout=60)
        config: dict[str, object] = {
            "listenAddress": f"127.0.0.1:{self.port}",
            "managementListenAddress": f"127.0.0.1:{self.mgmt}",
            "certificate": str(self.dir / "pc" / "fullchain.pem"),
            "privateKey": str(self.dir / "pc" / "key.pem"),
            "httpPort": self.http_port,
            "tlsPort": self.tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
        }
        if validity is not None:
            config["certificateValidityPeriod"] = validity
        (self.dir / "pebble.json").write_text(json.dumps({"pebble": config}))

    def __enter__(self) -> Pebble:
        try:
            self.start()
        except BaseException:  # (__exit__ does not run for a failed __enter__)
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        if self._dns is None:
            log = self.dir / "challtestsrv.log"
            with log.open("wb") as out:
                self._dns = subprocess.Popen(
                    ["pebble-challtestsrv", "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
                     "-dns01", f"127.0.0.1:{self.dns_port}", "-http01", "", "-https01", "",
                     "-tlsalpn01", "", "-management", f"127.0.0.1:{free_port()}"],
                    stdout=out, stderr=subprocess.STDOUT,
                )  # fmt: skip
            wait_port(self.dns_port, self._dns, log)
        self.starts += 1
        log = self.dir / f"pebble{self.starts}.log"
        with log.open("wb") as out:
            self._proc = subprocess.Popen(
                ["pebble", "-config", str(self.dir / "pebble.json"),
                 "-dnsserver", f"127.0.0.1:{self.dns_port}"],
                stdout=out, stderr=subprocess.STDOUT,
                env={**os.environ, "PEBBLE_VA_NOSLEEP": "1"},
            )  # fmt: skip
        # The ACME and the management listeners open one after the other: a caller may ask
        # the management side (issuing_root) at once, so both must be up.
        wait_port(self.port, self._proc, log)
        wait_port(self.mgmt, self._proc, log)

    def stop(self) -> None:
        if self._proc is not None:
            _end(self._proc)
            self._proc = None

    def close(self) -> None:
        self.stop()
        if self._dns is not None:
            _end(self._dns)
            self._dns = None

    def issuing_root(self) -> x509.Certificate:
        """The root pebble signs with now (a new one after every start)."""
        context = ssl.create_default_context(cafile=str(self.root))
        with urllib.request.urlopen(self.roots_url, context=context, timeout=10) as response:
            return x509.load_pem_x509_certificate(response.read())

    def log(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.dir.glob("pebble*.log")))


def _end(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()

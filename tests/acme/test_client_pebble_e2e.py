"""The ACME client against Debian's pebble: a CA server no one here wrote.

pebble keeps its defaults that make clients robust: 5 % of good nonces rejected (badNonce) and
authorizations reused half the time; only the 0-5 s sleep before validation is off
(``PEBBLE_VA_NOSLEEP``) to keep the test short. pebble-challtestsrv answers pebble's DNS with
127.0.0.1 for every name. pebble's HTTPS certificate comes from our CA, so the client trusts
pebble through our root, not through any "insecure" switch.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from josepy.jwk import JWKEC

from tests.conftest import free_port, require_tool
from tlsgate.acme.client import AcmeClient
from tlsgate.acme.solvers import Http01Solver
from tlsgate.acme.validation import ACME_TLS_ALPN, alpn_challenge_certificate
from tlsgate.pki.chain import verify_chain

from .test_server import run

pytestmark = pytest.mark.interop


def wait_port(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)


@dataclass
class Pebble:
    directory: str
    root: Path  # our CA's root: trusts pebble's HTTPS
    roots_url: str  # pebble's own issuing root, for checking the certificates it signs
    http_port: int
    tls_port: int


@pytest.fixture
def pebble(tmp_path: Path) -> Iterator[Pebble]:
    require_tool("pebble")
    require_tool("pebble-challtestsrv")
    env = {**os.environ, "TLSGATE_STATE": str(tmp_path / "state")}
    tlsgate = [sys.executable, "-m", "tlsgate"]
    for args in (
        ["ca", "init"],
        ["ca", "export-root", "--out", str(tmp_path / "root.pem")],
        ["ca", "issue", "localhost", "127.0.0.1", "--out", str(tmp_path / "pc")],
    ):
        subprocess.run([*tlsgate, *args], env=env, check=True, capture_output=True, timeout=60)
    procs: list[subprocess.Popen[bytes]] = []
    dns_port, port, mgmt, http_port, tls_port = (free_port() for _ in range(5))
    try:
        log = tmp_path / "challtestsrv.log"
        with log.open("wb") as out:
            procs.append(subprocess.Popen(
                ["pebble-challtestsrv", "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
                 "-dns01", f"127.0.0.1:{dns_port}", "-http01", "", "-https01", "",
                 "-tlsalpn01", "", "-management", f"127.0.0.1:{free_port()}"],
                stdout=out, stderr=subprocess.STDOUT,
            ))  # fmt: skip
        wait_port(dns_port, procs[-1], log)
        config = {
            "pebble": {
                "listenAddress": f"127.0.0.1:{port}",
                "managementListenAddress": f"127.0.0.1:{mgmt}",
                "certificate": str(tmp_path / "pc" / "fullchain.pem"),
                "privateKey": str(tmp_path / "pc" / "key.pem"),
                "httpPort": http_port,
                "tlsPort": tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": False,
            }
        }
        (tmp_path / "pebble.json").write_text(json.dumps(config))
        log = tmp_path / "pebble.log"
        with log.open("wb") as out:
            procs.append(subprocess.Popen(
                ["pebble", "-config", str(tmp_path / "pebble.json"),
                 "-dnsserver", f"127.0.0.1:{dns_port}"],
                stdout=out, stderr=subprocess.STDOUT,
                env={**os.environ, "PEBBLE_VA_NOSLEEP": "1"},
            ))  # fmt: skip
        wait_port(port, procs[-1], log)
        yield Pebble(
            f"https://localhost:{port}/dir",
            tmp_path / "root.pem",
            f"https://localhost:{mgmt}/roots/0",
            http_port,
            tls_port,
        )
    finally:
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class TlsAlpn01:
    """Presents the RFC 8737 certificate to connections that offer acme-tls/1."""

    challenge_type = "tls-alpn-01"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.context: ssl.SSLContext | None = None

    async def present(self, identifier: str, token: str, key_authorization: str) -> None:
        cert, key = alpn_challenge_certificate(identifier, key_authorization)
        (self.directory / "c.pem").write_bytes(cert)
        (self.directory / "k.pem").write_bytes(key)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.directory / "c.pem", self.directory / "k.pem")
        ctx.set_alpn_protocols([ACME_TLS_ALPN])
        self.context = ctx

    async def cleanup(self, identifier: str, token: str) -> None:
        self.context = None


async def obtain(pebble: Pebble, tmp_path: Path, name: str, *, tls: bool) -> list[x509.Certificate]:
    trust = ssl.create_default_context(cafile=str(pebble.root))
    http01 = Http01Solver()
    runner = web.AppRunner(http01.route(web.Application()), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", pebble.http_port).start()
    alpn = TlsAlpn01(tmp_path)

    async def tls_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    servers: list[asyncio.base_events.Server] = []
    if tls:
        loop = asyncio.get_running_loop()

        def factory() -> asyncio.Protocol:
            return asyncio.StreamReaderProtocol(asyncio.StreamReader(), tls_answer)

        async def start_tls_listener() -> None:
            assert alpn.context is not None
            servers.append(
                await loop.create_server(factory, "127.0.0.1", pebble.tls_port, ssl=alpn.context)
            )

        original_present = alpn.present

        async def present(identifier: str, token: str, key_authorization: str) -> None:
            await original_present(identifier, token, key_authorization)
            await start_tls_listener()

        alpn.present = present  # type: ignore[method-assign]
    solvers = {"tls-alpn-01": alpn} if tls else {"http-01": http01}
    try:
        key = ec.generate_private_key(ec.SECP256R1())
        async with AcmeClient(
            pebble.directory,
            JWKEC(key=ec.generate_private_key(ec.SECP256R1())),
            ssl_context=trust,
            poll_interval=0.2,
            timeout=60,
        ) as client:
            chain = await client.obtain([name], key, solvers)
            async with client.session.get(pebble.roots_url) as response:
                root = x509.load_pem_x509_certificate(await response.read())
        certs = x509.load_pem_x509_certificates(chain)
        verify_chain(certs[0], certs[1:], [root], hostname=name, now=datetime.now(UTC))
        return certs
    finally:
        for server in servers:
            server.close()
            await server.wait_closed()
        await runner.cleanup()


@pytest.mark.parametrize("tls", [False, True], ids=["http-01", "tls-alpn-01"])
def test_client_obtains_from_pebble(pebble: Pebble, tmp_path: Path, tls: bool) -> None:
    certs = run(obtain(pebble, tmp_path, f"{'tls' if tls else 'http'}.example.test", tls=tls))
    san = certs[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [f"{'tls' if tls else 'http'}.example.test"]

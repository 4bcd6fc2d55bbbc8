"""The ACME client against Debian's pebble: a CA server no one here wrote (see pebble.py)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from josepy.jwk import JWKEC

from tlsgate.acme.client.session import AcmeClient
from tlsgate.acme.client.solvers import Http01Solver
from tlsgate.acme.server.validation import ACME_TLS_ALPN, alpn_challenge_certificate
from tlsgate.pki.chain import verify_chain

from .pebble import Pebble
from .server.test_server import run

pytestmark = pytest.mark.interop


@pytest.fixture
def pebble(tmp_path: Path) -> Iterator[Pebble]:
    with Pebble(tmp_path) as ca:
        yield ca


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

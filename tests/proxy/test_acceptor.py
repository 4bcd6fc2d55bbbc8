"""The peeking TLS listener (tlsgate.proxy.acceptor) with real OpenSSL clients on loopback.

A client offering ``acme-tls/1`` gets the context ``choose`` picks for it; everyone else gets
the normal one, whole handshake and request; slow, split, silent and junk clients neither hang
the listener nor reach the protocol.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path

from tests.conftest import require_tool
from tlsgate.acme.tls_alpn import (
    ACME_TLS_ALPN,
    alpn_challenge_certificate,
    challenge_client_context,
    check_challenge_certificate,
)
from tlsgate.ca import CertificateAuthority
from tlsgate.pki.keys import private_key_pem
from tlsgate.pki.names import parse_identities
from tlsgate.proxy.acceptor import ChallengeProtocol, HelloAcceptor
from tlsgate.tls.clienthello import ClientHello
from tlsgate.tls.context import load_chain_into, new_server_context

KEY_AUTHZ = "token.thumbprint"


OPEN: list[asyncio.BaseTransport] = []  # server-side connections, closed after each test


class Challenge(ChallengeProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        OPEN.append(transport)


class Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        OPEN.append(transport)

    def data_received(self, data: bytes) -> None:
        self.transport.write(b"echo:" + data)  # type: ignore[attr-defined]


def run_listener(
    ca: CertificateAuthority,
    now: datetime,
    body: Callable[[int, list[ClientHello | None]], Awaitable[None]],
    handshake_timeout: float = 5,
) -> list[ClientHello | None]:
    issued = ca.issue(parse_identities(["a.example.test"]), now=now)
    assert issued.private_key is not None
    normal = new_server_context()
    load_chain_into(normal, issued.fullchain_pem, private_key_pem(issued.private_key))
    cert_pem, key_pem = alpn_challenge_certificate("a.example.test", KEY_AUTHZ)
    challenge = new_server_context(alpn=(ACME_TLS_ALPN,))
    load_chain_into(challenge, cert_pem, key_pem)
    seen: list[ClientHello | None] = []

    def choose(
        hello: ClientHello | None,
    ) -> tuple[ssl.SSLContext, Callable[[], asyncio.BaseProtocol]]:
        seen.append(hello)
        if hello is not None and ACME_TLS_ALPN in hello.alpn:
            return challenge, ChallengeProtocol
        return normal, Echo

    async def main() -> None:
        acceptor = await HelloAcceptor.listen(
            "127.0.0.1", 0, choose, handshake_timeout=handshake_timeout
        )
        try:
            await body(acceptor.sock.getsockname()[1], seen)
        finally:
            acceptor.close()
            for transport in OPEN:
                transport.close()
            OPEN.clear()
            await asyncio.sleep(0.05)

    asyncio.run(main())
    return seen


def trusting(ca: CertificateAuthority) -> ssl.SSLContext:
    from tlsgate.pki.pem import certificate_pem

    return ssl.create_default_context(cadata=certificate_pem(ca.root).decode())


def test_normal_clients_get_the_site_and_acme_tls_gets_the_challenge(
    ca: CertificateAuthority, now: datetime
) -> None:
    async def body(port: int, seen: list[ClientHello | None]) -> None:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=trusting(ca), server_hostname="a.example.test"
        )
        writer.write(b"hello")
        assert await reader.readexactly(10) == b"echo:hello"
        writer.close()
        await writer.wait_closed()
        # The validator's side: acme-tls/1, whatever certificate comes (it checks it itself).
        probe = challenge_client_context()
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=probe, server_hostname="a.example.test"
        )
        tls = writer.get_extra_info("ssl_object")
        assert tls.selected_alpn_protocol() == ACME_TLS_ALPN
        der = tls.getpeercert(binary_form=True)
        check_challenge_certificate(der, "a.example.test", KEY_AUTHZ)
        writer.write(b"GET / HTTP/1.1\r\n\r\n")  # RFC 8737 forbids it: the responder hangs up
        assert await reader.read() == b""
        writer.close()

    seen = run_listener(ca, now, body)
    assert [h.alpn if h else None for h in seen] == [(), (ACME_TLS_ALPN,)]
    assert all(h is not None and h.server_name == "a.example.test" for h in seen)


def test_a_client_hello_split_across_segments_is_waited_for(
    ca: CertificateAuthority, now: datetime
) -> None:
    async def body(port: int, seen: list[ClientHello | None]) -> None:
        loop = asyncio.get_running_loop()
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = trusting(ca).wrap_bio(incoming, outgoing, server_hostname="a.example.test")
        try:
            tls.do_handshake()
        except ssl.SSLWantReadError:
            pass
        hello = outgoing.read()
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setblocking(False)
        await loop.sock_sendall(sock, hello[:7])  # not even a whole record header + length
        await asyncio.sleep(0.2)
        assert seen == []  # still waiting, not guessing
        await loop.sock_sendall(sock, hello[7:])
        while True:  # finish the handshake over the socket
            data = await loop.sock_recv(sock, 65536)
            assert data, "closed during the handshake"
            incoming.write(data)
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                if out := outgoing.read():
                    await loop.sock_sendall(sock, out)
        if out := outgoing.read():
            await loop.sock_sendall(sock, out)
        sock.close()

    seen = run_listener(ca, now, body)
    assert len(seen) == 1 and seen[0] is not None and seen[0].server_name == "a.example.test"


def test_silent_and_junk_clients_are_dropped(ca: CertificateAuthority, now: datetime) -> None:
    async def body(port: int, seen: list[ClientHello | None]) -> None:
        loop = asyncio.get_running_loop()
        silent = socket.create_connection(("127.0.0.1", port))
        silent.setblocking(False)
        junk = socket.create_connection(("127.0.0.1", port))
        junk.setblocking(False)
        await loop.sock_sendall(junk, b"GET / HTTP/1.1\r\nHost: a.example.test\r\n\r\n")
        # Junk goes to OpenSSL (which refuses it); silence is closed at the handshake timeout.
        async with asyncio.timeout(5):
            assert await loop.sock_recv(silent, 100) == b""
        silent.close()
        junk.close()
        assert seen == [ClientHello(None, ())]

    run_listener(ca, now, body, handshake_timeout=0.5)


def test_openssl_s_client_sees_the_challenge_certificate(
    ca: CertificateAuthority, now: datetime, tmp_path: Path
) -> None:
    openssl = require_tool("openssl")

    async def body(port: int, seen: list[ClientHello | None]) -> None:
        proc = await asyncio.create_subprocess_exec(
            openssl, "s_client", "-connect", f"127.0.0.1:{port}",
            "-servername", "a.example.test", "-alpn", ACME_TLS_ALPN,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(proc.communicate(), 20)
        text = out.decode(errors="replace")
        assert f"ALPN protocol: {ACME_TLS_ALPN}" in text, text
        assert "subject=" in text and "a.example.test" not in text.split("subject=")[1][:5]

    run_listener(ca, now, body)

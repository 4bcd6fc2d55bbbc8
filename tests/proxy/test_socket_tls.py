"""TLS driven on the socket by the compiled data plane (tlsgate.proxy.socket_tls), against real
OpenSSL clients on loopback, beside its twin, the event loop's TLS.

The same protocols run on both transports: echo, a write far larger than the socket takes
(flow control: ``pause_writing`` and ``resume_writing`` around the high and low marks), reading
paused and resumed, ``close()`` after a large write (everything arrives, then close_notify),
the client's end of stream. Then what only this path does: the SNI callback moving a handshake
to another site's context, a refused client hearing the alert, junk and silent clients closed
without reaching the protocol, the listener's epoll set living until its last connection.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import pytest
import uvloop
from cryptography import x509
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import require_tool
from tlsgate.ca import CertificateAuthority
from tlsgate.pki.keys import private_key_pem
from tlsgate.pki.names import parse_identities
from tlsgate.pki.pem import certificate_pem
from tlsgate.pki.profiles import LeafProfile
from tlsgate.proxy import socket_tls
from tlsgate.tls.clienthello import ClientHello
from tlsgate.tls.context import load_chain_into, new_server_context

#: The transports under test: OpenSSL on the socket, and its twin, the event loop's TLS. The
#: socket's cases have no pure twin to run: scripts/test.sh deselects them in the
#: TLSGATE_PURE=1 pass (marker compiled_only), where the loop's cases still run.
compiled_only = pytest.mark.compiled_only
P = TypeVar("P", bound="Recorder")
KINDS = [pytest.param("socket", marks=compiled_only), "loop"]


@pytest.fixture(autouse=True)
def _needs_the_socket_path(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("compiled_only") and not socket_tls.available():
        pytest.fail("OpenSSL on the socket is not available (TLSGATE_PURE or no extension)")


BIG = 8 * 1024 * 1024


def site_context(ca: CertificateAuthority, now: datetime, *names: str) -> ssl.SSLContext:
    issued = ca.issue(parse_identities(list(names)), now=now)
    assert issued.private_key is not None
    ctx = new_server_context(alpn=("http/1.1",))
    load_chain_into(ctx, issued.fullchain_pem, private_key_pem(issued.private_key))
    return ctx


def client_context(ca: CertificateAuthority) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cadata=certificate_pem(ca.root).decode())
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def keeping(cls: Callable[[], P]) -> tuple[list[P], Callable[[], P]]:
    """A protocol factory for the listener, and the list of every protocol it made."""
    made: list[P] = []

    def factory() -> P:
        made.append(cls())
        return made[-1]

    return made, factory


async def tls_client(
    ca: CertificateAuthority, port: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A client of a.example.test that trusts only ``ca``, on the listener at ``port``."""
    return await asyncio.open_connection(
        "127.0.0.1", port, ssl=client_context(ca), server_hostname="a.example.test"
    )


@asynccontextmanager
async def listening(
    kind: str,
    ctx: ssl.SSLContext,
    factory: Callable[[], asyncio.BaseProtocol],
    lookup: socket_tls.Lookup = lambda name: None,
    handshake_timeout: float = 5.0,
) -> AsyncIterator[int]:
    """A TLS listener on 127.0.0.1 of the ``kind`` asked for; yields its port."""
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    if kind == "socket":
        socket_tls.install(ctx)
        acceptor = socket_tls.listen(
            sock, ctx, factory, lookup, handshake_timeout=handshake_timeout
        )
        try:
            yield port
        finally:
            acceptor.close()
    else:
        server = await asyncio.get_running_loop().create_server(
            factory, sock=sock, ssl=ctx, ssl_handshake_timeout=handshake_timeout
        )
        try:
            yield port
        finally:
            server.close()


def run(body: Callable[[], Awaitable[None]]) -> None:
    """On uvloop, as serve runs; every test bounded in time."""

    async def bounded() -> None:
        await asyncio.wait_for(body(), 60)

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(bounded())


class Recorder(asyncio.Protocol):
    """Keeps what happens to it, in order."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.received = bytearray()
        self.transport: asyncio.Transport | None = None
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport) or hasattr(transport, "write")
        self.transport = transport  # type: ignore[assignment]
        self.events.append("made")

    def data_received(self, data: bytes) -> None:
        self.received += data

    def eof_received(self) -> bool | None:
        self.events.append("eof")
        return None

    def pause_writing(self) -> None:
        self.events.append("pause")

    def resume_writing(self) -> None:
        self.events.append("resume")

    def connection_lost(self, exc: Exception | None) -> None:
        self.events.append("lost")
        if not self.lost.done():
            self.lost.set_result(exc)


class Echo(Recorder):
    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        assert self.transport is not None
        self.transport.write(b"echo:" + data)


@pytest.mark.parametrize("kind", KINDS)
def test_echo_and_what_the_connection_says(
    kind: str, ca: CertificateAuthority, now: datetime
) -> None:
    ctx = site_context(ca, now, "a.example.test")
    made, factory = keeping(Echo)

    async def body() -> None:
        async with listening(kind, ctx, factory) as port:
            reader, writer = await tls_client(ca, port)
            writer.write(b"hello")
            assert await reader.readexactly(10) == b"echo:hello"
            local = writer.get_extra_info("sockname")
            transport = made[0].transport
            assert transport is not None
            assert transport.get_extra_info("peername")[:2] == local[:2]
            assert transport.get_extra_info("sockname")[:2] == ("127.0.0.1", port)
            assert transport.get_extra_info("sslcontext") is ctx
            tls = transport.get_extra_info("ssl_object")
            writer.close()
            await writer.wait_closed()
            assert await asyncio.wait_for(made[0].lost, 10) is None
        (proto,) = made
        assert proto.events == ["made", "eof", "lost"]
        assert tls.version() == "TLSv1.3"
        assert tls.selected_alpn_protocol() == "http/1.1"
        assert tls.cipher()[1] == "TLSv1.3"
        assert tls.getpeercert(binary_form=True) is None  # no client certificate asked for

    run(body)


@pytest.mark.parametrize("kind", KINDS)
def test_a_write_larger_than_the_socket_takes(
    kind: str, ca: CertificateAuthority, now: datetime
) -> None:
    """8 MiB written at once to a client that reads late: the protocol is paused above the
    high mark and resumed below the low one, and every byte arrives, in order."""
    ctx = site_context(ca, now, "a.example.test")
    payload = os.urandom(BIG)
    made, factory = keeping(Recorder)

    async def body() -> None:
        async with listening(kind, ctx, factory) as port:
            reader, writer = await tls_client(ca, port)
            writer.write(b"go")
            await writer.drain()
            while not made or made[0].transport is None:
                await asyncio.sleep(0.01)
            transport = made[0].transport
            for offset in range(0, BIG, 1024 * 1024):
                transport.write(payload[offset : offset + 1024 * 1024])
            assert "pause" in made[0].events
            assert transport.get_write_buffer_size() > 0
            await asyncio.sleep(0.2)  # the client reads late: nothing is lost meanwhile
            got = await reader.readexactly(BIG)
            assert hashlib.sha256(got).digest() == hashlib.sha256(payload).digest()
            for _ in range(100):
                if transport.get_write_buffer_size() == 0:
                    break
                await asyncio.sleep(0.01)
            assert transport.get_write_buffer_size() == 0
            assert made[0].events[-1] == "resume"
            writer.close()
            await writer.wait_closed()

    run(body)


@pytest.mark.parametrize("kind", KINDS)
def test_close_sends_everything_then_close_notify(
    kind: str, ca: CertificateAuthority, now: datetime
) -> None:
    ctx = site_context(ca, now, "a.example.test")
    payload = os.urandom(3 * 1024 * 1024 + 17)

    class WriteAndClose(Recorder):
        def data_received(self, data: bytes) -> None:
            assert self.transport is not None
            self.transport.write(payload)
            self.transport.close()
            self.transport.write(b"after close: dropped")

    def client(port: int) -> bytes:
        # A blocking client: uvloop's own client-side TLS drops what it has not handed to the
        # application yet when the FIN comes right after close_notify (nginx's order, and ours).
        with socket.create_connection(("127.0.0.1", port), timeout=20) as raw:
            with client_context(ca).wrap_socket(raw, server_hostname="a.example.test") as tls:
                tls.sendall(b"go")
                got = bytearray()
                while chunk := tls.recv(65536):  # to the end: close_notify, not a reset
                    got += chunk
                return bytes(got)

    async def body() -> None:
        async with listening(kind, ctx, WriteAndClose) as port:
            got = await asyncio.get_running_loop().run_in_executor(None, client, port)
            assert len(got) == len(payload)
            assert got == payload

    run(body)


@pytest.mark.parametrize("kind", KINDS)
def test_reading_paused_and_resumed(kind: str, ca: CertificateAuthority, now: datetime) -> None:
    """While reading is paused the protocol gets nothing; after resume, everything, in order
    (records already decrypted or still in OpenSSL included)."""
    ctx = site_context(ca, now, "a.example.test")
    payload = os.urandom(2 * 1024 * 1024)

    class Pausing(Recorder):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            transport.pause_reading()  # type: ignore[attr-defined]

    made, factory = keeping(Pausing)

    async def body() -> None:
        async with listening(kind, ctx, factory) as port:
            _reader, writer = await tls_client(ca, port)
            writer.write(payload)
            await asyncio.sleep(0.3)
            proto = made[0]
            assert proto.received == b""
            assert proto.transport is not None
            assert not proto.transport.is_reading()
            proto.transport.resume_reading()
            for _ in range(500):
                if len(proto.received) == len(payload):
                    break
                await asyncio.sleep(0.01)
            assert bytes(proto.received) == payload
            writer.close()

    run(body)


@compiled_only
def test_sni_moves_the_handshake_to_the_named_site(ca: CertificateAuthority, now: datetime) -> None:
    """The certificate a client gets is its site's; an unknown name and no name get the
    listener's default; the name is what ``tlsgate_sni`` says."""
    default = site_context(ca, now, "a.example.test")
    other = site_context(ca, now, "b.example.test")
    socket_tls.install(other)
    made, factory = keeping(Echo)
    asked: list[str] = []

    def lookup(name: str) -> ssl.SSLContext | None:
        asked.append(name)
        return other if name == "b.example.test" else None

    async def leaf(port: int, name: str | None) -> x509.Certificate:
        client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        client.load_verify_locations(cadata=certificate_pem(ca.root).decode())
        client.check_hostname = name is not None
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client, server_hostname=name or ""
        )
        writer.write(b"x")
        await reader.readexactly(6)
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        writer.close()
        return x509.load_der_x509_certificate(der)

    def names(cert: x509.Certificate) -> list[str]:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        return san.get_values_for_type(x509.DNSName)

    async def body() -> None:
        async with listening("socket", default, factory, lookup) as port:
            assert names(await leaf(port, "b.example.test")) == ["b.example.test"]
            assert names(await leaf(port, "a.example.test")) == ["a.example.test"]
            with pytest.raises(ssl.SSLCertVerificationError):
                await leaf(port, "c.example.test")  # the default certificate: wrong host
            assert names(await leaf(port, None)) == ["a.example.test"]
            await asyncio.sleep(0.05)
        assert asked == ["b.example.test", "a.example.test", "c.example.test"]
        sni = [p.transport.get_extra_info("ssl_object").tlsgate_sni for p in made if p.transport]
        assert sni == ["b.example.test", "a.example.test", None]  # c's handshake failed
        assert made[0].transport is not None
        assert made[0].transport.get_extra_info("sslcontext") is other

    run(body)


@compiled_only
def test_a_refused_client_hears_the_alert(
    ca: CertificateAuthority, now: datetime, tmp_path: Path
) -> None:
    """A context that requires a client certificate: a client without one gets OpenSSL's
    "certificate required" alert (the event loop's TLS drops it), and the protocol nothing."""
    openssl = require_tool("openssl")
    ctx = site_context(ca, now, "a.example.test")
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=certificate_pem(ca.root).decode())
    made, factory = keeping(Recorder)
    root = tmp_path / "root.pem"
    root.write_bytes(certificate_pem(ca.root))

    async def body() -> None:
        async with listening("socket", ctx, factory) as port:
            proc = await asyncio.create_subprocess_exec(
                openssl, "s_client", "-connect", f"127.0.0.1:{port}", "-servername",
                "a.example.test", "-CAfile", str(root), "-tls1_3", "-ign_eof",
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            )  # fmt: skip
            out, _ = await asyncio.wait_for(proc.communicate(b"GET / HTTP/1.0\r\n\r\n"), 20)
            assert b"alert certificate required" in out, out.decode(errors="replace")
            await asyncio.sleep(0.05)
        assert [p.events for p in made] == [[]]  # made, never connected

    run(body)


@compiled_only
def test_the_site_is_chosen_from_the_client_hello(
    ca: CertificateAuthority, now: datetime, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """listen_choosing: the chooser sees the hello's server name and ALPN offer before the
    handshake goes on; the chosen context's client-certificate policy applies (a client
    without a certificate hears "certificate required" and is logged as refused, one with a
    certificate gets through), and the chosen factory makes the protocol."""
    openssl = require_tool("openssl")
    front = site_context(ca, now, "a.example.test")
    guarded = site_context(ca, now, "m.example.test")
    guarded.verify_mode = ssl.CERT_REQUIRED
    guarded.load_verify_locations(cadata=certificate_pem(ca.root).decode())
    socket_tls.install(front)
    socket_tls.install(guarded)
    plain, plain_factory = keeping(Recorder)
    mtls, mtls_factory = keeping(Recorder)
    hellos: list[tuple[str | None, tuple[str, ...]]] = []

    def choose(hello: ClientHello) -> tuple[ssl.SSLContext, Callable[[], asyncio.BaseProtocol]]:
        hellos.append((hello.server_name, hello.alpn))
        if hello.server_name == "m.example.test":
            return guarded, mtls_factory
        return front, plain_factory

    client_cert = ca.issue(
        parse_identities(["client.example.test"]),
        now=now,
        profile=LeafProfile(server=False, client=True),
    )
    assert client_cert.private_key is not None
    cert_file, key_file = tmp_path / "client.pem", tmp_path / "client.key"
    cert_file.write_bytes(client_cert.fullchain_pem)
    key_file.write_bytes(private_key_pem(client_cert.private_key))
    root = tmp_path / "root.pem"
    root.write_bytes(certificate_pem(ca.root))

    async def s_client(port: int, *extra: str) -> bytes:
        proc = await asyncio.create_subprocess_exec(
            openssl, "s_client", "-connect", f"127.0.0.1:{port}", "-servername",
            "m.example.test", "-CAfile", str(root), "-tls1_3", *extra,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(proc.communicate(b"hello\n"), 20)
        return out

    async def body() -> None:
        sock = socket.create_server(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        acceptor = socket_tls.listen_choosing(sock, front, choose, handshake_timeout=5.0)
        try:
            refused = await s_client(port, "-alpn", "h2,http/1.1", "-ign_eof")
            assert b"alert certificate required" in refused, refused.decode(errors="replace")
            admitted = await s_client(
                port, "-cert", str(cert_file), "-cert_chain", str(cert_file), "-key", str(key_file)
            )
            assert b"Verify return code: 0 (ok)" in admitted, admitted.decode(errors="replace")
            _reader, writer = await tls_client(ca, port)  # a.example.test: no certificate
            writer.write(b"plain")
            await writer.drain()
            writer.close()
            for _ in range(100):
                await asyncio.sleep(0.02)
                if len(mtls) == 2 and "lost" in mtls[1].events and plain:
                    break
        finally:
            acceptor.close()
        assert hellos[0] == ("m.example.test", ("h2", "http/1.1"))
        assert hellos[1] == ("m.example.test", ())
        assert hellos[2] == ("a.example.test", ("http/1.1",))
        assert mtls[0].events == []  # made when chosen, never connected
        assert mtls[1].events[0] == "made" and bytes(mtls[1].received) == b"hello\n"
        assert plain[0].events[0] == "made"
        assert [r.getMessage() for r in caplog.records if "refused" in r.getMessage()] == [
            "client 127.0.0.1 refused in the TLS handshake: peer_did_not_return_a_certificate"
        ]

    with caplog.at_level(logging.WARNING, logger="tlsgate.serve"):
        run(body)


@compiled_only
def test_silent_and_junk_clients_never_reach_the_protocol(
    ca: CertificateAuthority, now: datetime
) -> None:
    ctx = site_context(ca, now, "a.example.test")
    made, factory = keeping(Recorder)

    async def body() -> None:
        async with listening("socket", ctx, factory, handshake_timeout=0.3) as port:
            silent_r, silent_w = await asyncio.open_connection("127.0.0.1", port)
            junk_r, junk_w = await asyncio.open_connection("127.0.0.1", port)
            junk_w.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            assert await asyncio.wait_for(junk_r.read(), 5) != b"GET"  # an alert, then EOF
            assert await asyncio.wait_for(silent_r.read(), 5) == b""  # the handshake timeout
            silent_w.close()
            junk_w.close()
            # The listener still serves.
            _reader, writer = await tls_client(ca, port)
            writer.close()
        assert all(p.events == [] for p in made[:2])

    run(body)


def epoll_sets() -> int:
    """How many epoll descriptors this process has open (the loop's own among them)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:[eventpoll]"
        except OSError:
            continue  # the listing's own descriptor, closed already
    return count


@compiled_only
def test_one_epoll_set_per_listener_outlives_it_until_its_last_connection(
    ca: CertificateAuthority, now: datetime
) -> None:
    """The listener's connections share one epoll set, read by one loop callback; closing the
    listener leaves the connections it accepted working, and the set goes with the last one
    (no descriptor left behind)."""
    ctx = site_context(ca, now, "a.example.test")
    made, factory = keeping(Echo)

    async def body() -> None:
        before = epoll_sets()
        clients = []
        async with listening("socket", ctx, factory) as port:
            assert epoll_sets() == before + 1
            for _ in range(3):
                clients.append(await tls_client(ca, port))
        # The listener is closed; its connections go on, on the same set.
        assert epoll_sets() == before + 1
        for i, (reader, writer) in enumerate(clients):
            writer.write(b"%d" % i)
            assert await reader.readexactly(6) == b"echo:%d" % i
        for _reader, writer in clients[:2]:
            writer.close()
            await writer.wait_closed()
        await asyncio.wait_for(asyncio.gather(made[0].lost, made[1].lost), 10)
        assert epoll_sets() == before + 1  # one connection left
        reader, writer = clients[2]
        writer.write(b"last")
        assert await reader.readexactly(9) == b"echo:last"
        writer.close()
        await writer.wait_closed()
        await asyncio.wait_for(made[2].lost, 10)
        assert epoll_sets() == before
        assert [p.events for p in made] == [["made", "eof", "lost"]] * 3

    run(body)


@compiled_only
def test_handshake_deadlines_in_accept_order(ca: CertificateAuthority, now: datetime) -> None:
    """One timer per listener: silent clients accepted one after another each get their full
    handshake timeout and are closed in turn; a client that finished its handshake between
    them leaves the list and outlives them all."""
    ctx = site_context(ca, now, "a.example.test")
    made, factory = keeping(Recorder)
    timeout = 0.4

    async def body() -> None:
        loop = asyncio.get_running_loop()
        async with listening("socket", ctx, factory, handshake_timeout=timeout) as port:
            silent = []
            opened = []
            for _ in range(3):
                silent.append(await asyncio.open_connection("127.0.0.1", port))
                opened.append(loop.time())
                await asyncio.sleep(0.1)
            _reader, writer = await tls_client(ca, port)  # in the middle of the list
            for _ in range(2):
                silent.append(await asyncio.open_connection("127.0.0.1", port))
                opened.append(loop.time())
                await asyncio.sleep(0.1)
            for (silent_r, silent_w), start in zip(silent, opened, strict=True):
                assert await asyncio.wait_for(silent_r.read(), 5) == b""
                waited = loop.time() - start
                assert waited >= timeout - 0.05, waited  # never before its own deadline
                silent_w.close()
            writer.write(b"still here")
            await writer.drain()
            connected = [p for p in made if p.events]  # (the silent ones never connected)
            for _ in range(100):
                if connected and connected[0].received:
                    break
                await asyncio.sleep(0.01)
            writer.close()
            await asyncio.wait_for(writer.wait_closed(), 10)
            assert len(connected) == 1 and bytes(connected[0].received) == b"still here"

    run(body)


@compiled_only
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(chunks=st.lists(st.binary(min_size=1, max_size=2048), min_size=1, max_size=4))
def test_fuzzed_bytes_before_the_handshake(
    chunks: list[bytes], ca: CertificateAuthority, now: datetime
) -> None:
    """Whatever a client sends instead of a ClientHello (TLS-looking or not): closed, no crash,
    and the listener serves the next client."""
    ctx = FUZZ_CONTEXTS.get(id(ca)) or FUZZ_CONTEXTS.setdefault(
        id(ca), site_context(ca, now, "a.example.test")
    )

    async def body() -> None:
        async with listening("socket", ctx, Recorder, handshake_timeout=1) as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            for chunk in chunks:
                writer.write(chunk)
                await asyncio.sleep(0)
            try:
                await asyncio.wait_for(reader.read(), 5)
            except ConnectionResetError:
                pass
            writer.close()
            _, good = await tls_client(ca, port)
            good.close()

    run(body)


#: One context per CA across hypothesis' examples (issuing a certificate per example is slow).
FUZZ_CONTEXTS: dict[int, ssl.SSLContext] = {}


def test_what_the_kernel_offers_for_ktls_is_reported() -> None:
    """serve's start-up line says whether the kernel has kTLS (CONFIG_TLS): found by asking a
    loopback TCP socket for the "tls" upper-layer protocol, as OpenSSL's kTLS would."""
    report = socket_tls.kernel_tls()
    assert report.startswith("kTLS: ")
    if Path("/sys/module/tls").exists():  # built in or loaded
        assert "the kernel has it" in report
    elif not Path("/lib/modules").exists():  # not loaded, and no module to load
        assert "not in this kernel" in report

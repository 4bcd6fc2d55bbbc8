"""Real TLS handshakes in memory (Python ``ssl`` over memory BIOs) against tlsgate's server
contexts, shared by the tests of session tickets, the session cache and the TLS profile."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A self-signed P-256 certificate for localhost (its own trust anchor): cert and key paths."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class Exchange:
    """Both ends of a TLS connection in memory, and what each end writes to the other."""

    def __init__(
        self,
        server_ctx: ssl.SSLContext,
        client_ctx: ssl.SSLContext,
        session: ssl.SSLSession | None = None,
    ) -> None:
        self.c_in, self.c_out, self.s_in, self.s_out = (ssl.MemoryBIO() for _ in range(4))
        self.client = client_ctx.wrap_bio(
            self.c_in, self.c_out, server_hostname="localhost", session=session
        )
        self.server = server_ctx.wrap_bio(self.s_in, self.s_out, server_side=True)

    def pump(self) -> None:
        self.s_in.write(self.c_out.read())
        self.c_in.write(self.s_out.read())

    def handshake(self) -> None:
        done = {"client": False, "server": False}
        for _ in range(10):
            for side, obj in (("client", self.client), ("server", self.server)):
                if not done[side]:
                    try:
                        obj.do_handshake()
                        done[side] = True
                    except ssl.SSLWantReadError:
                        pass
                self.pump()
            if all(done.values()):
                break
        assert all(done.values()), "handshake did not complete"
        # One byte from the server, so a TLS 1.3 client has processed the tickets sent after
        # the handshake.
        self.server.write(b"!")
        self.pump()
        assert self.client.read(1) == b"!"


def connect(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, session: ssl.SSLSession | None = None
) -> ssl.SSLObject:
    """A full TLS exchange in memory; returns the client end. The server end is dropped without
    a close_notify, as when the client closes first."""
    exchange = Exchange(server_ctx, client_ctx, session)
    exchange.handshake()
    return exchange.client


def ctypes_and_compiled(
    flag: list[bool], ids: tuple[str, str]
) -> Callable[[pytest.FixtureRequest], Iterator[None]]:
    """An autouse fixture running every test of a module twice: with ``flag[0]`` False (the
    ctypes callbacks of tls/, the pure twin) and True (the compiled ones serve puts in their
    place; marked ``compiled_only``). The module's helpers read ``flag[0]``."""

    @pytest.fixture(
        params=[False, pytest.param(True, marks=pytest.mark.compiled_only)],
        ids=list(ids),
        autouse=True,
    )
    def variant(request: pytest.FixtureRequest) -> Iterator[None]:
        flag[0] = request.param
        yield
        flag[0] = False

    return variant

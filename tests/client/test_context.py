"""Client contexts against a real TLS server that requires client certificates.

What the server sees (the client's SPIFFE ID and serial) shows which certificate a connection
presented; renewals are made the way the renewal loop or another process makes them, and the
same ``SSLContext`` must present the new certificate on its next connection.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tlsgate.ca import CertificateAuthority
from tlsgate.client import (
    ReloadingIdentity,
    ServerIdentityError,
    async_httpx_transport,
    httpx_transport,
    ssl_context,
)
from tlsgate.client.context import new_client_context
from tlsgate.client.identity import current_certificate, managed_name
from tlsgate.errors import ConfigError, InvalidIdentity
from tlsgate.pki.keys import generate_key, private_key_pem
from tlsgate.pki.pem import certificate_pem
from tlsgate.renewal.issuers import InternalIssuer
from tlsgate.store.base import ManagedCertificate
from tlsgate.store.sqlite import SQLiteStore

from .helpers import tls_server

ID = "spiffe://example.org/ns/a/sa/client"
SERVER_ID = "spiffe://example.org/ns/b/sa/server"


def get(ctx: ssl.SSLContext, port: int, name: str = "localhost") -> str:
    """One request over a new connection; the server answers with who we were."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname=name) as conn,
    ):
        conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while not data.endswith(b"\n") or b"\r\n\r\n" not in data:
            piece = conn.recv(4096)
            assert piece, data
            data += piece
        return data.split(b"\r\n\r\n", 1)[1].decode()


def renew_elsewhere(store: SQLiteStore, identity: str) -> int:
    """What another process sharing the state (or the renewal loop) does: a new stored one."""
    issuer = InternalIssuer(store, lifetime=timedelta(hours=1), client=True)
    issued = issuer.issue_now((identity,), now=datetime.now(UTC))
    store.save_managed(
        ManagedCertificate(
            name=managed_name(identity),
            fullchain_pem=issued.fullchain_pem,
            key_pem=issued.key_pem,
            not_after=issued.leaf.not_valid_after_utc,
            issuer=issuer.name,
            updated_at=datetime.now(UTC),
        )
    )
    return issued.leaf.serial_number


def issue_past(store: SQLiteStore, identity: str) -> int:
    """Store a 1-minute certificate issued 40 s ago: 20 s left, past its renewal point (half of
    the life under 10 days) but still presentable. Its serial. (Not-before is no longer
    backdated 5 minutes, which made every fresh 1-minute certificate due at once.)"""
    past = datetime.now(UTC) - timedelta(seconds=40)
    return current_certificate(store, identity, lifetime=timedelta(minutes=1), now=past).serial


def make_due(store: SQLiteStore, identity: str) -> None:
    """Backdate the stored certificate's arrival so that the renewal loop renews it at once."""
    record = store.load_managed(managed_name(identity))
    assert record is not None
    store.save_managed(replace(record, updated_at=datetime.now(UTC) - timedelta(minutes=10)))


def test_presents_the_identity_and_verifies_the_server(
    ca: CertificateAuthority, state_dir: Path
) -> None:
    with tls_server(ca, ["localhost"]) as server:
        ctx = ssl_context(state=state_dir, identity=ID)
        assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
        assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
        assert get(ctx, server.port).startswith(f"{ID} ")
        # The name is checked: the same server under another name is refused.
        with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
            get(ctx, server.port, name="other.internal")


def test_a_server_from_another_ca_is_refused(
    ca: CertificateAuthority, state_dir: Path, tmp_path: Path
) -> None:
    other = CertificateAuthority.init(SQLiteStore(tmp_path / "other"), now=datetime.now(UTC))
    with tls_server(other, ["localhost"]) as server:
        ctx = ssl_context(state=state_dir, identity=ID)
        with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"):
            get(ctx, server.port)
        # Trusting that CA's root instead (--ca) gets through the server check; that server
        # then refuses our certificate, which its CA did not issue.
        ctx = ssl_context(state=state_dir, identity=ID, trust=server.root)
        with pytest.raises((ssl.SSLError, OSError)):
            get(ctx, server.port)
    with pytest.raises(ConfigError, match="does not exist"):
        ssl_context(state=state_dir, identity=ID, trust=tmp_path / "missing.pem")


def test_the_server_spiffe_id_is_checked_instead_of_a_name(
    ca: CertificateAuthority, state_dir: Path
) -> None:
    with tls_server(ca, [SERVER_ID]) as server:
        good = ssl_context(state=state_dir, identity=ID, expect_spiffe=SERVER_ID)
        # An SVID names no host: the name connected to does not matter, the SPIFFE ID does.
        assert get(good, server.port, name="anything.internal").startswith(ID)
        wrong = ssl_context(
            state=state_dir, identity=ID, expect_spiffe="spiffe://example.org/ns/b/sa/other"
        )
        with pytest.raises(ServerIdentityError, match=f"the server is {SERVER_ID}"):
            get(wrong, server.port)
        assert isinstance(ServerIdentityError("x"), ssl.SSLCertVerificationError)

        async def through_asyncio(ctx: ssl.SSLContext) -> bytes:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", server.port, ssl=ctx, server_hostname="localhost"
            )
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            data = await reader.readuntil(b"\n\r\n")
            data += await reader.readline()
            writer.close()
            await writer.wait_closed()
            return data

        assert ID.encode() in asyncio.run(through_asyncio(good))
        with pytest.raises(ssl.SSLCertVerificationError, match="refusing to talk to it"):
            asyncio.run(through_asyncio(wrong))
    # A server with a DNS certificate has no SPIFFE ID to show.
    with tls_server(ca, ["localhost"]) as server:
        with pytest.raises(ServerIdentityError, match="has no SPIFFE ID"):
            get(good, server.port)


def test_every_context_checks_a_name_or_a_spiffe_id(ca: CertificateAuthority) -> None:
    root = certificate_pem(ca.root)
    by_name = new_client_context(trust_pem=root)
    assert by_name.check_hostname and by_name.expect_spiffe is None
    by_id = new_client_context(trust_pem=root, expect_spiffe=SERVER_ID)
    assert not by_id.check_hostname and by_id.expect_spiffe == SERVER_ID
    assert by_id.verify_mode == ssl.CERT_REQUIRED
    with pytest.raises(ConfigError):
        new_client_context()  # no trust at all: refused, never "trust anything"
    with pytest.raises(InvalidIdentity):
        new_client_context(trust_pem=root, expect_spiffe="https://example.org/x")


def test_a_renewal_goes_into_the_same_context(ca: CertificateAuthority, store: SQLiteStore) -> None:
    with tls_server(ca, ["localhost"]) as server, ReloadingIdentity(ID, store=store) as identity:
        ctx = identity.context
        first = identity.serial
        assert get(ctx, server.port) == f"{ID} {first:X}\n"
        assert not identity.refresh(poll=True)  # nothing newer yet
        # A connection opened before the renewal keeps its certificate...
        raw = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        old = ctx.wrap_socket(raw, server_hostname="localhost")
        renewed = renew_elsewhere(store, ID)
        assert identity.refresh(poll=True)
        assert identity.context is ctx and identity.serial == renewed and identity.generation == 2
        # ...new ones present the new one.
        assert get(ctx, server.port) == f"{ID} {renewed:X}\n"
        old.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert f"{first:X}".encode() in old.recv(4096)
        old.close()


def test_run_loads_what_the_renewal_loop_issues(
    ca: CertificateAuthority, store: SQLiteStore
) -> None:
    issued = issue_past(store, ID)
    with (
        tls_server(ca, ["localhost"]) as server,
        ReloadingIdentity(ID, store=store, lifetime=timedelta(minutes=1)) as identity,
    ):
        first = identity.serial
        assert first == issued
        make_due(store, ID)

        async def main() -> None:
            task = asyncio.create_task(identity.run())
            try:
                async with asyncio.timeout(20):
                    while identity.generation == 1:
                        await asyncio.sleep(0.05)
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

        asyncio.run(main())
        assert identity.serial != first
        assert get(identity.context, server.port) == f"{ID} {identity.serial:X}\n"


def test_httpx_transports_follow_renewals(ca: CertificateAuthority, state_dir: Path) -> None:
    """The sync transport renews in a thread and loads the new certificate before a request."""
    store = SQLiteStore(state_dir)
    try:  # a stored certificate whose renewal is due: the renewal thread replaces it at once
        first_serial = issue_past(store, ID)
        make_due(store, ID)
    finally:
        store.close()
    with tls_server(ca, ["localhost"]) as server:
        url = f"https://localhost:{server.port}/"
        transport = httpx_transport(identity=ID, state=state_dir, lifetime=timedelta(minutes=1))
        with httpx.Client(transport=transport, timeout=10) as client:
            deadline = time.monotonic() + 20
            # The renewal thread replaces it; the next request presents the new one.
            while (text := client.get(url, headers={"connection": "close"}).text) == (
                f"{ID} {first_serial:X}\n"
            ):
                assert time.monotonic() < deadline, "no renewal within 20 s"
                time.sleep(0.1)
            assert text == f"{ID} {transport.identity.serial:X}\n"
            assert transport.identity.generation > 1
        assert transport.identity._thread is None  # closing the client stopped the renewals

        async def async_client() -> str:
            t = async_httpx_transport(identity=ID, state=state_dir, renew=False)
            async with httpx.AsyncClient(transport=t, timeout=10) as client:
                return (await client.get(url)).text

        assert asyncio.run(async_client()).startswith(f"{ID} ")

        wrong = httpx_transport(identity=ID, state=state_dir, expect_spiffe=SERVER_ID, renew=False)
        with (
            httpx.Client(transport=wrong, timeout=10) as client,
            pytest.raises(httpx.ConnectError, match="has no SPIFFE ID"),
        ):
            client.get(url)


def test_a_stored_certificate_that_does_not_load_is_not_presented(
    ca: CertificateAuthority, store: SQLiteStore
) -> None:
    with tls_server(ca, ["localhost"]) as server, ReloadingIdentity(ID, store=store) as identity:
        first = identity.serial
        renew_elsewhere(store, ID)
        record = store.load_managed(managed_name(ID))
        assert record is not None
        store.save_managed(replace(record, key_pem=private_key_pem(generate_key())))
        assert not identity.refresh(poll=True)  # the key does not match: logged, not loaded
        assert identity.serial == first and identity.generation == 1
        assert get(identity.context, server.port) == f"{ID} {first:X}\n"

"""Session-ticket keys: derivation, and real handshakes (Python ``ssl`` over memory BIOs) against a
server context whose ticket callback picks them. A controllable clock crosses epochs. Every
handshake test runs twice: with tickets.py's ctypes callback, and with the compiled one that
serve puts in its place when the data plane is compiled (socket_tls.compile_ticket_keys)."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import ssl
from pathlib import Path

import pytest

from tests.tls.tls_helpers import connect, ctypes_and_compiled, self_signed
from tlsgate.proxy import socket_tls
from tlsgate.tls import libssl
from tlsgate.tls.context import new_server_context
from tlsgate.tls.tickets import TicketKeys, derive, disable_tickets, install

pytestmark = pytest.mark.skipif(
    not libssl.available() and os.environ.get("CI") != "true",
    reason="OpenSSL is not reachable through ctypes here",
)

TLS13 = ssl.TLSVersion.TLSv1_3
TLS12 = ssl.TLSVersion.TLSv1_2
ROTATION = 100.0


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def cert_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed(tmp_path_factory.mktemp("tickets"))


#: Whether server() puts the compiled callback in place of the ctypes one, as serve does.
COMPILED = [False]


_compiled = ctypes_and_compiled(COMPILED, ("ctypes", "compiled"))


def server(cert_files: tuple[Path, Path], keys: TicketKeys | None) -> ssl.SSLContext:
    ctx = new_server_context()
    ctx.load_cert_chain(*cert_files)
    if keys is not None:
        assert install(ctx, keys)
        if COMPILED[0]:
            assert socket_tls.compile_ticket_keys(ctx, keys)
    return ctx


def client(cert_files: tuple[Path, Path], version: ssl.TLSVersion) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(cert_files[0]))
    ctx.maximum_version = version
    return ctx


# -- key derivation --------------------------------------------------------------------------
def test_derivation_is_pinned() -> None:
    # Nodes running different tlsgate versions must agree: this vector must never change.
    key = derive(bytes(range(32)), 12345)
    assert key.name.hex() == "ad4007e685b161a3bed173e5792aa246"
    assert key.hmac_key.hex() == (
        "9832692da43aecc4707a1f78dc925ff224913996f0e74d7dbc520257c89bf050"
    )
    assert key.aes_key.hex() == "119a320961c3972d567ee99dd0185ec7187ba5f52244ec84356c6f221ac9be54"


def test_derivation_is_rfc5869_hkdf_sha256() -> None:
    # HKDF written out from RFC 5869 with the standard library, as a second implementation.
    secret, epoch = os.urandom(32), 424242
    prk = hmac.new(b"\0" * 32, secret, hashlib.sha256).digest()
    info = b"tlsgate session-ticket keys v1 epoch " + epoch.to_bytes(8, "big")
    okm, block = b"", b""
    for counter in range(1, 4):
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        okm += block
    key = derive(secret, epoch)
    assert key.name + key.hmac_key + key.aes_key == okm[:80]


def test_keys_differ_by_epoch_and_secret() -> None:
    a, b = os.urandom(32), os.urandom(32)
    keys = {derive(a, 1), derive(a, 2), derive(b, 1)}
    assert len({k.name for k in keys}) == 3
    assert len({k.aes_key for k in keys} | {k.hmac_key for k in keys}) == 6
    one = derive(a, 1)
    assert len({one.name, one.hmac_key[:16], one.aes_key[:16]}) == 3


def test_epochs_and_lookup_window() -> None:
    clock = Clock(10 * ROTATION)
    keys = TicketKeys(os.urandom(32), ROTATION, clock=clock)
    assert keys.epoch() == 10
    clock.now = 11 * ROTATION - 0.001
    assert keys.epoch() == 10
    clock.now = 11 * ROTATION
    assert keys.epoch() == 11
    found = keys.lookup(keys.key(11).name)
    assert found is not None and found == (keys.key(11), True)
    assert keys.lookup(keys.key(10).name) == (keys.key(10), False)
    assert keys.lookup(keys.key(12).name) == (keys.key(12), False)  # a node whose clock is ahead
    assert keys.lookup(keys.key(9).name) is None
    assert keys.lookup(keys.key(13).name) is None
    assert keys.lookup(b"\0" * 16) is None


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        TicketKeys(b"short")
    with pytest.raises(ValueError, match="at least 1 second"):
        TicketKeys(os.urandom(32), 0.5)
    with pytest.raises(ValueError, match="32 bytes"):
        derive(b"", 1)


# -- real handshakes ---------------------------------------------------------------------------
@pytest.mark.parametrize("version", [TLS13, TLS12], ids=["tls1.3", "tls1.2"])
def test_resumes_within_the_epoch(cert_files: tuple[Path, Path], version: ssl.TLSVersion) -> None:
    keys = TicketKeys(os.urandom(32), ROTATION, clock=Clock())
    srv, cli = server(cert_files, keys), client(cert_files, version)
    first = connect(srv, cli)
    assert first.version() == ("TLSv1.3" if version is TLS13 else "TLSv1.2")
    assert not first.session_reused and first.session is not None and first.session.has_ticket
    assert keys.issued >= 1
    issued = keys.issued
    again = connect(srv, cli, first.session)
    assert again.session_reused
    if version is TLS12:  # current key: the client keeps its ticket
        assert (keys.resumed, keys.renewed, keys.issued) == (1, 0, issued)
    else:  # TLS 1.3 tickets are single-use: a fresh one with every resumption...
        assert (keys.resumed, keys.renewed, keys.issued) == (0, 1, issued + 1)
        # ...so a client that chains them resumes every time, not every other time.
        assert again.session is not None and again.session.id != first.session.id
        third = connect(srv, cli, again.session)
        assert third.session_reused and keys.issued == issued + 2


@pytest.mark.parametrize("version", [TLS13, TLS12], ids=["tls1.3", "tls1.2"])
def test_previous_epoch_resumes_and_is_renewed(
    cert_files: tuple[Path, Path], version: ssl.TLSVersion
) -> None:
    clock = Clock()
    keys = TicketKeys(os.urandom(32), ROTATION, clock=clock)
    srv, cli = server(cert_files, keys), client(cert_files, version)
    first = connect(srv, cli)
    clock.now += ROTATION  # the ticket's key is now the previous epoch's
    issued = keys.issued
    renewed = connect(srv, cli, first.session)
    assert renewed.session_reused
    assert keys.renewed == 1 and keys.issued == issued + 1  # a fresh ticket, current key
    clock.now += ROTATION  # the first ticket is now two epochs old; the renewed one is not
    assert connect(srv, cli, renewed.session).session_reused
    assert keys.renewed == 2


@pytest.mark.parametrize("version", [TLS13, TLS12], ids=["tls1.3", "tls1.2"])
def test_two_epochs_old_means_a_full_handshake(
    cert_files: tuple[Path, Path], version: ssl.TLSVersion
) -> None:
    clock = Clock()
    keys = TicketKeys(os.urandom(32), ROTATION, clock=clock)
    srv, cli = server(cert_files, keys), client(cert_files, version)
    first = connect(srv, cli)
    clock.now += 2 * ROTATION
    later = connect(srv, cli, first.session)  # no error: just not resumed
    assert not later.session_reused
    assert keys.unknown == 1
    assert later.session is not None and later.session.has_ticket  # and a new ticket


@pytest.mark.parametrize("version", [TLS13, TLS12], ids=["tls1.3", "tls1.2"])
def test_contexts_sharing_a_secret_resume_each_others_tickets(
    cert_files: tuple[Path, Path], version: ssl.TLSVersion
) -> None:
    """Two workers (or nodes) build their own contexts from the same stored secret."""
    secret = os.urandom(32)
    clock = Clock()
    worker_a = server(cert_files, TicketKeys(secret, ROTATION, clock=clock))
    worker_b = server(cert_files, TicketKeys(secret, ROTATION, clock=clock))
    stranger = server(cert_files, TicketKeys(os.urandom(32), ROTATION, clock=clock))
    cli = client(cert_files, version)
    first = connect(worker_a, cli)
    assert connect(worker_b, cli, first.session).session_reused
    assert not connect(stranger, cli, first.session).session_reused


def test_without_the_callback_contexts_do_not_share(cert_files: tuple[Path, Path]) -> None:
    # The baseline the feature exists for: OpenSSL's own keys are random per context.
    a, b = server(cert_files, None), server(cert_files, None)
    cli = client(cert_files, TLS13)
    assert not connect(b, cli, connect(a, cli).session).session_reused


@pytest.mark.parametrize("version", [TLS13, TLS12], ids=["tls1.3", "tls1.2"])
def test_a_failing_callback_costs_the_ticket_not_the_connection(
    cert_files: tuple[Path, Path],
    version: ssl.TLSVersion,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keys = TicketKeys(os.urandom(32), ROTATION, clock=Clock())
    srv, cli = server(cert_files, keys), client(cert_files, version)

    def broken(epoch: int) -> None:
        raise RuntimeError("key store exploded")

    monkeypatch.setattr(keys, "key", broken)
    with caplog.at_level(logging.ERROR, logger="tlsgate.tickets"):
        first = connect(srv, cli)
        second = connect(srv, cli, first.session)
    assert first.session is not None and not first.session.has_ticket
    assert not second.session_reused
    assert len([r for r in caplog.records if "callback failed" in r.message]) == 1


@pytest.mark.parametrize("version", [TLS13, TLS12], ids=["tls1.3", "tls1.2"])
def test_disabled_tickets(cert_files: tuple[Path, Path], version: ssl.TLSVersion) -> None:
    srv = server(cert_files, None)
    disable_tickets(srv)
    first = connect(srv, client(cert_files, version))
    assert first.session is None or not first.session.has_ticket

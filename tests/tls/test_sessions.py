"""The TLS 1.2 session cache the workers share: the table on its own, then real handshakes
(Python ``ssl`` over memory BIOs) against server contexts that keep their sessions in it."""

from __future__ import annotations

import gc
import os
import ssl
from pathlib import Path

import pytest

from tests.tls.tls_helpers import Exchange, connect, ctypes_and_compiled, self_signed
from tlsgate.proxy import socket_tls
from tlsgate.tls import libssl, sessions
from tlsgate.tls.context import new_server_context
from tlsgate.tls.libssl import set_session_id_context
from tlsgate.tls.sessions import SLOT_SIZE, WAYS, SessionCache, install

TLS13 = ssl.TLSVersion.TLSv1_3
TLS12 = ssl.TLSVersion.TLSv1_2
ID = bytes(range(32))


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# -- the table ---------------------------------------------------------------------------------
def test_put_get_remove() -> None:
    cache = SessionCache(sets=4, clock=Clock())
    assert cache.get(ID) is None
    assert cache.put(ID, b"session", expires=1_000_100)
    assert cache.get(ID) == b"session"
    assert cache.get(ID[:31]) is None  # an id is matched whole
    assert cache.put(ID, b"replaced", expires=1_000_100)
    assert cache.get(ID) == b"replaced"
    cache.remove(ID)
    assert cache.get(ID) is None
    assert (cache.stored, cache.hits, cache.misses) == (2, 2, 3)


def test_expired_sessions_are_misses() -> None:
    clock = Clock()
    cache = SessionCache(sets=4, clock=clock)
    cache.put(ID, b"session", expires=clock.now + 10)
    clock.now += 10
    assert cache.get(ID) is None


def test_a_full_set_drops_the_session_that_expires_first() -> None:
    cache = SessionCache(sets=1, clock=Clock())
    ids = [bytes([i]) * 32 for i in range(WAYS + 1)]
    expiries = [1_000_500, 1_000_100, 1_000_400, 1_000_300, 1_000_200]
    for session_id, expires in zip(ids, expiries, strict=True):
        assert cache.put(session_id, session_id[:4], expires)
    assert cache.get(ids[1]) is None  # the soonest to expire made room for the last one
    assert all(cache.get(i) == i[:4] for i in ids if i != ids[1])


def test_too_big_is_not_cached() -> None:
    cache = SessionCache(sets=1, clock=Clock())
    assert not cache.put(ID, b"x" * SLOT_SIZE, expires=2_000_000)
    assert cache.too_big == 1 and cache.get(ID) is None
    with pytest.raises(ValueError, match="1-32 bytes"):
        cache.put(b"", b"session", expires=2_000_000)


def test_a_torn_slot_is_a_miss_not_a_wrong_session() -> None:
    cache = SessionCache(sets=1, clock=Clock())
    cache.put(ID, b"session bytes", expires=2_000_000)
    offset = cache._map.find(b"session bytes")
    cache._map[offset] ^= 0xFF  # as if another worker were half-way through writing it
    assert cache.get(ID) is None


def test_forked_processes_share_it() -> None:
    cache = SessionCache(sets=4, clock=Clock())
    pid = os.fork()
    if pid == 0:  # a worker: stores, and is gone
        code = 0 if cache.put(ID, b"from the child", expires=2_000_000) else 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert cache.get(ID) == b"from the child"


# -- real handshakes ---------------------------------------------------------------------------
needs_ctypes = pytest.mark.skipif(
    not libssl.available() and os.environ.get("CI") != "true",
    reason="OpenSSL is not reachable through ctypes here",
)


@pytest.fixture(scope="module")
def cert_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed(tmp_path_factory.mktemp("sessions"))


#: Whether worker() puts the compiled filters in front of the callbacks, as serve does when the
#: compiled data plane is in use (tlsgate.proxy.socket_tls.filter_session_callbacks).
FILTERED = [False]


_filtered = ctypes_and_compiled(FILTERED, ("ctypes", "compiled-filter"))


def worker(cert_files: tuple[Path, Path], cache: SessionCache | None) -> ssl.SSLContext:
    """A server context as one worker of ``serve`` has it (tickets aside)."""
    ctx = new_server_context()
    ctx.load_cert_chain(*cert_files)
    if cache is not None:
        assert install(ctx, cache)
        if FILTERED[0]:
            assert socket_tls.filter_session_callbacks(ctx)
    return ctx


def no_tickets(cert_files: tuple[Path, Path], version: ssl.TLSVersion) -> ssl.SSLContext:
    """A client that resumes by session ID only."""
    ctx = ssl.create_default_context(cafile=str(cert_files[0]))
    ctx.maximum_version = version
    ctx.options |= ssl.OP_NO_TICKET
    return ctx


@needs_ctypes
def test_workers_resume_each_others_sessions(cert_files: tuple[Path, Path]) -> None:
    cache = SessionCache(sets=16)
    a, b = worker(cert_files, cache), worker(cert_files, cache)
    cli = no_tickets(cert_files, TLS12)
    first = connect(a, cli)
    assert not first.session_reused and first.session is not None and first.session.id
    assert cache.stored == 1
    session = first.session
    for server_ctx in (b, a, b, b, a):
        again = connect(server_ctx, cli, session)
        assert again.session_reused
        assert again.session is not None and again.session.id == session.id
    assert cache.hits == 5


@needs_ctypes
def test_openssl_alone_loses_sessions(cert_files: tuple[Path, Path]) -> None:
    """The two ways resumption by ID failed before: each process's own OpenSSL cache (so a
    reconnect reaching another worker got a full handshake), and OpenSSL forgetting a session
    once the server's end of a connection is freed without having sent close_notify."""
    a, b = worker(cert_files, None), worker(cert_files, None)
    cli = no_tickets(cert_files, TLS12)
    first = Exchange(a, cli)
    first.handshake()
    session = first.client.session
    assert connect(a, cli, session).session_reused  # same process, connection still open
    assert not connect(b, cli, session).session_reused  # another worker: unknown
    del first
    gc.collect()
    assert not connect(a, cli, session).session_reused  # the client closed first: forgotten


@needs_ctypes
def test_a_connection_closed_by_the_client_keeps_its_session(
    cert_files: tuple[Path, Path],
) -> None:
    cache = SessionCache(sets=16)
    srv = worker(cert_files, cache)
    cli = no_tickets(cert_files, TLS12)
    session = connect(srv, cli).session  # the server's end is gone, without close_notify
    gc.collect()
    for _ in range(3):
        again = connect(srv, cli, session)
        assert again.session_reused
        session = again.session
        gc.collect()


@needs_ctypes
def test_a_fatal_alert_drops_the_session(cert_files: tuple[Path, Path]) -> None:
    """RFC 5246 7.2.2: a session whose connection failed with a fatal alert is not resumed."""
    cache = SessionCache(sets=16)
    srv = worker(cert_files, cache)
    cli = no_tickets(cert_files, TLS12)
    first = Exchange(srv, cli)
    first.handshake()
    session = first.client.session
    assert session is not None and cache.get(session.id) is not None
    first.s_in.write(b"\x17\x03\x03\x00\x20" + bytes(32))  # a record that fails its MAC
    with pytest.raises(ssl.SSLError):
        first.server.read(1)
    assert first.s_out.pending  # the fatal alert the server sent
    assert cache.get(session.id) is None
    assert not connect(srv, cli, session).session_reused


@needs_ctypes
def test_another_session_id_context_does_not_resume(cert_files: tuple[Path, Path]) -> None:
    """OpenSSL still checks what it finds: a session from a site without client certificates
    (or from before a revocation) never resumes on an mTLS site's context."""
    cache = SessionCache(sets=16)
    plain, other = worker(cert_files, cache), worker(cert_files, cache)
    set_session_id_context(other, b"another site")
    cli = no_tickets(cert_files, TLS12)
    first = connect(plain, cli)
    assert not connect(other, cli, first.session).session_reused
    assert connect(plain, cli, first.session).session_reused


@needs_ctypes
def test_tls13_sessions_are_not_stored(cert_files: tuple[Path, Path]) -> None:
    cache = SessionCache(sets=16)
    connect(worker(cert_files, cache), no_tickets(cert_files, TLS13))
    assert cache.stored == 0


@needs_ctypes
def test_a_failing_cache_costs_the_resumption_not_the_connection(
    cert_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    cache = SessionCache(sets=16)
    srv = worker(cert_files, cache)
    cli = no_tickets(cert_files, TLS12)

    def broken(*args: object) -> bool:
        raise OSError("the shared memory is gone")

    monkeypatch.setattr(cache, "put", broken)
    with caplog.at_level("ERROR", logger="tlsgate.sessions"):
        first = connect(srv, cli)
        second = connect(srv, cli, first.session)
    assert not second.session_reused  # nothing stored, nothing found: full handshakes
    failures = [r for r in caplog.records if "storing a session failed" in r.getMessage()]
    assert len(failures) == 1  # said once, not once per handshake


def test_without_ctypes_install_says_so_and_changes_nothing(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(sessions, "_native", lambda: None)
    monkeypatch.setattr(sessions, "_warned", False)
    ctx = new_server_context()
    with caplog.at_level("WARNING", logger="tlsgate.sessions"):
        assert not install(ctx, SessionCache(sets=1))
        assert not install(ctx, SessionCache(sets=1))
    assert len([r for r in caplog.records if "session cache" in r.getMessage()]) == 1

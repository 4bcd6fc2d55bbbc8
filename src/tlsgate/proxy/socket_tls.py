"""OpenSSL on the socket: the data plane's TLS, where nginx has it.

The event loop's TLS (uvloop's, asyncio's) runs OpenSSL over memory BIOs: every record is copied
from the socket into a Python-visible buffer, into OpenSSL, out again as a ``bytes``, and a
protocol object per connection drives it with Python calls. The compiled data plane instead
gives each accepted connection an ``SSL`` made from the ``SSL_CTX`` of the site's
``ssl.SSLContext`` (so certificates, the TLS profile, ALPN, ticket keys, the session cache and
OCSP stapling set on the context all apply) and drives the handshake, reads and writes itself
from the socket's readiness (``_fast_tls.pxi``): records go from the socket into OpenSSL's BIO
pair and back with no copy through Python, a write's records leave in one ``send``, and a
failed handshake's alert reaches the client.

Python's own SNI callback needs the ``SSLSocket`` it made, so on this path the contexts get the
transport's callback instead (:func:`install`); :class:`tlsgate.serve.contexts.SiteContexts`
installs it on every context it hands out. The twin is the event loop's TLS: ``TLSGATE_PURE=1``,
the extension missing, or a context this path cannot drive (:func:`unusable`) keep it.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from tlsgate.compiled import compiled_module
from tlsgate.tls import sessions, tickets
from tlsgate.tls.clienthello import ClientHello
from tlsgate.tls.libssl import ssl_ctx_pointer

__all__ = [
    "LOOP_TLS_VARIABLE",
    "Chooser",
    "Lookup",
    "SocketAcceptor",
    "available",
    "compile_ticket_keys",
    "install",
    "kernel_tls",
    "listen",
    "listen_choosing",
    "unusable",
]

#: Set (to anything but empty or 0) to keep the event loop's TLS with the compiled HTTP layer:
#: for comparing the two TLS paths (bench/README.md), or ruling this one out.
LOOP_TLS_VARIABLE = "TLSGATE_LOOP_TLS"

#: A server name -> the context of the site that has it (None: keep the default certificate).
Lookup = Callable[[str], ssl.SSLContext | None]
#: A ClientHello -> the context to go on with and the factory of the connection's protocol.
Chooser = Callable[[ClientHello], tuple[ssl.SSLContext, Callable[[], asyncio.BaseProtocol]]]

_fast: Any = None if TYPE_CHECKING else compiled_module("tlsgate.proxy._fast")
_TCP_ULP = getattr(socket, "TCP_ULP", 31)  # linux/tcp.h


class SocketAcceptor(Protocol):
    """What serve holds of a listener on this path (``_fast.TLSAcceptor``)."""

    sock: socket.socket

    def stop_accepting(self) -> None:
        """Stop accepting; connections accepted already go on, handshakes included."""

    def close(self) -> None: ...


def available() -> bool:
    """Whether this interpreter can drive TLS on the socket: the extension is built (and not
    switched off by ``TLSGATE_PURE``) and runs on the very OpenSSL Python's ``ssl`` runs on
    (the transport shares its ``SSL_CTX`` objects)."""
    if os.environ.get(LOOP_TLS_VARIABLE, "") not in ("", "0"):
        return False
    return _fast is not None and _fast.openssl_version_number() == ssl.OPENSSL_VERSION_NUMBER


def kernel_tls() -> str:
    """What this machine offers for kTLS, in words for serve's start-up line.

    kTLS (``SSL_OP_ENABLE_KTLS``) would let the kernel encrypt records on ``send``: it needs the
    kernel's TLS upper-layer protocol (``CONFIG_TLS``) and OpenSSL talking to the socket itself.
    This transport keeps records in its own buffers (one ``send`` per 128 KiB of records rather
    than one per record), so it reports what the kernel offers and does not use it."""
    server = socket.create_server(("127.0.0.1", 0))
    try:
        with socket.create_connection(server.getsockname(), timeout=1) as client:
            accepted, _ = server.accept()
            accepted.close()
            try:
                client.setsockopt(socket.IPPROTO_TCP, _TCP_ULP, b"tls")
            except OSError as exc:
                return f"kTLS: not in this kernel ({exc.strerror or exc})"
            return "kTLS: the kernel has it; records are encrypted by OpenSSL in user space"
    except OSError as exc:
        return f"kTLS: unknown ({exc})"
    finally:
        server.close()


def unusable(ctx: ssl.SSLContext) -> str | None:
    """Why ``ctx`` cannot be served on the socket path (None: it can)."""
    if not available():
        return f"the compiled data plane is not in use, or {LOOP_TLS_VARIABLE} is set"
    if ctx.keylog_filename:
        # Python's key-log callback reads the SSLSocket it made: the loop's TLS writes it.
        return "a key log file is set (SSLKEYLOGFILE)"
    try:
        ssl_ctx_pointer(ctx)
    except RuntimeError as exc:
        return str(exc)
    return None


def install(ctx: ssl.SSLContext) -> None:
    """Give ``ctx`` the transport's SNI callback, replacing Python's (which must never run
    for a connection of this path). Raises ``RuntimeError`` when the context cannot be
    driven here (:func:`unusable`)."""
    reason = unusable(ctx)
    if reason is not None:
        raise RuntimeError(f"TLS on the socket: {reason}")
    _fast.install_sni(ctx, ssl_ctx_pointer(ctx))


def filter_session_callbacks(ctx: ssl.SSLContext) -> bool:
    """Put compiled filters in front of the shared session cache's callbacks on ``ctx``
    (:func:`tlsgate.tls.sessions.install` first): OpenSSL calls the info callback about 18 times
    a handshake and only a fatal alert matters to the cache; the filter calls the Python one
    only then (and the new-session one only for TLS 1.2). Either TLS path benefits. False, and
    nothing changed, without the compiled data plane."""
    if _fast is None:
        return False
    addresses = sessions.callback_addresses(ctx)
    if addresses is None:
        return False
    _fast.filter_session_callbacks(ctx, ssl_ctx_pointer(ctx), *addresses)
    return True


def compile_ticket_keys(ctx: ssl.SSLContext, keys: tickets.TicketKeys) -> bool:
    """Pick ``ctx``'s session-ticket keys in C (:func:`tlsgate.tls.tickets.install` first):
    the same keys and decisions as the ctypes callback, without a Python call per ticket
    issued or presented (10 % of a worker's CPU under resumed-handshake load). Either TLS path
    benefits. False, and nothing changed, without the compiled data plane."""
    if _fast is None:
        return False
    if keys.compiled is None:
        keys.compiled = _fast.TicketRing(keys)
    _fast.compile_ticket_keys(ctx, ssl_ctx_pointer(ctx), keys.compiled)
    ctx.options &= ~ssl.OP_NO_TICKET
    return True


def listen(
    sock: socket.socket,
    ctx: ssl.SSLContext,
    factory: Callable[[], asyncio.BaseProtocol],
    lookup: Lookup,
    *,
    handshake_timeout: float,
) -> SocketAcceptor:
    """Serve TLS on the listening ``sock``: handshakes start on ``ctx`` and move to
    ``lookup(server name)``; each connection's protocol comes from ``factory``."""
    acceptor: SocketAcceptor = _fast.TLSAcceptor(sock, ctx, factory, lookup, handshake_timeout)
    return acceptor


def listen_choosing(
    sock: socket.socket, ctx: ssl.SSLContext, choose: Chooser, *, handshake_timeout: float
) -> SocketAcceptor:
    """Serve TLS on the listening ``sock``, each connection's site chosen from its ClientHello
    before the handshake goes on: ``choose(hello)`` gives the context (its client-certificate
    policy applies from the start) and the protocol's factory, as for
    :class:`tlsgate.proxy.acceptor.HelloAcceptor`, which peeks at the socket for the same
    choice on the event loop's TLS. For sites that ask for client certificates, tls-alpn-01
    answers and TCP sites."""
    reason = unusable(ctx)
    if reason is not None:
        raise RuntimeError(f"TLS on the socket: {reason}")
    _fast.install_choice(ctx, ssl_ctx_pointer(ctx))
    acceptor: SocketAcceptor = _fast.TLSAcceptor(sock, ctx, None, None, handshake_timeout, choose)
    return acceptor

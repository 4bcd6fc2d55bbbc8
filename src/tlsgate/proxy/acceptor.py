"""A TLS listener that reads the ClientHello before OpenSSL does, to answer tls-alpn-01.

A tls-alpn-01 validation (RFC 8737) must get a special self-signed certificate exactly when the
client offers the ``acme-tls/1`` protocol, and Python's ``ssl`` does not show the client's ALPN
list to the SNI callback. So for sites validated this way the edge accepts connections itself,
peeks at the first bytes (``MSG_PEEK``: nothing is consumed, OpenSSL later reads the same
bytes), lets :func:`~tlsgate.tls.clienthello.parse_client_hello` find the server name and ALPN
list, and hands the socket to the event loop's TLS with the context ``choose`` returns.

Everything else is unchanged: the same protocol factory, handshake timeout and SNI callback.
Sites that do not use tls-alpn-01 keep the event loop's own accept path (``create_server``).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from asyncio import sslproto
from collections.abc import Callable
from typing import cast

from tlsgate.tls.clienthello import (
    MAX_CLIENT_HELLO,
    ClientHello,
    ClientHelloError,
    parse_client_hello,
)

__all__ = ["ChallengeProtocol", "HelloAcceptor", "log_refusal"]

log = logging.getLogger("tlsgate.serve")

Choice = tuple[ssl.SSLContext, Callable[[], asyncio.BaseProtocol]]
#: Accepts per readiness callback: enough to drain a burst, few enough to stay fair.
ACCEPT_BATCH = 64
#: OpenSSL's reasons for refusing a client certificate (no certificate, unverifiable, revoked).
CLIENT_CERT_REASONS = frozenset(
    {
        "CERTIFICATE_VERIFY_FAILED",
        "PEER_DID_NOT_RETURN_A_CERTIFICATE",
        "NO_CERTIFICATE_RETURNED",
        "CERTIFICATE_REVOKED",
    }
)
#: A ClientHello split across TCP segments: look again after this long instead of spinning
#: on a socket that stays readable while we wait for the rest.
RETRY_PEEK = 0.005


class HelloAcceptor:
    def __init__(
        self,
        sock: socket.socket,
        choose: Callable[[ClientHello | None], Choice],
        *,
        handshake_timeout: float,
    ) -> None:
        self.sock = sock
        self.choose = choose
        self.handshake_timeout = handshake_timeout
        self.loop = asyncio.get_running_loop()
        self._waiting: dict[int, tuple[socket.socket, asyncio.TimerHandle]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        sock.setblocking(False)
        self.loop.add_reader(sock.fileno(), self._accept)

    @classmethod
    async def listen(
        cls,
        host: str,
        port: int,
        choose: Callable[[ClientHello | None], Choice],
        *,
        handshake_timeout: float,
        backlog: int = 4096,
    ) -> HelloAcceptor:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.create_server((host, port), family=family, backlog=backlog, reuse_port=True)
        return cls(sock, choose, handshake_timeout=handshake_timeout)

    def stop_accepting(self) -> None:
        """Stop accepting; connections accepted already go on, those still waiting for their
        ClientHello too (a recycled worker hands its listener over and finishes them)."""
        if self.sock.fileno() >= 0:
            self.loop.remove_reader(self.sock.fileno())
            self.sock.close()

    def close(self) -> None:
        """Stop accepting (as ``Server.close``); handshakes already started go on."""
        self.stop_accepting()
        for fd, (conn, timer) in list(self._waiting.items()):
            self._drop(fd, conn, timer)

    # -- accepting and peeking -----------------------------------------------------------------
    def _accept(self) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE, ENOBUFS: the next readiness event tries again
                log.warning("accept failed: %s", exc)
                return
            conn.setblocking(False)
            fd = conn.fileno()
            timer = self.loop.call_later(self.handshake_timeout, self._drop, fd, conn, None)
            self._waiting[fd] = (conn, timer)
            self.loop.add_reader(fd, self._peek, fd)

    def _peek(self, fd: int) -> None:
        conn, timer = self._waiting[fd]
        try:
            data = conn.recv(MAX_CLIENT_HELLO + 5, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(fd, conn, timer)
            return
        if not data:  # closed before saying anything
            self._drop(fd, conn, timer)
            return
        try:
            hello = parse_client_hello(data)
        except ClientHelloError:
            hello = ClientHello(None, ())  # OpenSSL will refuse it with a proper alert
        if hello is None and len(data) < MAX_CLIENT_HELLO + 5:
            self.loop.remove_reader(fd)
            self.loop.call_later(RETRY_PEEK, self._resume, fd)
            return
        self.loop.remove_reader(fd)
        timer.cancel()
        del self._waiting[fd]
        context, factory = self.choose(hello)
        task = self.loop.create_task(self._handshake(conn, context, factory))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _resume(self, fd: int) -> None:
        if fd in self._waiting:
            self.loop.add_reader(fd, self._peek, fd)

    def _drop(self, fd: int, conn: socket.socket, timer: asyncio.TimerHandle | None) -> None:
        if self._waiting.pop(fd, None) is None:
            return
        if timer is not None:
            timer.cancel()
        self.loop.remove_reader(fd)
        conn.close()

    async def _handshake(
        self,
        conn: socket.socket,
        context: ssl.SSLContext,
        factory: Callable[[], asyncio.BaseProtocol],
    ) -> None:
        try:
            peer = conn.getpeername()[0]
        except OSError:
            peer = "?"
        try:
            if context.verify_mode == ssl.CERT_NONE:
                await self.loop.connect_accepted_socket(
                    factory, conn, ssl=context, ssl_handshake_timeout=self.handshake_timeout
                )
            else:
                waiter = self.loop.create_future()
                tls = AlertingSSLProtocol(
                    self.loop, factory(), context, waiter, server_side=True,
                    ssl_handshake_timeout=self.handshake_timeout,  # type: ignore[arg-type]
                )  # fmt: skip
                await self.loop.connect_accepted_socket(lambda: tls, conn)
                await waiter
        except ssl.SSLError as exc:
            conn.close()
            if context.verify_mode != ssl.CERT_NONE:
                log_refusal(peer, exc.reason or "", getattr(exc, "verify_message", None))
        except (OSError, TimeoutError, ConnectionError):
            conn.close()  # as on the event loop's own accept path: a failed handshake is quiet


def log_refusal(peer: str, reason: str, verify_message: str | None) -> None:
    """A handshake that asked for a client certificate failed for ``reason`` (OpenSSL's): if
    the certificate was the reason, say who and why (an access decision, unlike other failed
    handshakes, which are quiet). Both TLS paths call this."""
    if reason in CLIENT_CERT_REASONS:
        log.warning(
            "client %s refused in the TLS handshake: %s", peer, verify_message or reason.lower()
        )


#: How long a refused client's last bytes are read and dropped before its socket is closed.
LINGER = 2.0


class AlertingSSLProtocol(sslproto.SSLProtocol):
    """asyncio's TLS protocol, but a failed handshake sends OpenSSL's alert before closing.

    For sites that ask for client certificates: a client refused for its certificate must
    learn why ("certificate required", "certificate revoked", "unknown CA"), and both uvloop's
    TLS and asyncio's drop the alert OpenSSL wrote when the handshake fails (they close the
    socket without flushing it). This one flushes it first. It is the pure-Python transport
    (same design as uvloop's, slower per read), so only mTLS sites use it.
    """

    _lingering = False
    _linger_exc: BaseException | None = None
    _linger_timer: asyncio.TimerHandle | None = None

    def _on_handshake_complete(self, handshake_exc: BaseException | None) -> None:
        if handshake_exc is not None and not self._lingering:
            try:
                self._process_outgoing()  # type: ignore[attr-defined]  # the alert
            except Exception:  # the socket may be gone already: nothing more to tell
                pass
            transport = cast("asyncio.WriteTransport | None", self._transport)
            if transport is not None and transport.can_write_eof():
                # Closing now, with the client's first request unread (a TLS 1.3 client sends
                # it right after its Finished, an HTTP/2 preface at once), would answer with a
                # reset, and the reset makes the client's kernel drop the alert. So: the alert,
                # our FIN, and the client's last bytes dropped until it closes (or LINGER).
                transport.write_eof()
                timeout: asyncio.TimerHandle | None = self._handshake_timeout_handle  # type: ignore[has-type]
                if timeout is not None:
                    timeout.cancel()
                    self._handshake_timeout_handle = None
                self._lingering = True
                self._linger_exc = handshake_exc
                self._linger_timer = self._loop.call_later(LINGER, self._end_linger)
                return
        super()._on_handshake_complete(handshake_exc)

    def _end_linger(self) -> None:
        if self._lingering:
            self._lingering = False
            if self._linger_timer is not None:
                self._linger_timer.cancel()
            super()._on_handshake_complete(self._linger_exc)

    def buffer_updated(self, nbytes: int) -> None:
        if not self._lingering:  # (while lingering: read and dropped)
            super().buffer_updated(nbytes)

    def eof_received(self) -> None:
        if self._lingering:
            self._end_linger()
            return
        super().eof_received()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._end_linger()
        super().connection_lost(exc)


class ChallengeProtocol(asyncio.Protocol):
    """The tls-alpn-01 responder's side after the handshake: the validator has seen the
    certificate and must send nothing more (RFC 8737 section 3), so close after a grace."""

    GRACE = 5.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._timer = asyncio.get_running_loop().call_later(self.GRACE, transport.close)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._timer.cancel()

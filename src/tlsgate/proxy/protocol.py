"""One client connection: TLS terminated by the loop, HTTP/1.1 exchanges proxied upstream.

The connection is a small state machine driven by callbacks, not a coroutine: bytes from the
client go through the sans-IO request parser, bytes from the upstream through the response
parser, and each event is acted on in the callback that produced it. A keep-alive request whose
upstream connection is pooled therefore costs no task, no future and no queue hop; that is what
the data plane spends its time on otherwise. Only opening a new upstream connection runs as a
task.

Where the exchange in flight is in its life is its one phase (:mod:`tlsgate.proxy.phase`, a
table of allowed moves); this module is the client half that moves it (reading the request,
answering locally, ending the exchange), :mod:`tlsgate.proxy.upstream_side` the upstream half.
What the connection keeps beside the phase is not a phase: the deadline's kind and the pause
reasons (:mod:`tlsgate.proxy.flow`: a timer and back-pressure), the queued client events and
the client's end of file or parse error (input not yet acted on), ``tunnel`` and ``closed``
(the connection's life, after or beyond any exchange).

Bodies stream in both directions with back-pressure: when one side's transport stops accepting
writes (``pause_writing``), the other side's reading is paused until it drains, so a 10 GiB upload
or download costs the same memory as a 100-byte one.

Timeouts use one lazily re-armed timer per connection: moving a deadline later only stores a
number, and the timer, when it fires early, re-arms itself for the remaining time.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections import deque
from typing import TYPE_CHECKING, cast

from tlsgate.compiled import compiled_module
from tlsgate.http import (
    BodyKind,
    Data,
    EndOfMessage,
    Event,
    LocalProtocolError,
    RemoteProtocolError,
    Request,
    RequestParser,
    Upgraded,
    chunk,
    last_chunk,
)
from tlsgate.mtls.identity import ClientIdentity
from tlsgate.proxy.access_log import AccessRecord
from tlsgate.proxy.client_identity import admit, peer_identity
from tlsgate.proxy.deadline import Deadline
from tlsgate.proxy.edge import Edge, error_response
from tlsgate.proxy.exchange import Exchange, log_exchange
from tlsgate.proxy.flow import (
    DEADLINE_BODY,
    DEADLINE_HEAD,
    DEADLINE_IDLE,
    DEADLINE_UPSTREAM,
    PAUSE_QUEUE,
    PAUSE_TUNNEL,
    PAUSE_UPSTREAM,
)
from tlsgate.proxy.h2_connection import H2Connection
from tlsgate.proxy.headers import ClientInfo, is_trusted, request_head
from tlsgate.proxy.phase import (
    ABORT,
    ANSWER_LOCALLY,
    DONE,
    HEAD_SENT,
    LOCAL,
    READS_BODY,
    REQUEST_END,
    REQUEST_READ,
)
from tlsgate.proxy.routing import Route, normalize_host
from tlsgate.proxy.upstream import UpstreamConnection
from tlsgate.proxy.upstream_side import UpstreamSide

__all__ = ["ClientProtocol", "PureClientProtocol"]

IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE", b"TRACE"})
#: Why the edge answered a request itself (the access log's error; the client sees the status).
_ROUTING_ERRORS = {
    404: "no site for this host",
    421: "host names another site than the tls handshake",
}

#: Decrypted bytes are read into one buffer per worker (see :meth:`ClientProtocol.get_buffer`).
READ_BUFFER_SIZE = 64 * 1024
#: Queued client events (pipelined requests, body parts waiting for an upstream connection)
#: above which the client's reading pauses, and below which it resumes.
HIGH_WATER = 32
LOW_WATER = 8
#: Output is gathered and sent as one TLS write per burst, or once it reaches this size.
FLUSH_SIZE = 64 * 1024

_NO_BODY = BodyKind.NONE


class ClientProtocol(UpstreamSide, asyncio.BufferedProtocol):
    """A client connection.

    A ``BufferedProtocol`` so that uvloop's TLS layer decrypts straight into one reusable buffer:
    with a plain ``Protocol`` it asks OpenSSL for up to 256 KiB per read into a fresh ``bytes``,
    which glibc serves with mmap/mremap/munmap, three system calls and a page fault per request.
    """

    _read_buffer = bytearray(READ_BUFFER_SIZE)
    _read_view = memoryview(_read_buffer)

    def __init__(self, edge: Edge) -> None:
        self.edge = edge
        self.loop = asyncio.get_running_loop()
        self.parser = RequestParser(edge.parser_limits)
        self.transport: asyncio.Transport | None = None
        self.client = ClientInfo("", edge.port)
        self.trusted = False  # the peer is one of trusted_proxies: its X-Forwarded-* are kept
        self.sni_route: Route | None = None
        self.identity: ClientIdentity | None = None  # a verified client certificate's holder
        self.tunnel: UpstreamConnection | None = None
        self.busy = False  # inside an exchange (draining waits for it)
        self.closed = False
        self._x: Exchange | None = None
        self._queue: deque[Event] = deque()
        self._client_error: RemoteProtocolError | None = None
        self._client_eof = False
        self._paused = 0
        self._write_paused = False
        self._out: list[bytes] = []
        self._out_size = 0
        self._sent = 0  # bytes queued for the client over the connection's life
        self._head_since = 0.0  # when the head being read (not yet a Request) began
        self._refused = False  # a refusal was answered and logged: the connection is ending
        self._deadline = Deadline(self.loop, self._on_deadline)

    # -- asyncio callbacks: the client side ------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's SSL transport is not an asyncio.Transport subclass, but has its interface.
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.client = ClientInfo(peer[0] if peer else "", self.edge.port)
        # Decided once per connection: the peer does not change between its requests.
        self.trusted = is_trusted(self.client.address, self.edge.trusted_proxies)  # type: ignore[arg-type]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        ssl_object: ssl.SSLObject | None = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            name = getattr(ssl_object, "tlsgate_sni", None)
            if name:
                self.sni_route = self.edge.router.match(normalize_host(name))
            if self.edge.client_auth:  # OpenSSL verified it (or there is none): who is it?
                self.identity = peer_identity(ssl_object)
            if ssl_object.selected_alpn_protocol() == "h2":
                # HTTP/2: the connection is an H2Connection's from here; this object, made
                # before the handshake said which protocol, is dropped.
                self._deadline.close()
                self.transport = None
                h2 = H2Connection(
                    self.edge, self.client, self.trusted, self.sni_route, self.identity
                )
                transport.set_protocol(h2)
                h2.connection_made(transport)
                return
        self.edge.connections.add(self)
        if self.edge.metrics is not None:
            self.edge.metrics.connected()
        # The first request gets the (shorter) header timeout, later ones the idle timeout.
        self._deadline.set(self.edge.timeouts.header, DEADLINE_IDLE)

    def get_buffer(self, sizehint: int) -> memoryview:
        # Shared by every connection of the worker: the loop fills it and calls buffer_updated
        # before reading anything else, and buffer_updated copies the bytes out.
        return self._read_view

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(bytes(self._read_view[:nbytes]))

    def data_received(self, data: bytes) -> None:
        if self.tunnel is not None:
            self.tunnel.write(data)
            return
        x = self._x
        if x is not None and x.request.upgrade is not None and x.phase in REQUEST_READ:
            # Bytes after an upgrade request, before the upstream answered: tunnel bytes if it
            # switches, never parsed as HTTP.
            x.tunnel_leftover += data
            self._pause(PAUSE_TUNNEL)
            return
        if x is None and self._deadline.kind != DEADLINE_HEAD:
            self._deadline.set(self.edge.timeouts.header, DEADLINE_HEAD)
            self._head_since = time.monotonic()
        try:
            events = self.parser.feed(data)
        except RemoteProtocolError as exc:
            self._client_error = exc
            self._pump()
            return
        self._queue.extend(events)
        self._pump()

    def eof_received(self) -> bool | None:
        self._client_eof = True
        if self.tunnel is not None:  # after a 101 the bytes are the tunnel's, not HTTP's
            self.tunnel.close()  # (sends what is buffered first)
            return None
        try:
            self._queue.extend(self.parser.feed_eof())
        except RemoteProtocolError as exc:
            self._client_error = exc
        except LocalProtocolError:
            pass  # an upgrade request waiting for its 101: the exchange ends it
        self._pump()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.edge.connections.discard(self)
        self._deadline.close()
        if self.tunnel is not None:
            self.tunnel.close()
        x = self._x
        if x is not None:
            self._x = None
            self.busy = False
            x.process(ABORT)
            conn = self._detach(x)
            if conn is not None:
                conn.close()
            self._log(x, x.status or 499, "client closed the connection")
        # The transport holds this protocol: dropping it here ends the cycle, so the
        # connection is freed now rather than by the garbage collector.
        self.transport = None

    def pause_writing(self) -> None:
        self._write_paused = True
        x = self._x
        if x is not None and x.conn is not None:
            x.conn.pause_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        x = self._x
        if x is not None and x.conn is not None:
            x.conn.resume_reading()

    # -- output ------------------------------------------------------------------------------
    def _write(self, data: bytes) -> None:
        """Queue bytes for the client; :meth:`_flush` sends them as one TLS write.

        A small response is head + body + terminator; one ``write`` makes one TLS record and
        one syscall instead of three, which is most of the per-request cost of the data plane.
        """
        self._out.append(data)
        size = len(data)
        self._out_size += size
        self._sent += size
        if self._out_size >= FLUSH_SIZE:
            self._flush()

    def _flush(self) -> None:
        out = self._out
        if not out:
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        self._out_size = 0
        transport = self.transport
        if transport is not None and not self.closed:
            transport.write(data)

    def close(self) -> None:
        x = self._x
        if x is not None:
            # Only the server closes a connection mid-exchange (draining past its deadline): the
            # request is answered (if nothing was yet) and logged now, not when the loop may
            # already be gone.
            self._abort(x, 503, "the server is shutting down")
            return  # (_abort ends the exchange, then closes)
        self._flush()
        if self.transport is not None:
            self.transport.close()

    # -- flow control and deadlines ---------------------------------------------------------------
    def _pause(self, reason: int) -> None:
        if not self._paused and self.transport is not None and not self.closed:
            self.transport.pause_reading()
        self._paused |= reason

    def _resume(self, reason: int) -> None:
        if not self._paused & reason:
            return
        self._paused &= ~reason
        if not self._paused and self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def _on_deadline(self, kind: int) -> None:
        if self.closed:
            return
        x = self._x
        if kind == DEADLINE_IDLE:
            self.close()
        elif kind == DEADLINE_HEAD:
            # A client that started a request but has not finished its head in time (slowloris).
            self._refuse(408, "request head timeout")
        elif x is None:  # pragma: no cover - exchange deadlines are cleared with the exchange
            self.close()
        elif kind == DEADLINE_BODY:
            self._abort(x, 408, "request body timeout")
        else:
            self._abort(x, 504, "upstream response timeout")

    # -- client events ------------------------------------------------------------------------
    def _pump(self) -> None:
        """Act on queued client events as far as the exchange in flight allows."""
        queue = self._queue
        while queue:
            x = self._x
            if x is None:
                event = queue.popleft()
                if type(event) is Request:
                    self._begin(event)
                continue  # (events of a request the edge stopped caring about)
            if x.phase not in READS_BODY:
                # The request was read whole (what is queued is a pipelined request: it waits
                # until this exchange ends), or its upstream connection is being opened (the
                # body stays queued meanwhile).
                break
            event = queue.popleft()
            kind = type(event)
            if kind is Data:
                if x.phase is not LOCAL:
                    data = cast(Data, event).data
                    x.conn.write(chunk(data) if x.chunked_in else data)  # type: ignore[union-attr]
                    self._deadline.set(self.edge.timeouts.idle, DEADLINE_BODY)
            elif kind is EndOfMessage:
                if x.process(REQUEST_END) is DONE:  # (from LOCAL)
                    self._answer_locally(x)
                    continue
                if x.chunked_in:
                    x.conn.write(last_chunk(cast(EndOfMessage, event).trailers))  # type: ignore[union-attr]
                if self._deadline.kind == DEADLINE_BODY:  # now waiting for the upstream only
                    self._deadline.set(self.edge.timeouts.upstream_response, DEADLINE_UPSTREAM)
            elif kind is Upgraded:
                x.tunnel_leftover = cast(Upgraded, event).leftover + x.tunnel_leftover
        if len(queue) > HIGH_WATER:
            self._pause(PAUSE_QUEUE)
        elif len(queue) <= LOW_WATER:
            self._resume(PAUSE_QUEUE)
        if self._x is None and not queue:
            if self._client_error is not None:
                self._refuse(self._client_error.status, str(self._client_error))
            elif self._client_eof:
                self.close()
        elif self._client_error is not None and self._x is not None:
            x = self._x
            if x.phase not in REQUEST_READ:  # the client's body was malformed mid-stream
                self._abort(x, self._client_error.status, str(self._client_error))

    def _begin(self, request: Request) -> None:
        edge = self.edge
        self.busy = True
        host_value = b""
        for name, value in request.headers:
            if name == b"host":
                host_value = value
                break
        host = normalize_host(host_value) if host_value else ""
        x = self._x = Exchange(request, host, time.monotonic())
        x.sent_before = self._sent
        route, status = edge.router.route_for(host, self.sni_route)
        if route is None:  # answered here once the request's body (if any) has been read
            x.local_status = status
            x.process(ANSWER_LOCALLY)
            self._deadline.set(edge.timeouts.idle, DEADLINE_BODY)
            return
        x.route = route
        xfcc = None
        auth = edge.client_auth.get(id(route.site)) if edge.client_auth else None
        if auth is not None:
            decision, xfcc = admit(auth, self.identity, request)
            if not decision.allowed:  # a valid certificate, but not one this path accepts
                x.local_status, x.local_reason = 403, decision.reason
                x.process(ANSWER_LOCALLY)
                self._deadline.set(edge.timeouts.idle, DEADLINE_BODY)
                return
        x.head = request_head(
            request,
            self.client,
            host=host_value,
            trusted=self.trusted,
            via=route.site.via,
            client_cert=xfcc,
            chunked=x.chunked_in,
        )
        x.retry_ok = request.method in IDEMPOTENT and request.body is _NO_BODY
        x.attempts = 2 if (x.retry_ok or len(route.balancer.states) > 1) else 1
        self._deadline.set(edge.timeouts.upstream_response, DEADLINE_UPSTREAM)
        self._connect(x)

    def _answer_locally(self, x: Exchange) -> None:
        self._write(error_response(x.local_status, close=False, detail=x.local_reason))
        error = x.local_reason or _ROUTING_ERRORS.get(x.local_status, "")
        self._end(x, x.local_status, keep_alive=x.request.keep_alive, error=error)

    # -- ending an exchange -------------------------------------------------------------------
    def _end(self, x: Exchange, status: int, *, keep_alive: bool, error: str = "") -> None:
        self._x = None
        self.busy = False
        self._log(x, status, error)
        if not keep_alive or self.edge.draining or self.closed:
            self.close()
            return
        self._flush()
        self._resume(PAUSE_UPSTREAM)
        self._head_since = time.monotonic()  # (a pipelined head waiting is timed from here)
        if not self.parser.head_in_progress:
            self._deadline.set(self.edge.timeouts.idle, DEADLINE_IDLE)
        else:  # the next request's head began (pipelined) while this exchange ran
            self._deadline.set(self.edge.timeouts.header, DEADLINE_HEAD)
        if self._queue or self._client_error is not None or self._client_eof:
            self._pump()

    def _abort(self, x: Exchange, status: int, reason: str) -> None:
        """End an exchange that failed; the client connection does not survive it."""
        metrics = self.edge.metrics
        if metrics is not None and status in (502, 504):
            kind = "unavailable" if status == 502 else "timeout"
            upstream = str(x.state.upstream) if x.state is not None else "-"
            metrics.upstream_failed(upstream, kind)
        head_sent = x.phase in HEAD_SENT
        x.process(ABORT)
        conn = self._detach(x)
        if conn is not None:
            conn.close()
        if not head_sent:
            self._write(error_response(status))
        self._end(x, status, keep_alive=False, error=reason)

    def _refuse(self, status: int, error: str) -> None:
        """Answer a request refused before it became an exchange (a head the parser refused, or
        one not complete in time), log it, and end the connection.

        Logged like any request, with what is known of it: the method and target once its
        request line was read whole (None before), no host, site or upstream.
        """
        if self._refused:  # (the parser repeats its error to every later feed)
            return
        self._refused = True
        sent = self._sent
        self._write(error_response(status))
        edge = self.edge
        if edge.metrics is not None or edge.log is not None:
            duration = time.monotonic() - self._head_since
            if edge.metrics is not None:
                edge.metrics.observe("-", status, duration)
            if edge.log is not None:
                method, target = self.parser.partial_request() or (None, None)
                edge.log(
                    AccessRecord(
                        self.client.address,
                        method.decode("latin-1") if method is not None else None,
                        target.decode("latin-1") if target is not None else None,
                        "",
                        status,
                        self._sent - sent,
                        "",
                        duration,
                        error,
                    )
                )
        self.close()

    def _log(self, x: Exchange, status: int, error: str = "") -> None:
        log_exchange(self.edge, self.client.address, x, status, self._sent - x.sent_before, error)


PureClientProtocol = ClientProtocol
if not TYPE_CHECKING and (_fast := compiled_module("tlsgate.proxy._fast")) is not None:
    ClientProtocol = _fast.ClientProtocol

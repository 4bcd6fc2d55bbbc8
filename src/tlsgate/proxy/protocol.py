"""One client connection: TLS terminated by the loop, HTTP/1.1 exchanges proxied upstream.

The connection is a small state machine driven by callbacks, not a coroutine: bytes from the
client go through the sans-IO request parser, bytes from the upstream through the response
parser, and each event is acted on in the callback that produced it. A keep-alive request whose
upstream connection is pooled therefore costs no task, no future and no queue hop; that is what
the data plane spends its time on otherwise. Only opening a new upstream connection runs as a
task.

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
from typing import cast

from tlsgate.http import (
    BodyKind,
    Data,
    EndOfMessage,
    Event,
    LocalProtocolError,
    RemoteProtocolError,
    Request,
    RequestParser,
    Response,
    Upgraded,
    chunk,
    last_chunk,
    serialize_request_head,
    serialize_response_head,
)
from tlsgate.mtls.identity import ClientIdentity
from tlsgate.proxy.client_auth import admit, peer_identity
from tlsgate.proxy.deadline import Deadline
from tlsgate.proxy.edge import AccessRecord, Edge, error_response
from tlsgate.proxy.exchange import Exchange
from tlsgate.proxy.headers import (
    ClientInfo,
    forwarded_request_headers,
    is_trusted,
    response_head,
)
from tlsgate.proxy.routing import Route, UpstreamState, normalize_host
from tlsgate.proxy.upstream import UpstreamConnection

__all__ = ["ClientProtocol"]

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

# What the connection's one deadline is for (0: nothing).
_IDLE = 1  # between requests: close quietly
_HEAD = 2  # a request head has started but not ended: 408
_BODY = 3  # the client's request body is late: 408
_UPSTREAM = 4  # the upstream's response is late: 504

# Why the client's reading is paused (a bit set: each reason is lifted on its own).
_PAUSE_QUEUE = 1
_PAUSE_UPSTREAM = 2
_PAUSE_TUNNEL = 4

_NO_BODY = BodyKind.NONE


class ClientProtocol(asyncio.BufferedProtocol):
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
        self.edge.connections.add(self)
        if self.edge.metrics is not None:
            self.edge.metrics.connections.inc()
        # The first request gets the (shorter) header timeout, later ones the idle timeout.
        self._deadline.set(self.edge.timeouts.header, _IDLE)

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
        if x is not None and x.request.upgrade is not None and x.request_done:
            # Bytes after an upgrade request, before the upstream answered: tunnel bytes if it
            # switches, never parsed as HTTP.
            x.tunnel_leftover += data
            self._pause(_PAUSE_TUNNEL)
            return
        if x is None and self._deadline.kind != _HEAD:
            self._deadline.set(self.edge.timeouts.header, _HEAD)
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
        self._deadline.cancel()
        if self.tunnel is not None:
            self.tunnel.close()
        x = self._x
        if x is not None:
            self._x = None
            self.busy = False
            conn = self._detach(x)
            if conn is not None:
                conn.close()
            self._log(x, x.status or 499, "client closed the connection")

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
        if kind == _IDLE:
            self.close()
        elif kind == _HEAD:
            # A client that started a request but has not finished its head in time (slowloris).
            self._refuse(408, "request head timeout")
        elif x is None:  # pragma: no cover - exchange deadlines are cleared with the exchange
            self.close()
        elif kind == _BODY:
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
            if x.request_done:
                break  # a pipelined request: it waits until this exchange ends
            if x.conn is None and not x.local_status:
                break  # the upstream connection is being opened: keep the body queued
            event = queue.popleft()
            kind = type(event)
            if kind is Data:
                if not x.local_status:
                    data = cast(Data, event).data
                    x.conn.write(chunk(data) if x.chunked_in else data)  # type: ignore[union-attr]
                    self._deadline.set(self.edge.timeouts.idle, _BODY)
            elif kind is EndOfMessage:
                x.request_done = True
                if x.local_status:
                    self._answer_locally(x)
                    continue
                if x.chunked_in:
                    x.conn.write(last_chunk(cast(EndOfMessage, event).trailers))  # type: ignore[union-attr]
                if self._deadline.kind == _BODY:  # now waiting for the upstream only
                    self._deadline.set(self.edge.timeouts.upstream_response, _UPSTREAM)
            elif kind is Upgraded:
                x.tunnel_leftover = cast(Upgraded, event).leftover + x.tunnel_leftover
        if len(queue) > HIGH_WATER:
            self._pause(_PAUSE_QUEUE)
        elif len(queue) <= LOW_WATER:
            self._resume(_PAUSE_QUEUE)
        if self._x is None and not queue:
            if self._client_error is not None:
                self._refuse(self._client_error.status, str(self._client_error))
            elif self._client_eof:
                self.close()
        elif self._client_error is not None and self._x is not None:
            x = self._x
            if not x.request_done:  # the client's body was malformed mid-stream
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
            self._deadline.set(edge.timeouts.idle, _BODY)
            return
        x.route = route
        xfcc = None
        auth = edge.client_auth.get(id(route.site)) if edge.client_auth else None
        if auth is not None:
            decision, xfcc = admit(auth, self.identity, request)
            if not decision.allowed:  # a valid certificate, but not one this path accepts
                x.local_status, x.local_reason = 403, decision.reason
                self._deadline.set(edge.timeouts.idle, _BODY)
                return
        headers = forwarded_request_headers(
            request.headers,
            self.client,
            host=host_value,
            trusted=self.trusted,
            upgrade=request.upgrade,
            via=route.site.via,
            client_cert=xfcc,
        )
        if x.chunked_in:
            headers.append((b"transfer-encoding", b"chunked"))
        x.head = serialize_request_head(request.method, request.target, headers)
        x.retry_ok = request.method in IDEMPOTENT and request.body is _NO_BODY
        x.attempts = 2 if (x.retry_ok or len(route.balancer.states) > 1) else 1
        self._deadline.set(edge.timeouts.upstream_response, _UPSTREAM)
        self._connect(x)

    def _answer_locally(self, x: Exchange) -> None:
        self._write(error_response(x.local_status, close=False, detail=x.local_reason))
        error = x.local_reason or _ROUTING_ERRORS.get(x.local_status, "")
        self._end(x, x.local_status, keep_alive=x.request.keep_alive, error=error)

    # -- the upstream side ------------------------------------------------------------------------
    def _connect(self, x: Exchange) -> None:
        route = x.route
        assert route is not None
        state = route.balancer.pick(self.loop.time(), exclude=x.exclude)
        x.state = state
        conn = self.edge.pool.take(state.upstream)
        if conn is not None:
            self._attach(x, conn)
            return
        x.connecting = True
        task = self.loop.create_task(
            self.edge.pool.connect(state.upstream, self.edge.timeouts.upstream_connect)
        )
        task.add_done_callback(lambda t: self._connected(x, state, t))

    def _connected(
        self, x: Exchange, state: UpstreamState, task: asyncio.Task[UpstreamConnection]
    ) -> None:
        x.connecting = False
        exc = task.exception()
        if x is not self._x:  # the client went away meanwhile
            if exc is None:
                self.edge.pool.release(task.result())
            return
        if exc is not None:
            assert x.route is not None
            x.route.balancer.failed(state, self.loop.time())
            x.attempts -= 1
            if x.attempts > 0:
                # Nothing was sent yet, so another upstream may take even a non-idempotent one.
                x.exclude = state
                self._connect(x)
                return
            self._abort(x, 502, f"connect {state.upstream}: {exc or 'timeout'}")
            return
        self._attach(x, task.result())

    def _attach(self, x: Exchange, conn: UpstreamConnection) -> None:
        state = x.state
        assert state is not None
        x.conn = conn
        conn.owner = self
        state.active += 1
        conn.parser.expect(x.request.method)
        conn.write(x.head)
        if self._write_paused:
            conn.pause_reading()
        self._pump()

    def upstream_flow(self, conn: UpstreamConnection, paused: bool) -> None:
        if paused:
            self._pause(_PAUSE_UPSTREAM)
        else:
            self._resume(_PAUSE_UPSTREAM)

    def upstream_events(self, conn: UpstreamConnection, events: list[Event]) -> None:
        x = self._x
        if x is None or x.conn is not conn:  # pragma: no cover - owners are cleared on exit
            conn.close()
            return
        for event in events:
            kind = type(event)
            if kind is Data:
                data = cast(Data, event).data
                self._write(chunk(data) if x.chunked_out else data)
            elif kind is Response:
                if not self._on_response(x, cast(Response, event)):
                    return
            elif kind is EndOfMessage:
                if x.chunked_out:
                    self._write(last_chunk(cast(EndOfMessage, event).trailers))
                if x.status != 101:
                    self._finish(x)
                    return
            elif kind is Upgraded:
                self._start_tunnel(x, conn, cast(Upgraded, event).leftover)
                return
        self._flush()
        if self._deadline.kind == _UPSTREAM:
            self._deadline.set(self.edge.timeouts.upstream_response, _UPSTREAM)

    def _on_response(self, x: Exchange, response: Response) -> bool:
        assert x.route is not None and x.state is not None
        x.route.balancer.succeeded(x.state)
        status = response.status
        if status < 200 and status != 101:
            self._write(serialize_response_head(status, response.reason, response.headers))
            return True
        request = x.request
        if status == 101 and request.upgrade is None:
            # A protocol switch nobody asked for would turn the client's connection into a
            # raw tunnel to the upstream: refuse it.
            self._abort(x, 502, "upstream switched protocols unasked")
            return False
        x.status = status
        site = x.route.site
        head, x.chunked_out, x.close_after = response_head(
            response,
            request,
            hsts=self.edge.hsts_for(site),
            via=site.via,
            close=x.close_after or self.edge.draining,
        )
        self._write(head)
        x.head_sent = True
        return True

    def _start_tunnel(self, x: Exchange, conn: UpstreamConnection, leftover: bytes) -> None:
        """After ``101 Switching Protocols``: bytes flow untouched until either side closes."""
        assert self.transport is not None
        if leftover:
            self._write(leftover)
        self._flush()
        self._x = None
        self.busy = False
        self._deadline.clear()
        self._detach(x)
        self._log(x, 101)
        conn.owner = None
        self.tunnel = conn
        conn.tunnel = self.transport
        if x.tunnel_leftover:
            conn.write(x.tunnel_leftover)
        self._resume(_PAUSE_TUNNEL | _PAUSE_QUEUE | _PAUSE_UPSTREAM)

    def upstream_failed(self, conn: UpstreamConnection, error: RemoteProtocolError) -> None:
        x = self._x
        if x is not None and x.conn is conn:
            self._abort(x, 502, f"bad upstream response: {error}")
        else:  # pragma: no cover - owners are cleared on exit
            conn.close()

    def upstream_closed(self, conn: UpstreamConnection) -> None:
        x = self._x
        if x is None or x.conn is not conn:  # pragma: no cover - owners are cleared on exit
            return
        self._detach(x)
        if not x.head_sent and conn.reused and x.request.body is _NO_BODY:
            # A pooled connection the upstream had closed while idle: safe to retry idempotent
            # requests on a fresh one.
            x.attempts -= 1
            if x.attempts > 0 and x.retry_ok:
                x.exclude = None
                self._connect(x)
                return
            self._abort(x, 502, "upstream closed the connection")
            return
        assert x.route is not None and x.state is not None
        x.route.balancer.failed(x.state, self.loop.time())
        self._abort(x, 502, "upstream closed early")

    # -- ending an exchange -------------------------------------------------------------------
    def _detach(self, x: Exchange) -> UpstreamConnection | None:
        """Take the upstream connection off the exchange (it no longer counts as active)."""
        conn = x.conn
        if conn is not None:
            x.conn = None
            if x.state is not None:
                x.state.active -= 1
        return conn

    def _finish(self, x: Exchange) -> None:
        """The upstream's response is complete."""
        conn = self._detach(x)
        assert conn is not None
        if not x.request_done:
            # The upstream answered before reading the whole body (e.g. 413): the rest of the
            # request cannot be skipped reliably, so this connection ends here.
            x.close_after = True
            conn.close()
        elif self.edge.draining:
            conn.close()
        else:
            # Whether the client stays is its own business: the upstream connection is reused
            # whenever its response allows (release checks).
            self.edge.pool.release(conn)
        self._end(x, x.status, keep_alive=not x.close_after)

    def _end(self, x: Exchange, status: int, *, keep_alive: bool, error: str = "") -> None:
        self._x = None
        self.busy = False
        self._log(x, status, error)
        if not keep_alive or self.edge.draining or self.closed:
            self.close()
            return
        self._flush()
        self._resume(_PAUSE_UPSTREAM)
        self._head_since = time.monotonic()  # (a pipelined head waiting is timed from here)
        if not self.parser.head_in_progress:
            self._deadline.set(self.edge.timeouts.idle, _IDLE)
        else:  # the next request's head began (pipelined) while this exchange ran
            self._deadline.set(self.edge.timeouts.header, _HEAD)
        if self._queue or self._client_error is not None or self._client_eof:
            self._pump()

    def _abort(self, x: Exchange, status: int, reason: str) -> None:
        """End an exchange that failed; the client connection does not survive it."""
        metrics = self.edge.metrics
        if metrics is not None and status in (502, 504):
            kind = "unavailable" if status == 502 else "timeout"
            upstream = str(x.state.upstream) if x.state is not None else "-"
            metrics.upstream_errors.labels(upstream, kind).inc()
        conn = self._detach(x)
        if conn is not None:
            conn.close()
        if not x.head_sent:
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
        edge = self.edge
        if edge.metrics is None and edge.log is None:
            return
        duration = time.monotonic() - x.started
        site = x.route.site.hosts[0] if x.route is not None else "-"
        if edge.metrics is not None:
            edge.metrics.observe(site, status, duration)
        if edge.log is not None:
            request = x.request
            edge.log(
                AccessRecord(
                    self.client.address,
                    request.method.decode("latin-1"),
                    request.target.decode("latin-1"),
                    x.host,
                    status,
                    self._sent - x.sent_before,
                    str(x.state.upstream) if x.state is not None else "",
                    duration,
                    error,
                    site if x.route is not None else "",
                )
            )

"""One client connection: TLS already terminated by the loop, HTTP/1.1 exchanges proxied upstream.

The asyncio ``Protocol`` only feeds bytes to the sans-IO parser and hands events to a handler
coroutine; the coroutine decides. Bodies stream in both directions with back-pressure (see
``flow.py``), so a 10 GiB upload or download costs the same memory as a 100-byte one.

What the client is told when things go wrong is short and generic (400/413/421/431/502/504 with a
one-line body): internals, upstream addresses and stack traces stay in our log.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import cast

from tlsgate.config import Limits as LimitsConfig
from tlsgate.config import SiteConfig, Timeouts
from tlsgate.proxy.flow import Closed, EventChannel, WriteGate
from tlsgate.proxy.headers import (
    ClientInfo,
    forwarded_request_headers,
    is_trusted,
    response_headers,
)
from tlsgate.proxy.http import (
    BodyKind,
    Data,
    EndOfMessage,
    Headers,
    Limits,
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
from tlsgate.proxy.metrics import Metrics
from tlsgate.proxy.routing import Route, Router, UpstreamState, normalize_host
from tlsgate.proxy.upstream import UpstreamConnection, UpstreamPool

__all__ = ["AccessRecord", "ClientProtocol", "Edge", "error_response", "is_local_host"]

IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE", b"TRACE"})
_LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".test", ".home.arpa", ".lan")


def is_local_host(host: str) -> bool:
    """Names a browser never reaches on the public internet: no HSTS by default for them."""
    if host == "localhost" or host.endswith(_LOCAL_SUFFIXES) or "." not in host:
        return True
    return host.replace(".", "").isdigit() or ":" in host


def error_response(status: int, *, close: bool = True) -> bytes:
    phrase = HTTPStatus(status).phrase
    body = f"{status} {phrase}\n".encode()
    headers: Headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
    ]
    if close:
        headers.append((b"connection", b"close"))
    return serialize_response_head(status, phrase.encode(), headers) + body


@dataclass(slots=True)
class AccessRecord:
    client: str
    method: str
    target: str
    host: str
    status: int
    bytes_sent: int
    upstream: str
    duration: float
    error: str = ""
    site: str = ""


@dataclass
class Edge:
    """Everything a connection needs, shared by all connections of one worker."""

    router: Router
    pool: UpstreamPool
    timeouts: Timeouts
    limits: LimitsConfig
    port: int
    trusted_proxies: tuple[object, ...] = ()
    log: Callable[[AccessRecord], None] | None = None
    metrics: Metrics | None = None
    draining: bool = False
    connections: set[ClientProtocol] = field(default_factory=set)
    parser_limits: Limits = field(init=False)
    hsts: dict[int, bytes | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.parser_limits = Limits(
            max_header_bytes=self.limits.max_header_bytes,
            max_headers=self.limits.max_headers,
            max_body_bytes=self.limits.max_body_bytes,
        )

    def hsts_for(self, site: SiteConfig) -> bytes | None:
        key = id(site)
        if key not in self.hsts:
            policy = site.hsts
            if policy is None and not site.hsts_explicit:
                from tlsgate.config import HstsPolicy

                public = [h for h in site.hosts if not is_local_host(h.removeprefix("*."))]
                policy = HstsPolicy() if public else None
            self.hsts[key] = policy.header_value() if policy is not None else None
        return self.hsts[key]


class ClientProtocol(asyncio.Protocol):
    def __init__(self, edge: Edge) -> None:
        self.edge = edge
        self.loop = asyncio.get_running_loop()
        self.parser = RequestParser(edge.parser_limits)
        self.events = EventChannel(self.loop)
        self.gate = WriteGate(self.loop)
        self.transport: asyncio.Transport | None = None
        self.client = ClientInfo("", edge.port)
        self.sni_route: Route | None = None
        self.tunnel: UpstreamConnection | None = None
        self.task: asyncio.Task[None] | None = None
        self.busy = False  # inside an exchange (draining waits for it)
        self.must_close = False  # the exchange left the connection unusable for another
        self._head_timer: asyncio.TimerHandle | None = None
        self._awaiting_head = True
        self._out: list[bytes] = []
        self._out_size = 0

    # -- asyncio callbacks -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's SSL transport is not an asyncio.Transport subclass, but has its interface.
        self.transport = cast(asyncio.Transport, transport)
        self.events.attach(self.transport)
        peer = transport.get_extra_info("peername")
        self.client = ClientInfo(peer[0] if peer else "", self.edge.port)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        ssl_object: ssl.SSLObject | None = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            self.sni_route = self._route_for_context(ssl_object)
        self.edge.connections.add(self)
        if self.edge.metrics is not None:
            self.edge.metrics.connections.inc()
        self.task = self.loop.create_task(self.run())

    def _route_for_context(self, ssl_object: ssl.SSLObject) -> Route | None:
        name = getattr(ssl_object, "tlsgate_sni", None)
        return self.edge.router.match(normalize_host(name)) if name else None

    def data_received(self, data: bytes) -> None:
        if self.tunnel is not None:
            self.tunnel.write(data)
            return
        if self._awaiting_head and self._head_timer is None:
            self._head_timer = self.loop.call_later(self.edge.timeouts.header, self._head_timeout)
        try:
            events = self.parser.feed(data)
        except RemoteProtocolError as exc:
            self.events.fail(exc)
            return
        self.events.push(events)

    def _head_timeout(self) -> None:
        # A client that started a request but has not finished its head in time (slowloris).
        if self._awaiting_head and self.transport is not None:
            self.transport.write(error_response(408))
            self.transport.close()

    def eof_received(self) -> bool | None:
        try:
            self.events.push(self.parser.feed_eof())
        except RemoteProtocolError as exc:
            self.events.fail(exc)
        self.events.close()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.events.close()
        self.gate.close()
        self.edge.connections.discard(self)
        if self._head_timer is not None:
            self._head_timer.cancel()
        if self.tunnel is not None:
            self.tunnel.close()

    def pause_writing(self) -> None:
        self.gate.pause()

    def resume_writing(self) -> None:
        self.gate.resume()

    # -- the exchange loop ---------------------------------------------------------------------
    def _write(self, data: bytes) -> None:
        """Queue bytes for the client; :meth:`_flush` sends them as one TLS write.

        A small response is head + body + terminator; one ``write`` makes one TLS record and
        one syscall instead of three, which is most of the per-request cost of the data plane.
        """
        self._out.append(data)
        self._out_size += len(data)
        if self._out_size >= 65536:
            self._flush()

    def _flush(self) -> None:
        if not self._out:
            return
        data = self._out[0] if len(self._out) == 1 else b"".join(self._out)
        self._out.clear()
        self._out_size = 0
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    async def run(self) -> None:
        timeouts = self.edge.timeouts
        timeout = timeouts.header
        try:
            while True:
                self._awaiting_head = True
                event = await self.events.get(timeout)
                self._awaiting_head = False
                if self._head_timer is not None:
                    self._head_timer.cancel()
                    self._head_timer = None
                if not isinstance(event, Request):  # pragma: no cover - parser guarantees order
                    break
                self.busy = True
                keep_alive = await self.exchange(event)
                self._flush()
                self.busy = False
                if not keep_alive or self.edge.draining or self.tunnel is not None:
                    break
                timeout = timeouts.idle
        except RemoteProtocolError as exc:
            self._write(error_response(exc.status))
        except (Closed, TimeoutError, ConnectionError):
            pass
        finally:
            self._flush()
            self.busy = False
            if self.tunnel is None:
                self.close()

    async def exchange(self, request: Request) -> bool:
        """Proxy one request; returns whether the client connection may carry another."""
        started = time.monotonic()
        host_value = b""
        for name, value in request.headers:
            if name == b"host":
                host_value = value
                break
        host = normalize_host(host_value) if host_value else ""
        route = self.edge.router.match(host) if host else None
        if route is None and (not host or is_local_host(host)) and self.sni_route is None:
            route = self.edge.router.default
        if route is None and not host:
            route = self.sni_route
        record = AccessRecord(
            self.client.address,
            request.method.decode("latin-1"),
            request.target.decode("latin-1"),
            host,
            0,
            0,
            "",
            0.0,
        )
        if route is None or (self.sni_route is not None and route is not self.sni_route):
            # Unknown host, or a Host header naming another site than the TLS handshake did.
            status = 421 if route is not None else 404
            await self._discard_body()
            self._write(error_response(status, close=False))
            self._log(record, status, started)
            return True
        record.site = route.site.hosts[0]
        keep_alive = request.keep_alive
        try:
            status = await self._forward(request, route, host_value, record)
        except RemoteProtocolError as exc:  # the client's body was malformed mid-stream
            self._write(error_response(exc.status))
            self._log(record, exc.status, started, "bad request body")
            return False
        except _UpstreamFailure as exc:
            if self.edge.metrics is not None:
                kind = {502: "unavailable", 504: "timeout"}.get(exc.status, "error")
                self.edge.metrics.upstream_errors.labels(record.upstream or "-", kind).inc()
            if not exc.head_sent:
                self._write(error_response(exc.status))
            self._log(record, exc.status, started, exc.reason)
            return False
        self._log(record, status, started)
        return keep_alive and not self.must_close

    async def _discard_body(self) -> None:
        while True:
            event = await self.events.get(self.edge.timeouts.idle)
            if isinstance(event, EndOfMessage):
                return

    def _log(self, record: AccessRecord, status: int, started: float, error: str = "") -> None:
        record.status = status
        record.duration = time.monotonic() - started
        record.error = error
        if self.edge.metrics is not None:
            self.edge.metrics.observe(record.site or "-", status, record.duration)
        if self.edge.log is not None:
            self.edge.log(record)

    async def _connect(
        self, route: Route, exclude: UpstreamState | None
    ) -> tuple[UpstreamConnection, UpstreamState]:
        state = route.balancer.pick(time.monotonic(), exclude=exclude)
        try:
            conn = await self.edge.pool.acquire(state.upstream, self.edge.timeouts.upstream_connect)
        except (OSError, TimeoutError) as exc:
            route.balancer.failed(state, time.monotonic())
            failure = _UpstreamFailure(502, f"connect {state.upstream}: {exc or 'timeout'}")
            failure.state = state
            raise failure from None
        return conn, state

    async def _forward(
        self, request: Request, route: Route, host: bytes, record: AccessRecord
    ) -> int:
        edge = self.edge
        site = route.site
        upgrade = request.upgrade
        headers = forwarded_request_headers(
            request.headers,
            self.client,
            host=host,
            trusted=is_trusted(self.client.address, edge.trusted_proxies),  # type: ignore[arg-type]
            upgrade=upgrade,
            via=site.via,
        )
        if request.body is BodyKind.CHUNKED:
            headers.append((b"transfer-encoding", b"chunked"))
        head = serialize_request_head(request.method, request.target, headers)
        retry_ok = request.method in IDEMPOTENT and request.body is BodyKind.NONE
        exclude: UpstreamState | None = None
        attempts = 2 if (retry_ok or len(route.balancer.states) > 1) else 1
        for attempt in range(attempts):
            try:
                conn, state = await self._connect(route, exclude)
            except _UpstreamFailure as failure:
                # Nothing was sent yet, so another upstream may take even a non-idempotent request.
                if attempt + 1 < attempts:
                    exclude = failure.state
                    continue
                raise
            record.upstream = str(state.upstream)
            state.active += 1
            try:
                return await self._exchange_with(conn, state, route, request, head)
            except _StaleConnection:
                # A pooled connection the upstream had closed: safe to retry idempotent requests.
                exclude = None
                if attempt + 1 < attempts and retry_ok:
                    continue
                raise _UpstreamFailure(502, "upstream closed the connection") from None
            finally:
                state.active -= 1
        raise _UpstreamFailure(502, "no upstream reachable")  # pragma: no cover

    async def _exchange_with(
        self,
        conn: UpstreamConnection,
        state: UpstreamState,
        route: Route,
        request: Request,
        head: bytes,
    ) -> int:
        edge = self.edge
        timeouts = edge.timeouts
        conn.parser.expect(request.method)
        conn.write(head)
        upload: asyncio.Task[None] | None = None
        if request.body is not BodyKind.NONE:
            upload = self.loop.create_task(self._upload(conn, request.body is BodyKind.CHUNKED))
        else:
            await self.events.get(timeouts.idle)  # the request's EndOfMessage
        head_sent = False
        status = 0
        chunked_out = False
        close_after = not request.keep_alive or edge.draining
        try:
            while True:
                if not conn.events.pending:
                    self._flush()
                try:
                    event = await conn.events.get(timeouts.upstream_response)
                except TimeoutError:
                    raise _UpstreamFailure(504, "upstream response timeout", head_sent) from None
                except Closed:
                    if not head_sent and conn.reused and upload is None:
                        conn.close()
                        raise _StaleConnection() from None
                    route.balancer.failed(state, time.monotonic())
                    raise _UpstreamFailure(502, "upstream closed early", head_sent) from None
                except RemoteProtocolError as exc:
                    raise _UpstreamFailure(
                        502, f"bad upstream response: {exc}", head_sent
                    ) from None
                if isinstance(event, Response):
                    route.balancer.succeeded(state)
                    if 100 <= event.status < 200 and event.status != 101:
                        self._write(
                            serialize_response_head(event.status, event.reason, event.headers)
                        )
                        continue
                    if event.status == 101 and request.upgrade is None:
                        # A protocol switch nobody asked for would turn the client's
                        # connection into a raw tunnel to the upstream: refuse it.
                        raise _UpstreamFailure(502, "upstream switched protocols unasked")
                    status = event.status
                    chunked_out = self._write_response_head(event, request, route, close_after)
                    head_sent = True
                    if event.status == 101:
                        close_after = True
                    if not request.keep_alive or (
                        event.body is BodyKind.UNTIL_CLOSE and request.version != b"1.1"
                    ):
                        close_after = True
                elif isinstance(event, Data):
                    self._write(chunk(event.data) if chunked_out else event.data)
                    if self.gate.paused:
                        self._flush()
                        await self.gate.drain(timeouts.idle)
                elif isinstance(event, EndOfMessage):
                    if chunked_out:
                        self._write(last_chunk(event.trailers))
                    if status != 101:
                        break
                elif isinstance(event, Upgraded):
                    self._flush()
                    await self._tunnel(conn, event.leftover)
                    return status
        except BaseException:
            if upload is not None:
                upload.cancel()
            conn.close()
            raise
        if upload is not None:
            if not upload.done():
                # The upstream answered before reading the whole body (e.g. 413): the rest of
                # the request cannot be skipped reliably, so this connection ends here.
                upload.cancel()
                conn.close()
                self.must_close = True
                return status
            upload.result()
        if close_after or self.edge.draining:
            conn.close()
            self.must_close = True
            return status
        edge.pool.release(conn)
        return status

    def _write_response_head(
        self, response: Response, request: Request, route: Route, close: bool
    ) -> bool:
        """Send the response head; returns whether the body is re-framed as chunked."""
        upgrade = None
        if response.status == 101:
            for name, value in response.headers:
                if name == b"upgrade":
                    upgrade = value
        headers = response_headers(
            response.headers,
            hsts=self.edge.hsts_for(route.site),
            via=route.site.via,
            upgrade=upgrade,
        )
        chunked = False
        if response.body is BodyKind.CHUNKED or (
            response.body is BodyKind.UNTIL_CLOSE and request.version == b"1.1"
        ):
            headers.append((b"transfer-encoding", b"chunked"))
            chunked = True
        if close and response.status != 101:
            headers.append((b"connection", b"close"))
        self._write(serialize_response_head(response.status, response.reason, headers))
        return chunked

    async def _upload(self, conn: UpstreamConnection, chunked: bool) -> None:
        timeout = self.edge.timeouts.idle
        while True:
            event = await self.events.get(timeout)
            if isinstance(event, Data):
                conn.write(chunk(event.data) if chunked else event.data)
                if conn.gate.paused:
                    await conn.gate.drain(timeout)
            elif isinstance(event, EndOfMessage):
                if chunked:
                    conn.write(last_chunk(event.trailers))
                return

    async def _tunnel(self, conn: UpstreamConnection, upstream_leftover: bytes) -> None:
        """After ``101 Switching Protocols``: bytes flow untouched until either side closes."""
        assert self.transport is not None and conn.transport is not None
        try:
            event = await self.events.get(1.0)  # the client parser's Upgraded, already queued
        except (TimeoutError, Closed):
            event = None
        if upstream_leftover:
            self._write(upstream_leftover)
            self._flush()
        if isinstance(event, Upgraded) and event.leftover:
            conn.write(event.leftover)
        self.tunnel = conn
        conn.tunnel = self.transport


class _UpstreamFailure(Exception):
    def __init__(self, status: int, reason: str, head_sent: bool = False) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.head_sent = head_sent
        self.state: UpstreamState | None = None


class _StaleConnection(Exception):
    pass

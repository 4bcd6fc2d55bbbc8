"""``tlsgate tunnel``: plain connections in, mutual TLS out, with a renewed client identity.

A service that speaks plain HTTP (or any TCP protocol) connects to a loopback port; the tunnel
opens TLS to the target for it, presenting the service's client certificate (from the internal
CA, renewed in the background: each new upstream connection uses the newest) and verifying the
server's chain and name or SPIFFE ID (:mod:`tlsgate.client.context`).

**HTTP mode** (the default) reads HTTP/1.1 with the sans-IO parsers of
:mod:`tlsgate.http` and forwards each request with ``Host`` set to the target's authority
(the server routes by it), bodies streamed in their framing (Content-Length, chunked with
trailers), keep-alive on both sides, ``Connection: close`` honoured, and an Upgrade answered by
``101`` turned into a byte pipe. One upstream connection serves one local connection; it is
replaced between two requests once the certificate it was opened with has been renewed, so no
connection outlives its certificate by more than one exchange. When the target cannot be
reached, or refuses or is refused in TLS, the local client gets ``502`` with a one-line reason
(and the log a line).

**TCP mode** (``--tcp``) is a byte pipe both ways with back-pressure and half-close: the
local side's end of input becomes a TLS ``close_notify`` (the TLS 1.3 half-close), and the
server's ``close_notify`` a TCP ``FIN`` to the local side; each direction goes on until its own
end. asyncio's TLS transports cannot half-close (``write_eof`` is not implemented), so TLS runs
here over plain TCP streams with ``ssl.SSLObject`` (:class:`TlsStream`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from tlsgate.client.context import ReloadingIdentity
from tlsgate.client.tlsstream import READ_SIZE, TlsStream, TunnelError, describe_failure, pipe
from tlsgate.client.tunnel_config import TunnelConfig
from tlsgate.config.listen import bind_listeners
from tlsgate.errors import TlsgateError
from tlsgate.http import (
    BodyKind,
    Data,
    EndOfMessage,
    Event,
    Headers,
    LocalProtocolError,
    RemoteProtocolError,
    Request,
    RequestParser,
    Response,
    ResponseParser,
    Upgraded,
    chunk,
    last_chunk,
    serialize_request_head,
    serialize_response_head,
)

__all__ = ["TlsStream", "Tunnel", "TunnelError", "run_tunnel"]

log = logging.getLogger("tlsgate.tunnel")

#: An upstream connection idle this long is not reused: servers close idle ones (serve after
#: 75 s), and a request sent on a connection closing at that moment could not be retried.
UPSTREAM_REUSE_IDLE = 30.0
#: Headers that describe one hop, never forwarded as they came (RFC 9110 7.6.1).
_HOP_BY_HOP = frozenset(
    [
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"host",
    ]
)


# -- parsed events on demand --------------------------------------------------------------------
class _Events:
    """One side's HTTP events, read from the wire only when the queue is empty."""

    def __init__(
        self, parser: RequestParser | ResponseParser, read: Callable[[], Awaitable[bytes]]
    ) -> None:
        self.parser = parser
        self._read = read
        self._queue: deque[Event] = deque()
        self._eof = False
        self.seen_bytes = False

    async def next(self) -> Event | None:
        """The next event; None at the end of input with nothing pending."""
        while not self._queue:
            if self._eof:
                return None
            data = await self._read()
            if data:
                self.seen_bytes = True
                self._queue.extend(self.parser.feed(data))
            else:
                self._eof = True
                self._queue.extend(self.parser.feed_eof())
        return self._queue.popleft()

    def upgraded(self) -> bytes:
        """The bytes after an upgrade's head (already parsed with it)."""
        while self._queue:
            event = self._queue.popleft()
            if isinstance(event, Upgraded):
                return event.leftover
        return b""


@dataclass
class _Upstream:
    tls: TlsStream
    parser: ResponseParser
    events: _Events
    generation: int
    used: bool = False
    idle_since: float = 0.0


class _Answered(Exception):
    """The response has started going to the client: a failure now can only cut the line."""


def _tokens(value: bytes) -> set[bytes]:
    return {t.strip().lower() for t in value.split(b",") if t.strip()}


def _end_to_end(headers: Headers) -> Headers:
    """Headers without the hop-by-hop ones, including those the Connection header names."""
    named: set[bytes] = set()
    for name, value in headers:
        if name == b"connection":
            named |= _tokens(value)
    return [(n, v) for n, v in headers if n not in _HOP_BY_HOP and n not in named]


def _plain_response(status: int, text: str) -> bytes:
    body = f"tlsgate tunnel: {text}\n".encode("utf-8", "replace")
    head = serialize_response_head(
        status,
        b"",
        [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ],
    )
    return head + body


# -- the tunnel ---------------------------------------------------------------------------------
@dataclass
class _Conn:
    task: asyncio.Task[None]
    idle: bool = False


class Tunnel:
    """Accepts local connections and carries each over mutual TLS to the target."""

    def __init__(self, config: TunnelConfig, identity: ReloadingIdentity) -> None:
        self.config = config
        self.identity = identity
        self.where = str(config.target)
        if (config.connect_host, config.connect_port) != (config.target.host, config.target.port):
            self.where += f" (at {config.connect_host}:{config.connect_port})"
        self._conns: dict[asyncio.Task[None], _Conn] = {}
        self.port = 0

    async def dial(self) -> tuple[TlsStream, int]:
        """A verified TLS connection presenting the newest certificate, and its generation."""
        self.identity.refresh()
        generation = self.identity.generation
        cfg = self.config
        tls = await TlsStream.connect(
            cfg.connect_host,
            cfg.connect_port,
            self.identity.context,
            cfg.server_name,
            connect_timeout=cfg.connect_timeout,
            handshake_timeout=cfg.handshake_timeout,
            where=self.where,
        )
        return tls, generation

    async def run(
        self,
        stop: asyncio.Event,
        ready: Callable[[int], None] | None = None,
        listeners: Sequence[socket.socket] | None = None,
    ) -> None:
        """Serve until ``stop`` is set, renewing the identity meanwhile.

        ``listeners``: sockets bound before the identity was issued (``tlsgate tunnel`` binds
        first, so a busy port costs no certificate); by default the configured address.
        """
        cfg = self.config
        if listeners is None:
            listeners = bind_listeners(cfg.listen_host, cfg.listen_port)
        servers = [
            await asyncio.start_server(self._accept, sock=sock, limit=READ_SIZE)
            for sock in listeners
        ]
        self.port = int(servers[0].sockets[0].getsockname()[1])
        renew = asyncio.create_task(self.identity.run(), name="tlsgate-renewal")
        if ready is not None:
            ready(self.port)
        try:
            await stop.wait()
        finally:
            for server in servers:
                server.close()
            await self._drain()
            renew.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renew
            for server in servers:
                await server.wait_closed()

    async def _drain(self) -> None:
        """Idle keep-alive connections go at once, busy ones get ``drain_timeout``."""
        for conn in list(self._conns.values()):
            if conn.idle:
                conn.task.cancel()
        pending = [c.task for c in self._conns.values()]
        if pending:
            _, late = await asyncio.wait(pending, timeout=self.config.drain_timeout)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=2)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        conn = _Conn(task)
        self._conns[task] = conn
        try:
            if self.config.tcp:
                await self._tcp(reader, writer)
            else:
                await self._http(reader, writer, conn)
        except asyncio.CancelledError:
            pass
        except Exception:  # a bug must cost one connection, not the tunnel
            log.exception("tunnel connection failed")
        finally:
            del self._conns[task]
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(2):
                    await writer.wait_closed()

    # -- TCP mode ----------------------------------------------------------------------------
    async def _tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        try:
            tls, _ = await self.dial()
        except TunnelError as exc:
            log.warning("tunnel: %s -> %s: %s", _peer(peer), self.where, exc)
            writer.transport.abort()
            return
        try:
            await pipe(reader, writer, tls)
        finally:
            await tls.close()

    # -- HTTP mode ---------------------------------------------------------------------------
    async def _http(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: _Conn
    ) -> None:
        peer = _peer(writer.get_extra_info("peername"))

        async def read_client() -> bytes:
            return await reader.read(READ_SIZE)

        client = _Events(RequestParser(), read_client)
        upstream: _Upstream | None = None
        try:
            while True:
                conn.idle = True
                try:
                    async with asyncio.timeout(self.config.idle_timeout):
                        event = await client.next()
                except TimeoutError:
                    return
                except RemoteProtocolError as exc:
                    writer.write(_plain_response(exc.status, str(exc)))
                    await writer.drain()
                    return
                finally:
                    conn.idle = False
                if event is None:
                    return
                if not isinstance(event, Request):  # pragma: no cover - the parser's contract
                    raise LocalProtocolError(f"expected a request head, got {event!r}")
                upstream, keep = await self._exchange(event, client, upstream, writer, reader, peer)
                if not keep:
                    return
        finally:
            if upstream is not None:
                await upstream.tls.close()

    def _upstream_head(self, request: Request) -> bytes:
        headers: Headers = [(b"host", self.config.target.authority.encode("ascii"))]
        headers += _end_to_end(request.headers)
        for name, value in request.headers:  # the body's framing, as it came
            if name == b"transfer-encoding":
                headers.append((name, value))
        if request.upgrade is not None:
            headers += [(b"connection", b"upgrade"), (b"upgrade", request.upgrade)]
        elif not request.keep_alive:
            headers.append((b"connection", b"close"))
        return serialize_request_head(request.method, request.target, headers)

    async def _fresh_upstream(self) -> _Upstream:
        tls, generation = await self.dial()
        parser = ResponseParser()
        return _Upstream(tls, parser, _Events(parser, tls.recv), generation)

    async def _exchange(
        self,
        request: Request,
        client: _Events,
        upstream: _Upstream | None,
        writer: asyncio.StreamWriter,
        reader: asyncio.StreamReader,
        peer: str,
    ) -> tuple[_Upstream | None, bool]:
        """One request and its response; returns the upstream to keep and whether to go on."""
        loop = asyncio.get_running_loop()
        self.identity.refresh()
        if upstream is not None and (
            not upstream.parser.reusable
            or upstream.generation != self.identity.generation
            or loop.time() - upstream.idle_since > UPSTREAM_REUSE_IDLE
        ):
            await upstream.tls.close()  # renewed (or worn out): the next one presents the new
            upstream = None
        has_body = request.body is not BodyKind.NONE
        if not has_body:
            # Parsed with the head; taken now so that sending again needs nothing from the client.
            end = await client.next()
            if not isinstance(end, EndOfMessage):  # pragma: no cover - the parser's contract
                raise LocalProtocolError(f"expected the end of a request, got {end!r}")
        # A request without a body can be sent again if a reused connection turns out closed.
        retry = not has_body and request.upgrade is None
        head = self._upstream_head(request)
        for attempt in range(2):
            if upstream is None:
                try:
                    upstream = await self._fresh_upstream()
                except TunnelError as exc:
                    return None, await self._fail(writer, peer, request, str(exc))
            upstream.parser.expect(request.method)
            reused = upstream.used
            upstream.used = True
            try:
                await upstream.tls.send(head)
                keep = await self._forward(request, client, upstream, writer, reader, has_body)
            except _StaleConnection:
                tls13 = upstream.tls.protocol == "TLSv1.3"
                upstream.tls.abort()
                upstream = None
                if reused and retry and attempt == 0:
                    continue
                why = f"{self.where} closed the connection without answering"
                if not reused and tls13:
                    # TLS 1.3 servers judge a client certificate after the handshake, and a
                    # refusal's alert is often lost in the reset that follows it.
                    why = (
                        f"{self.where} closed the connection right after the TLS handshake: "
                        "it refused our client certificate, most likely"
                    )
                return None, await self._fail(writer, peer, request, why)
            except _Answered as exc:  # too late for a 502: cut the line, and say why in the log
                log.warning("tunnel: %s %s -> %s: %s", peer, _line(request), self.where, exc)
                upstream.tls.abort()
                return None, False
            except (TunnelError, RemoteProtocolError, OSError) as exc:
                upstream.tls.abort()
                reason = (
                    str(exc) if isinstance(exc, TlsgateError) else describe_failure(exc, self.where)
                )
                return None, await self._fail(writer, peer, request, reason)
            if keep and upstream.parser.reusable:
                upstream.idle_since = loop.time()
                return upstream, True
            await upstream.tls.close()
            return None, keep
        raise AssertionError("unreachable")  # pragma: no cover

    async def _fail(
        self, writer: asyncio.StreamWriter, peer: str, request: Request, why: str
    ) -> bool:
        log.warning("tunnel: %s %s -> %s: 502: %s", peer, _line(request), self.where, why)
        writer.write(_plain_response(502, why))
        with contextlib.suppress(OSError):
            await writer.drain()
        return False  # the request's body may be half-read: this connection ends here

    async def _forward(
        self,
        request: Request,
        client: _Events,
        upstream: _Upstream,
        writer: asyncio.StreamWriter,
        reader: asyncio.StreamReader,
        has_body: bool,
    ) -> bool:
        """Stream the body up and the response down at once (a server may answer before it has
        read the body); True if the local connection can carry another request."""
        upload = asyncio.create_task(_upload(request, client, upstream.tls)) if has_body else None
        download = asyncio.create_task(self._download(request, upstream, writer, upload))
        tasks = {download} if upload is None else {upload, download}
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            if upload is not None and upload in done and upload.exception() is not None:
                raise _Answered(f"reading the request failed: {upload.exception()}")
            result = await download
        finally:
            for task in tasks:
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
        if result is _UPGRADE:
            await pipe(reader, writer, upstream.tls, client.upgraded(), upstream.events.upgraded())
            return False
        body_done = upload is None or (
            upload.done() and not upload.cancelled() and upload.exception() is None
        )
        return result is True and body_done

    async def _download(
        self,
        request: Request,
        upstream: _Upstream,
        writer: asyncio.StreamWriter,
        upload: asyncio.Task[None] | None,
    ) -> object:
        """Relay the response (and any 1xx before it): True to keep the local connection,
        False to close it, or _UPGRADE after a 101."""
        final: Response | None = None
        rechunk = keep = False
        while True:
            try:
                event = await upstream.events.next()
            except (TunnelError, RemoteProtocolError, OSError) as exc:
                if final is not None:
                    raise _Answered(str(exc)) from exc
                if isinstance(exc, ConnectionError) and not upstream.events.seen_bytes:
                    raise _StaleConnection from exc  # reset before any answer: as good as EOF
                raise
            if event is None:
                if final is None:
                    raise _StaleConnection
                raise _Answered(f"{self.where} closed the connection in the middle of a response")
            if isinstance(event, Response):
                headers = _end_to_end(event.headers)
                if event.status < 200 and event.status != 101:
                    writer.write(serialize_response_head(event.status, event.reason, headers))
                    await writer.drain()
                    continue
                final = event
                if event.status == 101:
                    if request.upgrade is None:
                        raise TunnelError(f"{self.where} switched protocols unasked")
                    headers.append((b"connection", b"upgrade"))
                    headers += [(n, v) for n, v in event.headers if n == b"upgrade"]
                    writer.write(serialize_response_head(101, event.reason, headers))
                    await writer.drain()
                    return _UPGRADE
                # A body still coming from the client when the answer is already here: close
                # after it (what is left of the body cannot be told from the next request).
                keep = (
                    request.keep_alive
                    and request.upgrade is None
                    and event.body is not BodyKind.UNTIL_CLOSE
                    and (upload is None or upload.done())
                )
                if event.body is BodyKind.CHUNKED:
                    if request.version == b"1.1":
                        rechunk = True
                        headers += [(n, v) for n, v in event.headers if n == b"transfer-encoding"]
                    else:  # an HTTP/1.0 client reads the body until the connection closes
                        keep = False
                headers += [(n, v) for n, v in event.headers if n == b"trailer" and rechunk]
                if not keep:
                    headers.append((b"connection", b"close"))
                elif request.version == b"1.0":
                    headers.append((b"connection", b"keep-alive"))
                writer.write(serialize_response_head(event.status, event.reason, headers))
                await writer.drain()
            elif isinstance(event, Data):
                writer.write(chunk(event.data) if rechunk else event.data)
                await writer.drain()
            elif isinstance(event, EndOfMessage):
                if final is None:
                    continue  # the end of a 1xx
                if rechunk:
                    writer.write(last_chunk(event.trailers))
                    await writer.drain()
                return keep
            else:  # pragma: no cover - Upgraded comes only after a 101, handled above
                raise LocalProtocolError(f"unexpected {event!r}")


class _StaleConnection(Exception):
    """The upstream ended before any byte of a response."""


_UPGRADE = object()


async def _upload(request: Request, client: _Events, tls: TlsStream) -> None:
    """The request's body, re-framed as it came (chunks re-chunked, trailers kept)."""
    chunked = request.body is BodyKind.CHUNKED
    while True:
        event = await client.next()
        if event is None:
            raise RemoteProtocolError("the client closed the connection in the middle of a body")
        if isinstance(event, Data):
            await tls.send(chunk(event.data) if chunked else event.data)
        elif isinstance(event, EndOfMessage):
            if chunked:
                await tls.send(last_chunk(event.trailers))
            return
        else:  # pragma: no cover - a head or Upgraded cannot come before the EndOfMessage
            raise LocalProtocolError(f"unexpected {event!r} in a request body")


def _peer(peer: object) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)


def _line(request: Request) -> str:
    method = request.method.decode("ascii", "replace")
    return f"{method} {request.target.decode('ascii', 'replace')}"


# -- the process --------------------------------------------------------------------------------
def run_tunnel(
    config: TunnelConfig,
    identity: ReloadingIdentity,
    ready: Callable[[int], None] | None = None,
    listeners: Sequence[socket.socket] | None = None,
) -> int:
    """Run until SIGTERM or SIGINT; 0 after a clean stop."""
    try:
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    except ImportError:  # pragma: no cover - uvloop is a dependency
        loop = asyncio.new_event_loop()

    async def main() -> None:
        stop = asyncio.Event()
        running = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            running.add_signal_handler(sig, stop.set)
        await Tunnel(config, identity).run(stop, ready, listeners)

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    log.info("tunnel: stopped")
    return 0

"""The upstream half of an exchange: taking a pooled or opening a new upstream connection,
retrying on another one, relaying the response, and handing over to a tunnel after a ``101``.

A base class of :class:`~tlsgate.proxy.protocol.ClientProtocol` rather than an object of its
own: the upstream connection calls its owner back on every read (``upstream_events``), and a hop
between two objects there would be paid per response. It has a module of its own so that each
half of the exchange reads apart; what it uses of the client half is declared on the class.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, cast

from tlsgate.http import (
    BodyKind,
    Data,
    EndOfMessage,
    Event,
    RemoteProtocolError,
    Response,
    Upgraded,
    chunk,
    last_chunk,
    serialize_response_head,
)
from tlsgate.proxy.deadline import Timeout
from tlsgate.proxy.edge import Edge
from tlsgate.proxy.exchange import Exchange
from tlsgate.proxy.flow import DEADLINE_UPSTREAM, PAUSE_QUEUE, PAUSE_TUNNEL, PAUSE_UPSTREAM
from tlsgate.proxy.headers import response_head
from tlsgate.proxy.phase import (
    ATTACH,
    AWAITING_RESPONSE,
    CONNECT,
    DONE,
    DUPLEX,
    RESPONSE_END,
    RESPONSE_HEAD,
    SENDING_BODY,
    SWITCH,
    UPGRADED,
)
from tlsgate.proxy.routing import UpstreamState
from tlsgate.proxy.upstream import UpstreamConnection

__all__ = ["UpstreamSide"]

_NO_BODY = BodyKind.NONE


class UpstreamSide:
    """The upstream half of :class:`~tlsgate.proxy.protocol.ClientProtocol` (its base class)."""

    # Provided by the client half.
    edge: Edge
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport | None
    tunnel: UpstreamConnection | None
    busy: bool
    _x: Exchange | None
    _write_paused: bool
    _deadline: Timeout

    if TYPE_CHECKING:

        def _pump(self) -> None: ...
        def _write(self, data: bytes) -> None: ...
        def _flush(self) -> None: ...
        def _pause(self, reason: int) -> None: ...
        def _resume(self, reason: int) -> None: ...
        def _abort(self, x: Exchange, status: int, reason: str) -> None: ...
        def _end(self, x: Exchange, status: int, *, keep_alive: bool, error: str = "") -> None: ...
        def _log(self, x: Exchange, status: int, error: str = "") -> None: ...

    def _connect(self, x: Exchange) -> None:
        route = x.route
        assert route is not None
        x.process(CONNECT)
        state = route.balancer.pick(self.loop.time(), exclude=x.exclude)
        x.state = state
        conn = self.edge.pool.take(state.upstream)
        if conn is not None:
            self._attach(x, conn)
            return
        task = self.loop.create_task(
            self.edge.pool.connect(state.upstream, self.edge.timeouts.upstream_connect)
        )
        task.add_done_callback(lambda t: self._connected(x, state, t))

    def _connected(
        self, x: Exchange, state: UpstreamState, task: asyncio.Task[UpstreamConnection]
    ) -> None:
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
        x.process(ATTACH)
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
            self._pause(PAUSE_UPSTREAM)
        else:
            self._resume(PAUSE_UPSTREAM)

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
                if x.status == 0:
                    # The end of an interim response (100 Continue, 103 Early Hints: the
                    # parser ends every message); the final response follows.
                    continue
                if x.chunked_out:
                    self._write(last_chunk(cast(EndOfMessage, event).trailers))
                request_read = x.phase is not DUPLEX
                if x.process(RESPONSE_END) is DONE:  # (a 101's end is not the exchange's)
                    self._finish(x, request_read)
                    return
            elif kind is Upgraded:
                self._start_tunnel(x, conn, cast(Upgraded, event).leftover)
                return
        self._flush()
        if self._deadline.kind == DEADLINE_UPSTREAM:
            self._deadline.set(self.edge.timeouts.upstream_response, DEADLINE_UPSTREAM)

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
        x.process(SWITCH if status == 101 else RESPONSE_HEAD)
        self._write(head)
        return True

    def _start_tunnel(self, x: Exchange, conn: UpstreamConnection, leftover: bytes) -> None:
        """After ``101 Switching Protocols``: bytes flow untouched until either side closes."""
        assert self.transport is not None
        if leftover:
            self._write(leftover)
        self._flush()
        x.process(UPGRADED)
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
        self._resume(PAUSE_TUNNEL | PAUSE_QUEUE | PAUSE_UPSTREAM)

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
        phase = x.phase
        if (
            (phase is SENDING_BODY or phase is AWAITING_RESPONSE)
            and conn.reused
            and x.request.body is _NO_BODY
        ):
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

    def _detach(self, x: Exchange) -> UpstreamConnection | None:
        """Take the upstream connection off the exchange (it no longer counts as active)."""
        conn = x.conn
        if conn is not None:
            x.conn = None
            if x.state is not None:
                x.state.active -= 1
        return conn

    def _finish(self, x: Exchange, request_read: bool) -> None:
        """The upstream's response is complete (``request_read``: and so was the request)."""
        conn = self._detach(x)
        assert conn is not None
        if not request_read:
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

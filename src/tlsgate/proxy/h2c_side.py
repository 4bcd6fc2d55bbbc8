"""The h2c half of an HTTP/2 stream: relaying it as a stream of an ``h2c://`` upstream.

A base class of :class:`~tlsgate.proxy.h2_stream.H2Stream`, as
:class:`~tlsgate.proxy.upstream_side.UpstreamSide` is for HTTP/1.1 upstreams: same exchange,
phases, routing and forwarding headers, but the request goes out as HTTP/2 fields and DATA
(``te: trailers`` kept, which gRPC requires) and the response comes back with its trailers
(``grpc-status``) as they were. Nothing is retried: an RPC may not be idempotent, and once its
stream is open the upstream may have acted on it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING

from tlsgate.http import Headers, Request
from tlsgate.proxy.exchange import Exchange
from tlsgate.proxy.flow import DEADLINE_BODY, DEADLINE_UPSTREAM
from tlsgate.proxy.h2_request import CONNECTION_SPECIFIC
from tlsgate.proxy.h2c_upstream import H2cConnection, H2cPool
from tlsgate.proxy.headers import ClientInfo, forwarded_request_headers
from tlsgate.proxy.phase import (
    ATTACH,
    CONNECT,
    DONE,
    DUPLEX,
    READS_BODY,
    REQUEST_END,
    RESPONSE_END,
    RESPONSE_HEAD,
    TERMINAL,
)
from tlsgate.proxy.routing import UpstreamState

if TYPE_CHECKING:
    from tlsgate.http.h2_session import H2SessionAPI
    from tlsgate.proxy.deadline import Timeout
    from tlsgate.proxy.edge import Edge

__all__ = ["H2cSide", "h2c_request_fields"]

#: What the upstream stream must not carry: HTTP/2's connection-specific fields (RFC 9113
#: 8.2.2) and Host (``:authority`` says it); ``te: trailers`` is added back when the client sent it.
_NOT_FORWARDED = CONNECTION_SPECIFIC | {b"host"}
#: Response bytes queued for the client above which the upstream's DATA is no longer
#: acknowledged (its window closes until the client reads).
_HIGH_WATER = 128 * 1024


def h2c_request_fields(
    request: Request,
    authority: bytes,
    client: ClientInfo,
    *,
    trusted: bool,
    via: bool,
    client_cert: bytes | None,
) -> Headers:
    """The upstream stream's header block: pseudo-fields, then the forwarded fields."""
    forwarded = forwarded_request_headers(
        request.headers,
        client,
        host=authority,
        trusted=trusted,
        upgrade=None,
        via=via,
        client_cert=client_cert,
    )
    fields: Headers = [
        (b":method", request.method),
        (b":scheme", b"http"),
        (b":authority", authority),
        (b":path", request.target),
    ]
    fields += [(n, v) for n, v in forwarded if n not in _NOT_FORWARDED]
    if any(n == b"te" and v.strip().lower() == b"trailers" for n, v in request.headers):
        fields.append((b"te", b"trailers"))
    return fields


class H2cSide:
    """What an H2Stream does with an h2c upstream (its base class)."""

    # Provided by H2Stream.
    edge: Edge
    loop: asyncio.AbstractEventLoop
    stream_id: int
    _x: Exchange | None
    _deadline: Timeout
    _ended: bool
    _h2c: H2cConnection | None
    _h2c_sid: int
    _up_credit: int
    _head_ended: bool
    _responded: bool
    _sent: int
    _down_credit: int
    _h2c_fields: Headers

    if TYPE_CHECKING:

        @property
        def session(self) -> H2SessionAPI: ...
        def _flush(self) -> None: ...
        def _body_pending(self) -> deque[tuple[bytes, int]]: ...
        def _request_trailers(self) -> Headers: ...
        def _abort(self, x: Exchange, status: int, reason: str) -> None: ...
        def _end(self, x: Exchange, status: int, *, keep_alive: bool, error: str = "") -> None: ...
        def _send_end(self, trailers: Headers) -> None: ...
        def _client_fields(self, headers: Headers, x: Exchange) -> Headers: ...

    def _h2c_begin(self, x: Exchange, fields: Headers) -> None:
        route = x.route
        assert route is not None
        self._h2c_fields = fields
        x.process(CONNECT)
        state = route.balancer.pick(self.loop.time(), exclude=None)
        x.state = state
        if self.edge.h2c_pool is None:
            self.edge.h2c_pool = H2cPool(self.loop)
        pool = self.edge.h2c_pool
        conn = pool.take(state.upstream)
        if conn is not None:
            self._h2c_attach(x, conn)
            return
        task = self.loop.create_task(
            pool.connect(state.upstream, self.edge.timeouts.upstream_connect)
        )
        task.add_done_callback(lambda t: self._h2c_connected(x, state, t))

    def _h2c_connected(
        self, x: Exchange, state: UpstreamState, task: asyncio.Task[H2cConnection]
    ) -> None:
        exc = task.exception()
        if x is not self._x:
            return  # (the client went; a new connection stays in the pool for the next)
        if exc is not None:
            assert x.route is not None
            x.route.balancer.failed(state, self.loop.time())
            self._abort(x, 502, f"connect {state.upstream}: {exc or 'timeout'}")
            return
        self._h2c_attach(x, task.result())

    def _h2c_attach(self, x: Exchange, conn: H2cConnection) -> None:
        assert x.state is not None
        x.process(ATTACH)
        x.state.active += 1
        body = self._body_pending()
        ends = self._ended and not body and not self._request_trailers()
        self._h2c = conn
        self._h2c_sid = conn.open(self, self._h2c_fields, ends)
        if ends:
            x.process(REQUEST_END)
        else:
            self._h2c_pump(x)

    def _h2c_pump(self, x: Exchange) -> None:
        """The client's queued body to the upstream stream (acknowledged as frames leave)."""
        conn = self._h2c
        if conn is None or x.phase not in READS_BODY:
            return
        body = self._body_pending()
        while body:
            data, flow = body.popleft()
            self._up_credit += flow - len(data)  # (padding: nothing to send for it)
            conn.send(self._h2c_sid, data, False)
        if self._ended:
            trailers = self._request_trailers()
            if trailers:
                conn.send_trailers(self._h2c_sid, trailers)
            else:
                conn.send(self._h2c_sid, b"", True)
            x.process(REQUEST_END)
            if self._deadline.kind == DEADLINE_BODY:
                self._deadline.set(self.edge.timeouts.upstream_response, DEADLINE_UPSTREAM)
        if self._up_credit:
            self.session.consumed(self.stream_id, self._up_credit)
            self._up_credit = 0
        self._flush()

    def _h2c_cancel(self) -> None:
        """Stop the upstream stream (the client went, or the exchange failed or ended)."""
        conn, self._h2c = self._h2c, None
        if conn is not None:
            conn.cancel(self._h2c_sid)
            x = self._x
            if x is not None and x.state is not None:
                x.state.active -= 1

    # -- H2cOwner: the upstream stream's events ----------------------------------------------
    def h2c_sent(self, size: int) -> None:
        self.session.consumed(self.stream_id, size)

    def h2c_response(self, status: int, headers: Headers, ended: bool) -> None:
        x = self._x
        if x is None or x.phase in TERMINAL:
            return
        fields = self._client_fields(headers, x)
        if status < 200:
            self.session.respond(self.stream_id, status, fields, False)
            self._flush()
            return
        assert x.route is not None and x.state is not None
        x.route.balancer.succeeded(x.state)
        x.status = status
        self._head_ended = ended
        x.process(RESPONSE_HEAD)
        self._responded = True
        self._sent += sum(len(n) + len(v) for n, v in fields)
        self.session.respond(self.stream_id, status, fields, ended)
        if ended:  # a trailers-only response (a gRPC error)
            self._h2c_finish(x)
        self._flush()
        if self._deadline.kind == DEADLINE_UPSTREAM:
            self._deadline.set(self.edge.timeouts.upstream_response, DEADLINE_UPSTREAM)

    def h2c_data(self, data: bytes, flow: int) -> None:
        x = self._x
        conn = self._h2c
        if x is None or conn is None or x.phase in TERMINAL:
            return
        self._sent += len(data)
        self.session.send_data(self.stream_id, data, False)
        if self.session.buffered(self.stream_id) < _HIGH_WATER:
            conn.consumed(self._h2c_sid, flow)
        else:
            self._down_credit += flow
        self._flush()
        if self._deadline.kind == DEADLINE_UPSTREAM:
            self._deadline.set(self.edge.timeouts.upstream_response, DEADLINE_UPSTREAM)

    def h2c_window(self) -> None:
        """The client took queued bytes: acknowledge what the upstream was owed."""
        conn = self._h2c
        if (
            conn is not None
            and self._down_credit
            and self.session.buffered(self.stream_id) < (_HIGH_WATER)
        ):
            conn.consumed(self._h2c_sid, self._down_credit)
            self._down_credit = 0

    def h2c_trailers(self, headers: Headers) -> None:
        x = self._x
        if x is None or x.phase in TERMINAL:
            return
        self._send_end(headers)
        self._h2c_finish(x)
        self._flush()

    def h2c_end(self) -> None:
        x = self._x
        if x is None or x.phase in TERMINAL:
            return
        self._send_end([])
        self._h2c_finish(x)
        self._flush()

    def h2c_failed(self, reason: str) -> None:
        x = self._x
        if self._h2c is not None:
            self._h2c = None
            if x is not None and x.state is not None:
                x.state.active -= 1
        if x is not None and x.phase not in TERMINAL:
            self._abort(x, 502, reason)

    def _h2c_finish(self, x: Exchange) -> None:
        request_read = x.phase is not DUPLEX
        if not request_read:
            self._h2c_cancel()  # the upstream answered: the rest of the request is not wanted
        elif self._h2c is not None:
            self._h2c = None
            if x.state is not None:
                x.state.active -= 1
        if x.process(RESPONSE_END) is DONE:
            self._end(x, x.status, keep_alive=True)

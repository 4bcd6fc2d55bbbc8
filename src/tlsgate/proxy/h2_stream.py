"""One HTTP/2 stream proxied to an HTTP/1.1 upstream: the exchange of an h2 request.

A stream is what an HTTP/1.1 client connection is for one request, so it is built from the same
parts: an :class:`~tlsgate.proxy.exchange.Exchange` moved through the same phase table, the same
routing, client-certificate policy and forwarding headers (``request_head``), the same upstream
pool, retries and deadlines (:class:`~tlsgate.proxy.upstream_side.UpstreamSide`, whose connect,
attach, retry and release steps it inherits). What differs is the client side: the request
comes as a header block and DATA from the session instead of bytes from a parser, and the
response goes back as HEADERS and DATA frames, never as HTTP/1.1 bytes. So a response head is
relayed without ``Transfer-Encoding``/``Connection`` (HTTP/2 has its own framing), and the
upstream's chunked body or trailers become DATA frames and a trailing HEADERS block.

Flow control ties the two sides: request DATA is acknowledged to the client (its window
re-opened) only once the upstream connection took it, and the upstream is read only while the
stream's queued response bytes stay under :data:`HIGH_WATER`.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import TYPE_CHECKING, cast

from tlsgate.http import (
    BodyKind,
    Data,
    EndOfMessage,
    Event,
    Headers,
    LocalProtocolError,
    RemoteProtocolError,
    Response,
    chunk,
    last_chunk,
)
from tlsgate.http.h2_events import INTERNAL_ERROR, NO_ERROR
from tlsgate.proxy.access_log import AccessRecord
from tlsgate.proxy.client_identity import admit
from tlsgate.proxy.edge import Edge, error_fields
from tlsgate.proxy.exchange import Exchange, log_exchange
from tlsgate.proxy.flow import DEADLINE_BODY, DEADLINE_UPSTREAM, PAUSE_UPSTREAM
from tlsgate.proxy.h2_request import RequestRefused, h2_fields, request_from_fields
from tlsgate.proxy.h2c_side import H2cSide, h2c_request_fields
from tlsgate.proxy.h2c_upstream import H2cConnection
from tlsgate.proxy.headers import request_head, response_headers
from tlsgate.proxy.phase import (
    ABORT,
    ANSWER_LOCALLY,
    DONE,
    DUPLEX,
    HEAD_SENT,
    LOCAL,
    READS_BODY,
    REQUEST_END,
    RESPONSE_END,
    RESPONSE_HEAD,
    TERMINAL,
)
from tlsgate.proxy.routing import normalize_host
from tlsgate.proxy.upstream import UpstreamConnection
from tlsgate.proxy.upstream_side import UpstreamSide

if TYPE_CHECKING:
    from tlsgate.http.h2_session import H2SessionAPI
    from tlsgate.proxy.h2_connection import H2Connection

__all__ = ["HIGH_WATER", "H2Stream"]

#: Response bytes queued on one stream (waiting for the client's window) above which its
#: upstream is no longer read; it is read again once they fall under LOW_WATER. Per client
#: connection that bounds what waits at 128 streams x (HIGH_WATER + one upstream read): a
#: client that opens streams for large responses and never reads costs that, not more.
HIGH_WATER = 128 * 1024
LOW_WATER = 32 * 1024
IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE", b"TRACE"})
_ROUTING_ERRORS = {
    404: "no site for this host",
    421: "host names another site than the tls handshake",
}
_NO_BODY = BodyKind.NONE


class H2Stream(UpstreamSide, H2cSide):
    """One h2 request/response; the :class:`H2Connection` routes the session's events here."""

    def __init__(self, conn: H2Connection, stream_id: int) -> None:
        self.h2 = conn
        self.stream_id = stream_id
        self.edge: Edge = conn.edge
        self.loop: asyncio.AbstractEventLoop = conn.loop
        self.transport = None  # (HTTP/2 has no upgrades: UpstreamSide's tunnel is never used)
        self.tunnel = None
        self.busy = True
        self._x: Exchange | None = None
        self._write_paused = False  # the stream's queued response is over HIGH_WATER
        self._deadline = conn.deadline(self)
        self._body: deque[tuple[bytes, int]] = deque()  # request DATA waiting for upstream
        self._trailers: Headers = []
        self._ended = False  # the client's half is complete
        self._credit = 0  # flow-control bytes delivered upstream but not yet acknowledged
        self._upstream_paused = False
        self._sent = 0  # response bytes (head fields and data) given to the session
        self._responded = False  # a final response head went to the session
        self._received = 0  # request body bytes, against the body limit
        self._local_error = ""  # why a request answered locally was refused (logged)
        self._data_ended = False  # the response's last DATA carried END_STREAM
        self._h2c: H2cConnection | None = None  # the h2c upstream carrying the stream
        self._h2c_sid = 0
        self._h2c_fields: Headers = []
        self._up_credit = 0  # request flow bytes with nothing to send (padding), to return
        self._down_credit = 0  # upstream response bytes acknowledged once the client reads
        self._head_ended = False  # the response head carried END_STREAM (no body follows)

    # -- the client's side (from the session, through the connection) -------------------------
    def begin(self, fields: Headers, ended: bool) -> None:
        edge = self.edge
        started = time.monotonic()
        try:
            request, authority = request_from_fields(
                fields, ended=ended, max_body=edge.parser_limits.max_body_bytes
            )
        except RequestRefused as exc:
            self._refuse(fields, exc.status, str(exc), started)
            return
        self._ended = ended
        host = normalize_host(authority)
        x = self._x = Exchange(request, host, started)
        route, status = edge.router.route_for(host, self.h2.sni_route)
        if route is None:
            x.local_status = status
            x.process(ANSWER_LOCALLY)
            self._local_after_body(x)
            return
        x.route = route
        xfcc = None
        auth = edge.client_auth.get(id(route.site)) if edge.client_auth else None
        if auth is not None:
            decision, xfcc = admit(auth, self.h2.identity, request)
            if not decision.allowed:
                x.local_status, x.local_reason = 403, decision.reason
                x.process(ANSWER_LOCALLY)
                self._local_after_body(x)
                return
        if route.site.upstreams and route.site.upstreams[0].h2c:
            self._deadline.set(edge.timeouts.upstream_response, DEADLINE_UPSTREAM)
            self._h2c_begin(
                x,
                h2c_request_fields(
                    request,
                    authority,
                    self.h2.client,
                    trusted=self.h2.trusted,
                    via=route.site.via,
                    client_cert=xfcc,
                ),
            )
            return
        try:
            x.head = request_head(
                request,
                self.h2.client,
                host=authority,
                trusted=self.h2.trusted,
                via=route.site.via,
                client_cert=xfcc,
                chunked=x.chunked_in,
            )
        except LocalProtocolError as exc:  # the serializer refused a field (CR, LF, NUL)
            x.local_status, x.local_reason = 400, ""
            x.process(ANSWER_LOCALLY)
            self._local_after_body(x, error=f"refused header: {exc}")
            return
        x.retry_ok = request.method in IDEMPOTENT and request.body is _NO_BODY
        x.attempts = 2 if (x.retry_ok or len(route.balancer.states) > 1) else 1
        self._deadline.set(edge.timeouts.upstream_response, DEADLINE_UPSTREAM)
        self._connect(x)

    def data(self, data: bytes, flow_length: int) -> None:
        x = self._x
        if x is None or x.phase in TERMINAL or x.phase is LOCAL:
            self.h2.session.consumed(self.stream_id, flow_length)
            return
        limit = self.edge.parser_limits.max_body_bytes
        self._received += len(data)
        if limit is not None and self._received > limit:
            self._abort(x, 413, "request body larger than the limit")
            return
        self._body.append((data, flow_length))
        self._pump()

    def trailers(self, fields: Headers) -> None:
        self._trailers = [(n, v) for n, v in fields if n[:1] != b":"]

    def end(self) -> None:
        self._ended = True
        x = self._x
        if x is not None and x.phase not in TERMINAL:
            self._pump()

    def _send_end(self, trailers: Headers) -> None:
        if trailers:
            self.h2.session.send_trailers(self.stream_id, h2_fields(trailers))
        elif not self._head_ended:
            self.h2.session.send_data(self.stream_id, b"", True)

    def client_reset(self) -> None:
        """The client reset the stream (or the connection went): the exchange is abandoned."""
        x = self._x
        self._x = None
        self.busy = False
        self._deadline.close()
        if x is None or x.phase in TERMINAL:
            return
        self._x = x  # (for the h2c stream's accounting)
        self._h2c_cancel()
        self._x = None
        x.process(ABORT)
        conn = self._detach(x)
        if conn is not None:
            conn.close()
        self._log(x, x.status or 499, "client reset the stream")

    def window_opened(self) -> None:
        """The session sent some of this stream's queued bytes: read the upstream again."""
        if self._h2c is not None:
            self.h2c_window()
            return
        if self._write_paused and self.h2.session.buffered(self.stream_id) < LOW_WATER:
            self._write_paused = False
            x = self._x
            if x is not None and x.conn is not None and not self.h2.write_paused:
                x.conn.resume_reading()

    def connection_paused(self, paused: bool) -> None:
        """The client connection's transport buffer crossed its marks."""
        x = self._x
        if x is None or x.conn is None:
            return
        if paused:
            x.conn.pause_reading()
        elif not self._write_paused:
            x.conn.resume_reading()

    # -- what H2cSide asks of its stream -------------------------------------------------------
    @property
    def session(self) -> H2SessionAPI:
        return self.h2.session

    def _body_pending(self) -> deque[tuple[bytes, int]]:
        return self._body

    def _request_trailers(self) -> Headers:
        return self._trailers

    def _client_fields(self, headers: Headers, x: Exchange) -> Headers:
        assert x.route is not None
        site = x.route.site
        return h2_fields(response_headers(headers, hsts=self.edge.hsts_for(site), via=site.via))

    # -- what UpstreamSide asks of its client half ---------------------------------------------
    def _pump(self) -> None:
        """Send the client's queued body upstream as far as the exchange reads one."""
        x = self._x
        if x is None or x.phase not in READS_BODY:
            return
        if self._h2c is not None:
            self._h2c_pump(x)
            return
        session = self.h2.session
        if x.phase is LOCAL:
            while self._body:
                session.consumed(self.stream_id, self._body.popleft()[1])
            if self._ended:
                self._answer_locally(x)
            return
        conn = x.conn
        assert conn is not None
        while self._body:
            data, flow = self._body.popleft()
            if data:
                conn.write(chunk(data) if x.chunked_in else data)
            if self._upstream_paused:
                self._credit += flow
            else:
                session.consumed(self.stream_id, flow)
            self._deadline.set(self.edge.timeouts.idle, DEADLINE_BODY)
        if self._ended:
            if x.chunked_in:
                conn.write(last_chunk(self._trailers))
            x.process(REQUEST_END)
            if self._deadline.kind == DEADLINE_BODY:
                self._deadline.set(self.edge.timeouts.upstream_response, DEADLINE_UPSTREAM)
        self.h2.flush()

    def _write(self, data: bytes) -> None:  # pragma: no cover - h2 relays events, not bytes
        raise AssertionError("an h2 stream sends frames, not HTTP/1.1 bytes")

    def _flush(self) -> None:
        self.h2.flush()

    def _pause(self, reason: int) -> None:
        if reason == PAUSE_UPSTREAM:  # the upstream is slow to take the body: hold credit
            self._upstream_paused = True

    def _resume(self, reason: int) -> None:
        if reason == PAUSE_UPSTREAM and self._upstream_paused:
            self._upstream_paused = False
            if self._credit:
                self.h2.session.consumed(self.stream_id, self._credit)
                self._credit = 0
                self.h2.flush()

    def _on_deadline(self, kind: int) -> None:
        x = self._x
        if x is None or x.phase in TERMINAL:
            return
        if kind == DEADLINE_BODY:
            self._abort(x, 408, "request body timeout")
        else:
            self._abort(x, 504, "upstream response timeout")

    # -- the upstream's side -----------------------------------------------------------------
    def upstream_events(self, conn: UpstreamConnection, events: list[Event]) -> None:
        x = self._x
        if x is None or x.conn is not conn:  # pragma: no cover - owners are cleared on exit
            conn.close()
            return
        session = self.h2.session
        sid = self.stream_id
        last = len(events) - 1
        for i, event in enumerate(events):
            kind = type(event)
            if kind is Data:
                data = cast(Data, event).data
                self._sent += len(data)
                # The body's last bytes carry END_STREAM when the end came with them (a
                # Content-Length body usually does): no empty DATA frame after them.
                ends = (
                    i < last
                    and type(events[i + 1]) is EndOfMessage
                    and not cast(EndOfMessage, events[i + 1]).trailers
                )
                session.send_data(sid, data, ends)
                self._data_ended = ends
            elif kind is Response:
                if not self._on_response(x, cast(Response, event)):
                    return
            elif kind is EndOfMessage:
                if x.status == 0:
                    continue  # the end of an interim (1xx) response: the final one follows
                if not self._data_ended:
                    self._send_end(cast(EndOfMessage, event).trailers)
                if not self._ended:
                    # The upstream answered before the client finished its body: the
                    # response is complete, so the client is asked to stop sending, without
                    # an error (RFC 9113 8.1), as Go's and h2o's servers do.
                    session.reset(sid, NO_ERROR)
                request_read = x.phase is not DUPLEX
                if x.process(RESPONSE_END) is DONE:
                    self._finish(x, request_read)
                    self.h2.flush()
                    return
            else:  # Upgraded: refused in _on_response (no 101 reaches here)
                self._abort(x, 502, "upstream switched protocols")
                return
        if not self._write_paused and session.buffered(sid) > HIGH_WATER:
            self._write_paused = True
            conn.pause_reading()
        self.h2.flush()
        if self._deadline.kind == DEADLINE_UPSTREAM:
            self._deadline.set(self.edge.timeouts.upstream_response, DEADLINE_UPSTREAM)

    def _on_response(self, x: Exchange, response: Response) -> bool:
        assert x.route is not None and x.state is not None
        x.route.balancer.succeeded(x.state)
        status = response.status
        session = self.h2.session
        if status == 101:
            self._abort(x, 502, "upstream switched protocols (no upgrades over HTTP/2)")
            return False
        site = x.route.site
        fields = h2_fields(
            response_headers(response.headers, hsts=self.edge.hsts_for(site), via=site.via)
        )
        if status < 200:
            session.respond(self.stream_id, status, fields, False)
            return True
        x.status = status
        x.process(RESPONSE_HEAD)
        self._responded = True
        empty = self._head_ended = response.body is _NO_BODY
        self._sent += sum(len(n) + len(v) for n, v in fields)
        session.respond(self.stream_id, status, fields, empty)
        return True

    def upstream_failed(self, conn: UpstreamConnection, error: RemoteProtocolError) -> None:
        x = self._x
        if x is not None and x.conn is conn:
            self._abort(x, 502, f"bad upstream response: {error}")
        else:  # pragma: no cover - owners are cleared on exit
            conn.close()

    # -- ending ------------------------------------------------------------------------------
    def _end(self, x: Exchange, status: int, *, keep_alive: bool, error: str = "") -> None:
        self._x = None
        self.busy = False
        self._deadline.close()
        self._log(x, status, error)
        self.h2.stream_done(self)

    def _abort(self, x: Exchange, status: int, reason: str) -> None:
        metrics = self.edge.metrics
        if metrics is not None and status in (502, 504):
            upstream = str(x.state.upstream) if x.state is not None else "-"
            metrics.upstream_failed(upstream, "unavailable" if status == 502 else "timeout")
        head_sent = x.phase in HEAD_SENT or self._responded
        self._h2c_cancel()
        x.process(ABORT)
        conn = self._detach(x)
        if conn is not None:
            conn.close()
        if head_sent:
            self.h2.session.reset(self.stream_id, INTERNAL_ERROR)
        else:
            self._send_error(status)
        self._ended = True  # (no NO_ERROR reset after the error)
        self._end(x, status, keep_alive=True, error=reason)
        self.h2.flush()

    def _answer_locally(self, x: Exchange) -> None:
        self._send_error(x.local_status, x.local_reason)
        x.process(REQUEST_END)
        error = x.local_reason or _ROUTING_ERRORS.get(x.local_status, "")
        self._end(x, x.local_status, keep_alive=True, error=error)
        self.h2.flush()

    def _local_after_body(self, x: Exchange, error: str = "") -> None:
        """A request the edge answers itself: once its body is read (and dropped)."""
        self._local_error = error
        self._deadline.set(self.edge.timeouts.idle, DEADLINE_BODY)
        if self._ended:
            self._answer_locally(x)

    def _send_error(self, status: int, detail: str = "") -> None:
        fields, body = error_fields(status, detail)
        session = self.h2.session
        session.respond(self.stream_id, status, fields, False)
        session.send_data(self.stream_id, body, True)
        self._sent += len(body)
        self._responded = True

    def _refuse(self, fields: Headers, status: int, error: str, started: float) -> None:
        """A header block that is not a request the edge will proxy: answered and logged."""
        self._send_error(status)
        self.busy = False
        self._deadline.close()
        edge = self.edge
        duration = time.monotonic() - started
        if edge.metrics is not None:
            edge.metrics.observe("-", status, duration)
        if edge.log is not None:
            pseudo = dict(f for f in fields if f[0][:1] == b":")
            method = pseudo.get(b":method")
            target = pseudo.get(b":path")
            edge.log(
                AccessRecord(
                    self.h2.client.address,
                    method.decode("latin-1") if method is not None else None,
                    target.decode("latin-1") if target is not None else None,
                    "",
                    status,
                    self._sent,
                    "",
                    duration,
                    error,
                )
            )
        self.h2.stream_done(self)
        self.h2.flush()

    def _log(self, x: Exchange, status: int, error: str = "") -> None:
        log_exchange(
            self.edge, self.h2.client.address, x, status, self._sent, error or self._local_error
        )

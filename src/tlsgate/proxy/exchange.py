"""The state of one proxied request/response, from its head to the end of the response."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from tlsgate.http import BodyKind, Request
from tlsgate.proxy.access_log import AccessRecord
from tlsgate.proxy.phase import PhaseMachine
from tlsgate.proxy.routing import Route, UpstreamState
from tlsgate.proxy.upstream import UpstreamConnection

if TYPE_CHECKING:
    from tlsgate.proxy.edge import Edge

__all__ = ["Exchange", "log_exchange"]


class Exchange(PhaseMachine):
    """One request/response in flight on a client connection; discarded when it ends.

    Plain state, no behaviour: ``protocol.py`` drives it. Kept apart so that what an exchange
    carries (its upstream connection, retries left, framing decisions) reads in one place. Where
    it is in its life is its one ``phase`` (see :mod:`tlsgate.proxy.phase`), moved only by
    ``process``; the other fields are values, not steps.
    """

    __slots__ = (
        "attempts",
        "chunked_in",
        "chunked_out",
        "close_after",
        "conn",
        "exclude",
        "head",
        "host",
        "local_reason",
        "local_status",
        "request",
        "retry_ok",
        "route",
        "sent_before",
        "started",
        "state",
        "status",
        "tunnel_leftover",
    )

    def __init__(self, request: Request, host: str, started: float) -> None:
        super().__init__()
        self.request = request
        self.host = host
        self.sent_before = 0  # the connection's byte count when the exchange began
        self.started = started
        self.route: Route | None = None
        self.head = b""
        self.conn: UpstreamConnection | None = None
        self.state: UpstreamState | None = None
        self.exclude: UpstreamState | None = None
        self.attempts = 1
        self.retry_ok = False
        self.status = 0
        self.chunked_in = request.body is BodyKind.CHUNKED
        self.chunked_out = False
        self.close_after = not request.keep_alive
        self.local_status = 0  # answered by the edge itself (404/421) once the body is read
        self.local_reason = ""  # said in that answer's body and logged (a 403's reason)
        self.tunnel_leftover = b""  # client bytes after an upgrade request's head


def log_exchange(
    edge: Edge, address: str, x: Exchange, status: int, sent: int, error: str = ""
) -> None:
    """An ended exchange's access-log line and metrics (both HTTP versions' exchanges end
    here); ``sent``: the bytes the client was sent for it."""
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
                address,
                request.method.decode("latin-1"),
                request.target.decode("latin-1"),
                x.host,
                status,
                sent,
                str(x.state.upstream) if x.state is not None else "",
                duration,
                error,
                site if x.route is not None else "",
            )
        )

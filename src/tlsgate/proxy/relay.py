"""A ``mode = "tcp"`` site: after the TLS handshake (and the client-certificate check), bytes.

For protocols that are not HTTP (a database, a message broker, SSH over TLS): the edge still
terminates TLS, picks the site by SNI, verifies and authorizes the client certificate, and
balances over the site's upstreams; then it only moves bytes, with back-pressure both ways
(each side's reading pauses while the other side's writes are backed up). One access-log line
per connection, when it ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import cast

from tlsgate.mtls.identity import ClientIdentity
from tlsgate.mtls.policy import authorize
from tlsgate.proxy.access_log import AccessRecord
from tlsgate.proxy.client_identity import peer_identity
from tlsgate.proxy.edge import Edge
from tlsgate.proxy.routing import Route

__all__ = ["TcpRelay"]

log = logging.getLogger("tlsgate.serve")


class _Upstream(asyncio.Protocol):
    def __init__(self, relay: TcpRelay) -> None:
        self.relay = relay

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.relay.from_upstream(data)

    def eof_received(self) -> bool | None:
        self.relay.close()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.relay.close()

    def pause_writing(self) -> None:
        self.relay.client_paused(True)

    def resume_writing(self) -> None:
        self.relay.client_paused(False)


class TcpRelay(asyncio.Protocol):
    #: For the edge's drain: a relay is never between requests; it ends when a side closes.
    busy = False
    tunnel = True

    def __init__(self, edge: Edge, route: Route) -> None:
        self.edge = edge
        self.route = route
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.upstream: _Upstream | None = None
        self.identity: ClientIdentity | None = None
        self.peer = ""
        self.started = time.monotonic()
        self.sent = 0
        self.received = 0
        self.error = ""
        self.upstream_name = "-"
        self.closed = False
        self._task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.peer = peer[0] if peer else ""
        self.edge.connections.add(self)  # type: ignore[arg-type]
        auth = self.edge.client_auth.get(id(self.route.site))
        if auth is not None:
            ssl_object = transport.get_extra_info("ssl_object")
            self.identity = peer_identity(ssl_object) if ssl_object is not None else None
            decision = authorize(
                self.identity, "/", auth.allow, auth.paths,
                certificate_required=auth.mode == "require",
            )  # fmt: skip
            if not decision.allowed:  # no HTTP to say 403 in: the connection ends, logged
                self.error = decision.reason
                log.warning(
                    "client %s refused on tcp site %s: %s", self.peer, self.name, self.error
                )
                self.close()
                return
        self.transport.pause_reading()  # nothing to send the bytes to yet
        self._task = self.loop.create_task(self._connect())

    @property
    def name(self) -> str:
        return self.route.site.hosts[0]

    async def _connect(self) -> None:
        balancer = self.route.balancer
        state = balancer.pick(self.loop.time())
        upstream = state.upstream
        self.upstream_name = f"{upstream.host}:{upstream.port}"
        try:
            async with asyncio.timeout(self.edge.timeouts.upstream_connect):
                _, protocol = await self.loop.create_connection(
                    lambda: _Upstream(self), upstream.host, upstream.port
                )
        except (OSError, TimeoutError) as exc:
            balancer.failed(state, self.loop.time())
            self.error = f"upstream {upstream.host}:{upstream.port} unreachable: {exc}"
            self.close()
            return
        balancer.succeeded(state)
        if self.closed:
            protocol.transport.close()
            return
        self.upstream = protocol
        assert self.transport is not None
        self.transport.resume_reading()

    # -- the client side ---------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self.upstream is not None:
            self.received += len(data)
            self.upstream.transport.write(data)

    def eof_received(self) -> bool | None:
        self.close()  # TLS has no half-close that every peer honours: end both sides
        return None

    def pause_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.close()

    # -- from the upstream side ------------------------------------------------------------------
    def from_upstream(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.sent += len(data)
            self.transport.write(data)

    def client_paused(self, paused: bool) -> None:
        if self.transport is None or self.closed:
            return
        if paused:
            self.transport.pause_reading()
        else:
            self.transport.resume_reading()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._task is not None and not self._task.done():
            self._task.cancel()
        if self.upstream is not None:
            self.upstream.transport.close()
        if self.transport is not None:
            self.transport.close()
        self.edge.connections.discard(self)
        if self.edge.log is not None:
            self.edge.log(
                AccessRecord(
                    client=self.peer,
                    method="TCP",
                    target="",
                    host=self.name,
                    status=0 if self.error else 200,
                    bytes_sent=self.sent,
                    upstream=self.upstream_name,
                    duration=time.monotonic() - self.started,
                    error=self.error,
                    site=self.name,
                )
            )

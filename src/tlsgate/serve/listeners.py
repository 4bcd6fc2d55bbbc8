"""One worker's listeners: the sockets, and what serves each one.

Per TLS listener an :class:`~tlsgate.proxy.edge.Edge` (what its connections share) and either
TLS driven on the socket by the compiled data plane (:mod:`tlsgate.proxy.socket_tls`), the
event loop's TLS server or, when the context must be picked before the handshake (tls-alpn-01,
client certificates, TCP sites), the peeking :class:`~tlsgate.proxy.acceptor.HelloAcceptor`;
per plain-HTTP listener the redirect, which also answers http-01. Apart from the worker
processes (:mod:`tlsgate.serve.supervisor`), which only run what this opens.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import ssl as ssl_module
from collections.abc import Callable, Iterator, Mapping
from typing import Protocol

from tlsgate.config import ListenAddress, ServerConfig, SiteConfig
from tlsgate.proxy import socket_tls
from tlsgate.proxy.acceptor import Choice, HelloAcceptor
from tlsgate.proxy.access_log import AccessLog
from tlsgate.proxy.edge import Edge
from tlsgate.proxy.lifecycle import ConnectionBudget
from tlsgate.proxy.protocol import ClientProtocol
from tlsgate.proxy.redirect import RedirectProtocol
from tlsgate.proxy.relay import TcpRelay
from tlsgate.proxy.routing import Router
from tlsgate.proxy.settings import EdgeMetrics
from tlsgate.proxy.upstream import UpstreamPool
from tlsgate.serve.contexts import SiteContexts
from tlsgate.tls.clienthello import ClientHello

__all__ = [
    "Chooser",
    "Server",
    "bind_listener",
    "bind_slot",
    "choose_site",
    "listen_on",
    "open_listeners",
    "peeks",
]

#: Accept queues: TLS listeners take the bursts; the plain-HTTP one only redirects.
TLS_BACKLOG = 4096
HTTP_BACKLOG = 1024

Server = asyncio.AbstractServer | HelloAcceptor | socket_tls.SocketAcceptor


class Chooser(Protocol):
    """Before the handshake: the context and the kind of connection for one ClientHello."""

    def __call__(self, hello: ClientHello | None, normal: Choice, edge: Edge) -> Choice: ...


def bind_listener(address: ListenAddress, backlog: int) -> socket.socket:
    """A listening socket for one slot: ``SO_REUSEPORT`` so every slot binds the same port (the
    kernel spreads connections across them, as when workers bind their own)."""
    family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
    sock = socket.create_server(
        (address.host, address.port), family=family, backlog=backlog, reuse_port=True
    )
    sock.setblocking(False)
    return sock


def bind_slot(cfg: ServerConfig) -> list[socket.socket]:
    """One recycling slot's sockets, in the order :func:`open_listeners` takes them."""
    return [bind_listener(a, TLS_BACKLOG) for a in cfg.listen] + [
        bind_listener(a, HTTP_BACKLOG) for a in cfg.http_listen
    ]


async def listen_on(
    address: ListenAddress,
    sock: socket.socket | None,
    factory: Callable[[], asyncio.BaseProtocol],
    *,
    backlog: int,
    ssl: ssl_module.SSLContext | None = None,
    handshake_timeout: float | None = None,
) -> asyncio.AbstractServer:
    """A listener on the socket the master holds for this worker (recycling), else on
    ``address``, bound here with ``SO_REUSEPORT``."""
    loop = asyncio.get_running_loop()
    if sock is not None:
        return await loop.create_server(
            factory, sock=sock, backlog=backlog, ssl=ssl, ssl_handshake_timeout=handshake_timeout
        )
    return await loop.create_server(
        factory,
        address.host,
        address.port,
        reuse_port=True,
        backlog=backlog,
        ssl=ssl,
        ssl_handshake_timeout=handshake_timeout,
    )


def peeks(sites: tuple[SiteConfig, ...], client_auth: bool) -> bool:
    """Whether the TLS listeners accept connections themselves to read the ClientHello
    first: for tls-alpn-01 answers, for sites that ask for client certificates (``client_auth``)
    and for TCP sites (whose connections are not HTTP from the first byte)."""
    return client_auth or any(
        site.mode == "tcp" or (site.acme is not None and "tls-alpn-01" in site.acme.challenges)
        for site in sites
    )


def choose_site(
    contexts: SiteContexts, hello: ClientHello | None, normal: Choice, edge: Edge
) -> Choice:
    """The site's context (chosen before the handshake, so its client-certificate settings
    apply from the start: OpenSSL would not take them from a context switched to in the SNI
    callback) and its kind of connection (HTTP, or bytes for a ``mode = "tcp"`` site)."""
    name = hello.server_name if hello is not None else None
    route = edge.router.match(name) if name else edge.router.default
    ctx = contexts.lookup(name) if name else None
    ctx = ctx or normal[0]
    if route is not None and route.site.mode == "tcp":
        return ctx, functools.partial(TcpRelay, edge, route)
    return ctx, normal[1]


async def open_listeners(
    server_cfg: ServerConfig,
    *,
    router: Router,
    pool: UpstreamPool,
    access_log: AccessLog | None,
    metrics: EdgeMetrics | None,
    hsts: Mapping[int, bytes],
    front: ssl_module.SSLContext,
    budget: ConnectionBudget,
    held: Iterator[socket.socket],
    choose: Chooser | None,
    http01: Callable[[bytes], bytes | None],
    lookup: socket_tls.Lookup | None = None,
) -> tuple[list[Edge], list[Server]]:
    """Open every listener of ``server_cfg`` (on the ``held`` sockets, in :func:`bind_slot`'s
    order, while there are any): the TLS listeners' edges, and every server to close at stop.

    ``choose``: pick each connection's context from its ClientHello (OpenSSL's ClientHello
    callback on the socket path; else the listeners accept connections themselves to read it
    first); None: the first site's context ``front`` with its SNI callback. ``lookup``: drive
    TLS on the socket (:mod:`tlsgate.proxy.socket_tls`), moving each handshake to
    ``lookup(server name)`` when ``choose`` is None; None: the event loop's TLS.
    ``http01``: the http-01 answer for a request target, if one is pending.
    ``hsts``: each site's Strict-Transport-Security value (:func:`tlsgate.serve.hsts.hsts_headers`).
    """
    edges: list[Edge] = []
    servers: list[Server] = []
    https_port = server_cfg.listen[0].port if server_cfg.listen else 443
    for address in server_cfg.listen:
        sock = next(held, None)
        edge = Edge(
            router=router,
            pool=pool,
            timeouts=server_cfg.timeouts,
            limits=server_cfg.limits,
            port=address.port,
            trusted_proxies=server_cfg.trusted_proxies,
            log=access_log,
            metrics=metrics,
            hsts=hsts,
        )
        edges.append(edge)
        factory = functools.partial(ClientProtocol, edge)
        if choose is not None:
            normal: Choice = (front, factory)
            chosen = budget.wrap(functools.partial(choose, normal=normal, edge=edge))
            timeout = server_cfg.timeouts.handshake
            if lookup is not None:  # the same choice, in OpenSSL's ClientHello callback
                servers.append(
                    socket_tls.listen_choosing(
                        sock if sock is not None else bind_listener(address, TLS_BACKLOG),
                        front,
                        chosen,
                        handshake_timeout=timeout,
                    )
                )
                continue
            servers.append(
                HelloAcceptor(sock, chosen, handshake_timeout=timeout)
                if sock is not None
                else await HelloAcceptor.listen(
                    address.host, address.port, chosen, handshake_timeout=timeout
                )
            )
            continue
        if lookup is not None:
            servers.append(
                socket_tls.listen(
                    sock if sock is not None else bind_listener(address, TLS_BACKLOG),
                    front,
                    budget.wrap(factory),
                    lookup,
                    handshake_timeout=server_cfg.timeouts.handshake,
                )
            )
            continue
        servers.append(
            await listen_on(
                address,
                sock,
                budget.wrap(factory),
                backlog=TLS_BACKLOG,
                ssl=front,
                handshake_timeout=server_cfg.timeouts.handshake,
            )
        )
    for address in server_cfg.http_listen:
        servers.append(
            await listen_on(
                address,
                next(held, None),
                lambda: RedirectProtocol(
                    https_port, challenge=http01, idle=server_cfg.timeouts.idle
                ),
                backlog=HTTP_BACKLOG,
            )
        )
    return edges, servers

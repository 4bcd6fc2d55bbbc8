"""Running the ACME server: its own HTTPS certificate, the listener, and a clean stop.

The server's certificate comes from the CA it fronts, for ``--hostname``: clients that trust
the root (``tlsgate ca export-root``) trust the directory URL with no extra flag, the same chain
of trust their certificates will have.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from aiohttp import web

from tlsgate.acme.server.app import AcmeServer, AcmeServerSettings
from tlsgate.acme.server.nonces import NonceStore
from tlsgate.acme.server.policy import OrderLimiter
from tlsgate.ca.authority import CertificateAuthority
from tlsgate.pki.keys import private_key_pem
from tlsgate.pki.names import parse_identities, with_loopback
from tlsgate.pki.profiles import LeafProfile
from tlsgate.store.base import Store
from tlsgate.tls.context import load_chain_into, new_server_context

__all__ = ["base_url", "serve_acme"]

log = logging.getLogger("tlsgate.acme")

#: The server's own certificate; renewed by restarting (a month is long for a test CA's URL).
SERVER_CERT_LIFETIME = timedelta(days=30)


def base_url(hostname: str, port: int) -> str:
    host = f"[{hostname}]" if ":" in hostname else hostname
    return f"https://{host}" if port == 443 else f"https://{host}:{port}"


async def serve_acme(
    ca: CertificateAuthority,
    store: Store,
    *,
    sockets: Sequence[socket.socket],
    hostname: str,
    settings: AcmeServerSettings,
    nonces: NonceStore | None = None,
    limiter: OrderLimiter | None = None,
    public_url: str | None = None,
    ready: Callable[[str], None] | None = None,
) -> int:
    """Serve on ``sockets`` until SIGTERM/SIGINT; ``ready`` gets the directory URL.

    The sockets are bound by the caller (:func:`tlsgate.config.listen.bind_listeners`) before
    this issues the server's certificate, so a port that cannot be had costs no certificate.

    ``nonces`` defaults to an in-memory book, right for one process; several nodes on one store
    pass :class:`~tlsgate.acme.server.nonces.StoreNonces`, and likewise ``limiter`` (the new-order
    rate limit, in memory by default) :class:`~tlsgate.acme.server.policy.StoreRateLimiter`, so
    the nodes together allow the configured rate rather than one rate each. ``public_url`` is where
    clients reach the server when that is not ``https://hostname:listen_port``: behind a load
    balancer every node must hand out the same URLs, since a JWS names the URL it is sent to
    (RFC 8555 6.4) and the client's next request may land on another node.
    """
    now = datetime.now(UTC)
    issued = ca.issue(
        parse_identities(with_loopback([hostname])),
        now=now,
        profile=LeafProfile(lifetime=SERVER_CERT_LIFETIME),
        requester="ca-serve",
    )
    assert issued.private_key is not None
    context = new_server_context()
    load_chain_into(context, issued.fullchain_pem, private_key_pem(issued.private_key))
    port = int(sockets[0].getsockname()[1])
    url = public_url or base_url(hostname, port)
    server = AcmeServer(ca, store, url, settings, nonces=nonces, limiter=limiter)
    runner = web.AppRunner(server.app(), access_log=None, handle_signals=False)
    await runner.setup()
    for sock in sockets:
        await web.SockSite(runner, sock, ssl_context=context, backlog=1024).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if ready is not None:
        ready(server.urls.directory)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
    return 0

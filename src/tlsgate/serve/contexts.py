"""SNI selection among the sites' server contexts, and certificate hot-swap.

One ``SSLContext`` per site. The listening context is the first site's, with an SNI callback that
moves each handshake to the site the client named. A renewed certificate is loaded into the
site's existing context (``load_cert_chain`` again): new handshakes get it at once, established
connections keep theirs, and no listener is ever re-created, so nothing is dropped.

When the data plane drives TLS on the socket (:mod:`tlsgate.proxy.socket_tls`), Python's SNI
callback must not run on its connections (it needs the ``SSLSocket`` Python made):
:meth:`SiteContexts.use_native` puts the transport's callback on every context instead, those
added or replaced later included, and :meth:`SiteContexts.lookup` is what it asks.

Session tickets are encrypted with the listening context's keys (OpenSSL keeps the session
context across ``SSL_set_SSL_CTX``); the contexts are built before the workers fork, so every
worker holds the same ticket keys and a client resumes on whichever worker accepts it.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Sequence

__all__ = ["SiteContexts"]


class SiteContexts:
    """Host name -> the site's context, exact names before one-label wildcards."""

    def __init__(self) -> None:
        self._exact: dict[str, ssl.SSLContext] = {}
        self._wildcard: dict[str, ssl.SSLContext] = {}
        self.default: ssl.SSLContext | None = None
        self._native: Callable[[ssl.SSLContext], None] | None = None

    def contexts(self) -> list[ssl.SSLContext]:
        """Every context, each once, the default first."""
        seen: dict[int, ssl.SSLContext] = {}
        for ctx in (self.default, *self._exact.values(), *self._wildcard.values()):
            if ctx is not None:
                seen.setdefault(id(ctx), ctx)
        return list(seen.values())

    def use_native(self, install: Callable[[ssl.SSLContext], None]) -> None:
        """From now on every context gets ``install`` instead of Python's SNI callback (TLS
        driven on the socket); applied to the contexts there are already."""
        self._native = install
        for ctx in self.contexts():
            install(ctx)

    def _attach(self, ctx: ssl.SSLContext) -> None:
        if self._native is not None:
            self._native(ctx)
        else:
            ctx.sni_callback = self._on_sni

    def add(self, hosts: Sequence[str], ctx: ssl.SSLContext) -> None:
        for host in hosts:
            if host.startswith("*."):
                self._wildcard[host[2:]] = ctx
            else:
                self._exact[host] = ctx
        # On every context: a listener that picks the context before the handshake (the
        # peeking acceptor) still has the server name recorded for the HTTP layer.
        self._attach(ctx)
        if self.default is None:
            self.default = ctx

    def replace(self, old: ssl.SSLContext, new: ssl.SSLContext) -> None:
        """Serve ``new`` wherever ``old`` was (a site whose trust changed gets a new context)."""
        for table in (self._exact, self._wildcard):
            for host, ctx in table.items():
                if ctx is old:
                    table[host] = new
        self._attach(new)
        if self.default is old:
            self.default = new

    def lookup(self, name: str) -> ssl.SSLContext | None:
        name = name.lower().rstrip(".")
        ctx = self._exact.get(name)
        if ctx is None:
            ctx = self._wildcard.get(name.partition(".")[2])
        return ctx

    def _on_sni(
        self, ssl_obj: ssl.SSLObject, server_name: str | None, initial: ssl.SSLContext
    ) -> int | None:
        if server_name is None:
            return None  # IP-literal clients send no SNI: the default certificate
        # Remembered for the HTTP layer, which refuses a Host naming a different site (421).
        ssl_obj.tlsgate_sni = server_name  # type: ignore[attr-defined]
        ctx = self.lookup(server_name)
        if ctx is not None and ctx is not initial:
            ssl_obj.context = ctx
        # An unknown name still gets the default certificate (as nginx does); the client's own
        # hostname check then fails with a clear "wrong host" instead of an opaque alert.
        return None

"""Every site's server TLS context: built at start-up, given new certificates in place, and
rebuilt when the client-certificate trust (CA bundle, CRL) of an mTLS site changes.

A new certificate goes into the site's existing context (new handshakes get it, open
connections keep theirs). New trust cannot: OpenSSL keeps every CRL ever added to a store, so
the site gets a fresh context with the current certificate, and the listener hands it to new
connections from then on (see :mod:`tlsgate.serve.client_trust`).
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

from tlsgate.config import ClientAuth, SiteConfig
from tlsgate.errors import TlsgateError
from tlsgate.proxy import socket_tls
from tlsgate.serve.certificates import SiteCertificate
from tlsgate.serve.client_trust import TrustMaterial, configure, file_material, internal_material
from tlsgate.serve.contexts import SiteContexts
from tlsgate.serve.stapling import SiteStapling
from tlsgate.store import local_state_dir
from tlsgate.store.base import Store
from tlsgate.tls import sessions
from tlsgate.tls.context import load_chain_into, new_server_context
from tlsgate.tls.tickets import TicketKeys, install_all

__all__ = ["H1_ALPN", "H2_ALPN", "SiteTls", "client_auth_of", "uses_client_auth"]

#: What a site's handshakes offer: HTTP/2 first (the client's choice among these wins only if it
#: lacks h2), or HTTP/1.1 alone (``http2 = false``, and TCP sites).
H2_ALPN = ("h2", "http/1.1")
H1_ALPN = ("http/1.1",)

log = logging.getLogger("tlsgate.serve")


def client_auth_of(site: SiteConfig) -> ClientAuth | None:
    """The site's client-certificate settings, or None when it asks for none."""
    auth = site.client_auth
    return auth if auth is not None and auth.mode != "off" else None


def uses_client_auth(site: SiteConfig) -> bool:
    return client_auth_of(site) is not None


class SiteTls:
    def __init__(
        self,
        sites: tuple[SiteConfig, ...],
        store: Store,
        stapling: SiteStapling,
        tickets: TicketKeys | None,
        session_cache: sessions.SessionCache | None = None,
    ) -> None:
        """``session_cache``: where every context keeps its TLS 1.2 sessions (shared by the
        workers); None leaves each process its own OpenSSL cache."""
        self.sites = sites
        self.store = store
        self.stapling = stapling
        self.tickets = tickets
        self.session_cache = session_cache
        self.contexts = SiteContexts()
        self.by_name: dict[str, ssl.SSLContext] = {}
        self._trust: dict[str, bytes] = {}  # site -> fingerprint of the trust it was built with

    @property
    def client_auth(self) -> bool:
        return any(uses_client_auth(site) for site in self.sites)

    def state_dir(self) -> Path | None:
        """The local directory (the internal CRL file), also with a database store."""
        path = local_state_dir(self.store)
        return path if path.is_dir() else None

    def material(self, site: SiteConfig) -> TrustMaterial:
        auth = client_auth_of(site)
        assert auth is not None
        if auth.trust:
            return file_material(auth)
        return internal_material(self.store, self.state_dir())

    def _context(self, cert: SiteCertificate, material: TrustMaterial | None) -> ssl.SSLContext:
        site = cert.site
        ctx = new_server_context(alpn=H2_ALPN if site.http2 and site.mode == "http" else H1_ALPN)
        install_all([ctx], self.tickets)
        if self.tickets is not None:
            socket_tls.compile_ticket_keys(ctx, self.tickets)
        if self.session_cache is not None and sessions.install(ctx, self.session_cache):
            socket_tls.filter_session_callbacks(ctx)
        load_chain_into(ctx, cert.fullchain_pem, cert.key_pem)
        auth = client_auth_of(cert.site)
        if material is not None and auth is not None:
            configure(ctx, cert.name, auth, material)
            self._trust[cert.name] = material.fingerprint
        return ctx

    def build(self, certs: dict[str, SiteCertificate]) -> None:
        """Start-up: a failure here (unreadable trust bundle) stops the server with its reason."""
        for site in self.sites:
            cert = certs[site.hosts[0]]
            material = self.material(site) if uses_client_auth(site) else None
            ctx = self._context(cert, material)
            self.by_name[cert.name] = ctx
            self.contexts.add(site.hosts, ctx)
            self.follow_ocsp(cert)

    def follow_ocsp(self, cert: SiteCertificate) -> None:
        tls = cert.site.tls
        enabled = tls is None or tls.ocsp_stapling
        self.stapling.site(cert.name, self.by_name[cert.name], cert.fullchain_pem, enabled=enabled)

    def swap(self, certs: list[SiteCertificate]) -> None:
        for cert in certs:
            load_chain_into(self.by_name[cert.name], cert.fullchain_pem, cert.key_pem)
            self.follow_ocsp(cert)
            log.info("now serving certificate %X for %s", cert.leaf.serial_number, cert.name)

    def refresh_trust(self, current: dict[str, SiteCertificate]) -> list[str]:
        """Rebuild the context of every mTLS site whose trust material changed; returns their
        names. A bundle that became unreadable keeps the current context (and says so)."""
        rebuilt = []
        for site in self.sites:
            if not uses_client_auth(site):
                continue
            name = site.hosts[0]
            try:
                material = self.material(site)
            except TlsgateError as exc:
                log.error("site %s: keeping the current client trust: %s", name, exc)
                continue
            if material.fingerprint == self._trust.get(name):
                continue
            old = self.by_name[name]
            new = self._context(current[name], material)
            self.by_name[name] = new
            self.contexts.replace(old, new)
            self.follow_ocsp(current[name])
            rebuilt.append(name)
            log.info("site %s: client certificates now checked against new trust/CRL", name)
        return rebuilt

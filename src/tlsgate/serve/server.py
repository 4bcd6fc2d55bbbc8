"""The control plane's wiring of ``tlsgate serve``: certificates, renewal, store sync, SIGHUP,
OCSP and metrics, around the worker processes and their listeners.

Shape: the master loads configuration and certificates and builds the TLS contexts, then forks
``workers`` processes that each bind the listening ports with ``SO_REUSEPORT`` (the kernel spreads
connections across them) and run a uvloop event loop. With one worker, the master is the worker.
With ``max_connections_per_worker`` the master binds the listeners itself, holds them and forks
every worker onto them, a successor whenever one is spent or dies. :mod:`tlsgate.serve.supervisor`
forks, signals and reaps the processes, :mod:`tlsgate.serve.listeners` opens each worker's
listeners, :mod:`tlsgate.serve.challenges` answers the CA's validations; this module decides
what each process runs.

Signals: SIGTERM/SIGINT stop accepting, let in-flight exchanges finish (up to ``drain``
seconds), then exit. SIGHUP re-reads certificate files and the store, swaps certificates into
the live contexts, regenerates the internal CA's CRL and re-reads CRL files (an mTLS site
whose client trust changed gets a new context) and retries failing renewals at once. The
master runs the renewer (:mod:`tlsgate.renewal`) for every certificate that is not a file
pair, stores what it gets and tells the workers (SIGHUP) to pick it up; a renewal failure
keeps the current certificate serving. The workers answer the CA's http-01 and tls-alpn-01
validations from the store, where the master's renewer put the answers.

Several nodes on one PostgreSQL store form a cluster with nothing more: the renewer orders each
certificate on one node at a time (a lease in the store), and every master watches the store
(:mod:`tlsgate.serve.store_sync`: notifications, and a poll every few seconds) and swaps in what
another node stored, exactly as for its own renewals; a revocation recorded in the store by any
process or node regenerates the internal CRL the same way. A store outage is reported (logs,
``tlsgate_store_up``) and waited out; what is served stays served.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import os
import shutil
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime

from tlsgate.config import Config
from tlsgate.errors import StorageError, TlsgateError
from tlsgate.pki.pem import load_certificates
from tlsgate.proxy import socket_tls
from tlsgate.proxy.acceptor import Choice
from tlsgate.proxy.access_log import AccessLog
from tlsgate.proxy.edge import Edge
from tlsgate.proxy.lifecycle import ConnectionBudget, drain, retire
from tlsgate.proxy.routing import Router
from tlsgate.proxy.upstream import UpstreamPool
from tlsgate.renewal.renewer import Renewer
from tlsgate.serve.admin import AdminProtocol
from tlsgate.serve.certificates import FILE_CHECK, CertificateManager, SiteCertificate
from tlsgate.serve.challenges import Challenges
from tlsgate.serve.client_trust import InternalCrl
from tlsgate.serve.hsts import hsts_headers
from tlsgate.serve.listeners import Server, bind_slot, choose_site, open_listeners, peeks
from tlsgate.serve.metrics import (
    Metrics,
    RenewalStatus,
    ServedCertificate,
    fold_loop,
    prepare_multiprocess,
)
from tlsgate.serve.ocsp import OcspCache, cache_directory
from tlsgate.serve.preflight import check_free
from tlsgate.serve.sites import SiteTls, client_auth_of
from tlsgate.serve.stapling import SiteStapling
from tlsgate.serve.store_sync import StoreSync
from tlsgate.serve.supervisor import REAP_INTERVAL, Slot, Supervisor, trim_loop
from tlsgate.store import local_state_dir
from tlsgate.store.base import ManagedCertificate, Store
from tlsgate.store.health import StoreHealth
from tlsgate.tls.clienthello import ClientHello
from tlsgate.tls.sessions import SessionCache
from tlsgate.tls.tickets import TicketKeys

__all__ = ["EdgeServer"]

log = logging.getLogger("tlsgate.serve")


class EdgeServer:
    """One ``tlsgate serve``: the master's state (certificates, contexts, renewer, metrics),
    inherited by every worker it forks; each process then runs :meth:`_main` in its own loop."""

    def __init__(self, config: Config, store: Store) -> None:
        self.config = config
        self.store = store
        self.manager = CertificateManager(store, config.sites)
        self.tls: SiteTls | None = None
        #: None: TLS driven on the socket; else why the event loop's TLS serves (set at run).
        self.tls_path: str | None = "not started"
        self.crl: InternalCrl | None = None
        self.on_ready: Callable[[], None] | None = None
        self.metrics: Metrics | None = None
        self.stapling = SiteStapling(OcspCache(cache_directory(str(local_state_dir(store)))))
        self.renewer: Renewer | None = None
        self.health = StoreHealth(store.location)
        self.challenges = Challenges(store)
        self.supervisor = Supervisor(self._run_loop, after_fork=self._in_worker)

    def _ticket_keys(self) -> TicketKeys | None:
        """Session-ticket keys from the store's secret: the same in every worker (they fork
        after this) and after a restart. None when tickets are off."""
        rotation = self.config.server.ticket_rotation
        return None if rotation is None else TicketKeys(self.store.ticket_secret(), rotation)

    # -- certificates --------------------------------------------------------------------------
    def _swap(self, certs: list[SiteCertificate]) -> None:
        assert self.tls is not None
        self.tls.swap(certs)
        if certs:
            self._publish_certificates()

    def _refresh_crl(self) -> bool:
        """Master: rewrite the internal CA's CRL if the revoked set changed (or it ages). False
        when that failed (the contexts keep the CRL they have; the caller tries again)."""
        if self.crl is None:
            return True
        try:
            ca = self.manager.ca(datetime.now(UTC))
            self.crl.refresh(datetime.now(UTC), lambda now: ca.crl(now=now))
        except TlsgateError as exc:
            log.error(
                "cannot write the internal CRL, client certificates keep the old one: %s", exc
            )
            return False
        return True

    def _reload_trust(self) -> bool:
        """Master: the internal CRL regenerated from the store's revocations, then every mTLS
        site whose trust (its CA bundles, CRL files, that CRL) changed gets a new context, here
        and in every worker; open connections keep theirs. What a revocation seen in the store
        and the ``crl_refresh`` timer do (SIGHUP does the same and tells the workers anyway).
        False when the CRL could not be written."""
        written = self._refresh_crl()
        assert self.tls is not None
        if self.tls.refresh_trust(self.manager.current):
            self._tell_workers()
        return written

    def _reload_from_sources(self) -> None:
        """Worker side of SIGHUP: take whatever the store and files hold now."""
        now = datetime.now(UTC)
        self._swap(self.manager.reload(now))
        assert self.tls is not None
        self.tls.refresh_trust(self.manager.current)  # the CRL the master wrote
        self.stapling.reload(now)  # the OCSP responses the master wrote

    def _on_renewed(self, record: ManagedCertificate) -> bool:
        """A new certificate is in the store (this node's renewal or another node's): serve it
        here, then in every worker. True when it is served (now or already); False when it is
        not fit for its site here (expired, other names), which keeps the current one."""
        cert = self.manager.accept(record, datetime.now(UTC))
        if cert is None:
            return False
        current = self.manager.current.get(cert.name)
        if current is not None and current.fullchain_pem == cert.fullchain_pem:
            return True  # already served (the renewer and the store watch both tell us)
        self.manager.current[cert.name] = cert
        self._swap([cert])
        self._tell_workers()
        return True

    # -- the accept path -----------------------------------------------------------------------
    def _choose(self, hello: ClientHello | None, normal: Choice, edge: Edge) -> Choice:
        """The challenge certificate for a tls-alpn-01 validation, else the site's context and
        its kind of connection."""
        assert self.tls is not None
        chosen = self.challenges.choose(hello, normal)
        return chosen if chosen is not None else choose_site(self.tls.contexts, hello, normal, edge)

    # -- lifecycle -----------------------------------------------------------------------------
    def run(self) -> int:
        cfg = self.config.server
        admin = (cfg.admin_listen,) if cfg.admin_listen is not None else ()
        check_free((*cfg.listen, *cfg.http_listen, *admin))
        now = datetime.now(UTC)
        certs = self.manager.load_all(now)
        # Before the fork, like the ticket keys: every worker resumes every other's TLS 1.2
        # sessions by ID (OpenSSL's own cache is per process).
        self.tls = SiteTls(
            self.config.sites, self.store, self.stapling, self._ticket_keys(), SessionCache()
        )
        auths = [a for a in map(client_auth_of, self.config.sites) if a is not None]
        if any(not auth.trust for auth in auths):  # someone trusts the internal CA
            state = self.tls.state_dir()
            if state is not None:
                self.crl = InternalCrl(self.store, state)
                self._refresh_crl()  # before the contexts: they load it
        self.tls.build(certs)
        # Before the fork too: every worker drives TLS the same way (and says so once, here).
        self.tls_path = self._choose_tls_path()
        self.stapling.start(now)  # before fork: every worker starts with the responses
        workers = self.config.server.workers or os.cpu_count() or 1
        metrics_dir = None
        if self.config.server.admin_listen is not None:
            if workers > 1 or self.config.server.max_connections_per_worker:
                metrics_dir = prepare_multiprocess()
            self.metrics = Metrics(renewals=self._renewal_statuses, store_up=lambda: self.health.up)
            self._publish_certificates()
        recycle = functools.partial(bind_slot, cfg) if cfg.max_connections_per_worker else None
        try:
            return self.supervisor.run(workers, recycle=recycle)
        finally:
            if metrics_dir is not None:
                shutil.rmtree(metrics_dir, ignore_errors=True)

    def _publish_certificates(self) -> None:
        if self.metrics is not None:
            # Every certificate presented, intermediates included: an intermediate that expires
            # before the leaf breaks the site as surely (tlsgate monitor reports them the same).
            self.metrics.certificates(
                ServedCertificate.of(c.name, cert)
                for c in self.manager.current.values()
                for cert in [c.leaf, *load_certificates(c.fullchain_pem)[1:]]
            )

    def _renewal_statuses(self) -> list[RenewalStatus]:
        """Master, at scrape time: the renewal loop's state for the sites it renews (the store
        may hold states of sites no longer configured; those are not this server's business)."""
        renewed = {site.hosts[0] for site in self.config.sites if site.tls is None}
        try:
            states = self.store.list_renewal_states()
        except StorageError as exc:  # an outage: reported once by the health, not per scrape
            self.health.failed(exc)
            return []
        return [
            RenewalStatus(state.name, state.failures, state.next_attempt)
            for state in states
            if state.name in renewed
        ]

    def _in_worker(self) -> None:
        """A fresh worker's own: a database connection must not cross fork(), so each worker
        opens its own; its counters are its own too."""
        self.store = self.manager.store = self.challenges.store = self.store.reopen()
        if self.metrics is not None:
            self.metrics = Metrics()

    def _run_loop(self, *, master: bool, listen: bool = True, slot: Slot | None = None) -> int:
        try:
            import uvloop

            loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
        except ImportError:  # pragma: no cover - uvloop is a dependency; keep working without
            loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            return loop.run_until_complete(self._main(master=master, listen=listen, slot=slot))
        finally:
            loop.close()

    async def _main(self, *, master: bool, listen: bool, slot: Slot | None = None) -> int:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        server_cfg = self.config.server
        access_log = AccessLog(server_cfg.access_log) if listen else None
        router = Router(self.config.sites)
        pool = UpstreamPool(loop)
        background: list[asyncio.Task[None]] = []

        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: self._on_hup(master))
        budget = ConnectionBudget(
            server_cfg.max_connections_per_worker if slot is not None else 0,
            functools.partial(self._spent, stop),
        )
        edges: list[Edge] = []
        servers: list[Server] = []
        if listen:
            assert self.tls is not None
            front = self.tls.contexts.default
            assert front is not None
            edges, servers = await open_listeners(
                server_cfg,
                router=router,
                pool=pool,
                access_log=access_log,
                metrics=self.metrics.counts if self.metrics is not None else None,
                hsts=hsts_headers(self.config.sites),
                front=front,
                budget=budget,
                held=iter(slot.sockets if slot is not None else ()),
                choose=self._choose if peeks(self.config.sites, self.tls.client_auth) else None,
                lookup=self.tls.contexts.lookup if self.tls_path is None else None,
                http01=self.challenges.http01,
            )
            background.append(loop.create_task(trim_loop(budget)))
            if self.metrics is not None and self.metrics.multiprocess:
                # Another process renders /metrics: this one's counts reach it through the
                # shared files, folded every second (one process folds when it renders).
                background.append(loop.create_task(fold_loop(self.metrics)))
        if master and server_cfg.admin_listen is not None and self.metrics is not None:
            metrics = self.metrics
            admin = server_cfg.admin_listen
            servers.append(
                await loop.create_server(lambda: AdminProtocol(metrics), admin.host, admin.port)
            )
        if master:
            self._announce()
            managed = self.manager.managed()
            self.renewer = Renewer(
                self.store,
                managed,
                self._on_renewed,
                health=self.health,
                holder=self.manager.holder,
            )
            background.append(loop.create_task(self.renewer.run()))
            if managed or self.crl is not None:
                sync = StoreSync(
                    self.store,
                    (m.name for m in managed),
                    self.health,
                    self._on_renewed,
                    revoked=self._reload_trust if self.crl is not None else None,
                    poll=server_cfg.store_poll,
                )
                background.append(loop.create_task(sync.run()))
            background.append(loop.create_task(self.stapling.run(self._tell_workers)))
            if self.manager.has_files:
                background.append(loop.create_task(self._file_loop()))
            if self.tls is not None and self.tls.client_auth:
                background.append(loop.create_task(self._trust_loop()))
            if self.supervisor.recycler is not None:
                background.append(loop.create_task(self.supervisor.recycler.run(REAP_INTERVAL)))
        # Everything made so far lives as long as the process (modules, contexts, sites, the
        # pool): out of the collector's sight, a full collection no longer walks that heap
        # again and again as connections come and go (4 % of a worker's CPU under handshake
        # load, measured).
        gc.freeze()
        await stop.wait()
        for task in background:
            task.cancel()
        # Let them unwind now: a task still pending when the loop closes is an error.
        await asyncio.gather(*background, return_exceptions=True)
        if master:
            self.supervisor.tell(signal.SIGTERM)
        for server in servers:
            stop_accepting = getattr(server, "stop_accepting", None)  # our acceptors have it
            if budget.spent and stop_accepting is not None:
                stop_accepting()  # its accepted connections are drained, not dropped
            else:
                server.close()
        deadline = time.monotonic() + server_cfg.timeouts.drain
        for edge in edges:
            edge.draining = True
        if budget.spent:
            await retire(edges, deadline, grace=server_cfg.timeouts.handshake)
        await drain(edges, deadline)
        for edge in edges:
            for conn in list(edge.connections):
                conn.close()
        pool.close()
        if access_log is not None:
            access_log.flush()
        if self.metrics is not None and self.metrics.multiprocess:
            self.metrics.fold()  # what the drain answered, after fold_loop's last fold
        if master:
            self.supervisor.reap_all(server_cfg.timeouts.drain + 5)
        return 0

    def _choose_tls_path(self) -> str | None:
        """Drive TLS on the socket (the compiled data plane's, :mod:`tlsgate.proxy.socket_tls`)
        when every listener can: None then, else why the event loop's TLS serves instead."""
        assert self.tls is not None
        for ctx in self.tls.contexts.contexts():
            reason = socket_tls.unusable(ctx)
            if reason is not None:
                return reason
        self.tls.contexts.use_native(socket_tls.install)
        return None

    def _announce(self) -> None:
        cfg = self.config.server
        parts = [f"https on {', '.join(str(a) for a in cfg.listen)}"]
        if cfg.http_listen:
            parts.append(f"http (redirect) on {', '.join(str(a) for a in cfg.http_listen)}")
        sites = "; ".join(
            f"{', '.join(s.hosts)} -> {', '.join(str(u) for u in s.upstreams)}"
            for s in self.config.sites
        )
        log.warning("serving %s; sites: %s", "; ".join(parts), sites)
        if cfg.listen:
            log.info(
                "TLS: %s",
                f"OpenSSL on the socket (compiled data plane); {socket_tls.kernel_tls()}"
                if self.tls_path is None
                else f"the event loop's ({self.tls_path})",
            )
        if self.on_ready is not None:
            self.on_ready()

    def _spent(self, stop: asyncio.Event) -> None:
        """Worker: ``max_connections_per_worker`` reached. Ask for a successor, then drain."""
        self.supervisor.spent()
        stop.set()

    def _on_hup(self, master: bool) -> None:
        if master:
            self._swap(self.manager.reload(datetime.now(UTC)))
            if self.tls is not None and self.tls.client_auth:
                # Before the workers hear of it: they load the CRL this writes.
                self._refresh_crl()
                self.tls.refresh_trust(self.manager.current)
            if self.renewer is not None:
                self.renewer.retry_now()
            self.stapling.retry_now()
            self._tell_workers()
        else:
            self._reload_from_sources()

    def _tell_workers(self) -> None:
        self.supervisor.tell(signal.SIGHUP)

    async def _trust_loop(self) -> None:
        """Re-read client trust (the internal CRL, CRL files) every ``crl_refresh`` seconds."""
        every = min(
            auth.crl_refresh for auth in map(client_auth_of, self.config.sites) if auth is not None
        )
        while True:
            await asyncio.sleep(every)
            self._reload_trust()

    async def _file_loop(self) -> None:
        """Re-read certificate files: a renewal done outside tlsgate is served within a minute."""
        while True:
            await asyncio.sleep(FILE_CHECK.total_seconds())
            changed = self.manager.reload(datetime.now(UTC))
            if changed:
                self._swap(changed)
                self._tell_workers()

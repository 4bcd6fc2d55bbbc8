"""Serve what the store holds: certificates another node (or process) stored are picked up,
and so are revocations (for the internal CA's CRL that client certificates are checked against).

In a cluster only one node renews a certificate; the others learn of it here. Two ways, one
path: the store's notifications (:meth:`~tlsgate.store.base.Store.watch_certificates`, PostgreSQL
LISTEN/NOTIFY: within a second) wake the loop early, and every ``poll`` seconds (``[server]
store_poll``, 5 by default) it looks anyway (for notifications lost in an outage, and for
SQLite, which has none). Each look is one cheap read of every chain's fingerprint; only
names whose fingerprint changed since the last look are loaded, so a thousand sites cost one
query every few seconds, not a thousand.

Revocations the same way: one read of the active CA's revoked serials (``revocation_mark``, an
index lookup; PostgreSQL notifies on every revocation), and the CRL is regenerated only when
they changed. So a client certificate revoked by ``tlsgate ca revoke`` in another process, or
on another node, fails its next handshake within a second (PostgreSQL) or one poll (SQLite).

The reads run in a thread of their own with a store connection of their own: the master's
event loop (which with one worker also serves traffic) never waits on a database that is
restarting. The same look is the store's health check: its failure or success is what
:class:`~tlsgate.store.health.StoreHealth` reports (logs, ``tlsgate_store_up``). A failed look
changes nothing that is served.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

from tlsgate.errors import StorageError
from tlsgate.store.base import ManagedCertificate, Store, chain_fingerprint
from tlsgate.store.health import StoreHealth

__all__ = ["POLL", "StoreSync"]

log = logging.getLogger("tlsgate.serve")

#: Seconds between looks when no notification came.
POLL = 5.0


class StoreSync:
    """The master's watch on the store for the certificates of ``names`` and, with
    ``revoked``, for revocations."""

    def __init__(
        self,
        store: Store,
        names: Iterable[str],
        health: StoreHealth,
        apply: Callable[[ManagedCertificate], bool],
        *,
        revoked: Callable[[], bool] | None = None,
        poll: float = POLL,
    ) -> None:
        self.source = store
        self.names = frozenset(names)
        self.health = health
        #: serve a stored certificate if it is fit; True when it is served (now or already)
        self.apply = apply
        self.poll = poll
        #: name -> fingerprint of the chain last seen *and served*; a chain that was refused
        #: is looked at again on the next round (it may become valid, e.g. clock skew)
        self.seen: dict[str, str] = {}
        #: apply the store's revocations (regenerate the CRL, rebuild the contexts); True when
        #: done, False to try again on the next look. None: no site checks the internal CA's CRL
        self.revoked = revoked
        #: the revocation mark last applied (None: none yet, so the first look applies)
        self.mark: str | None = None
        self._store: Store | None = None

    def changed(self) -> tuple[list[ManagedCertificate], str | None]:
        """The stored certificates that differ from the last ones served, and the revocation
        mark if it differs from the last one applied (in the sync thread)."""
        if self._store is None:
            self._store = self.source.reopen()
        fresh = []
        if self.names:
            prints = self._store.managed_fingerprints()
            for name in sorted(self.names):
                fingerprint = prints.get(name)
                if fingerprint is None or self.seen.get(name) == fingerprint:
                    continue
                record = self._store.load_managed(name)
                if record is not None:
                    fresh.append(record)
        mark = None
        if self.revoked is not None:
            mark = self._store.revocation_mark()
            if mark == self.mark:
                mark = None
        return fresh, mark

    def _close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    async def run(self) -> None:
        """Until cancelled; never raises otherwise."""
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()

        def notified(name: str) -> None:  # in the listener's thread
            if not name or name in self.names:
                loop.call_soon_threadsafe(wake.set)

        thread = ThreadPoolExecutor(1, thread_name_prefix="tlsgate-store-sync")
        watch = self.source.watch_certificates(notified)
        try:
            while True:
                wake.clear()
                await self.once(thread)
                try:
                    async with asyncio.timeout(self.poll):
                        await wake.wait()
                except TimeoutError:
                    pass
        finally:
            watch.close()
            thread.submit(self._close)
            thread.shutdown(wait=False)

    async def once(self, thread: ThreadPoolExecutor | None = None) -> None:
        loop = asyncio.get_running_loop()
        try:
            records, mark = await loop.run_in_executor(thread, self.changed)
        except StorageError as exc:
            self.health.failed(exc)
            return
        except Exception:  # a bug must not end the watch for good
            log.exception("cannot compare the store with the served certificates")
            return
        self.health.ok()
        for record in records:
            if self.apply(record):
                self.seen[record.name] = chain_fingerprint(record.fullchain_pem)
        if mark is not None and self.revoked is not None and self.revoked():
            self.mark = mark

"""The renewal loop: one task per served certificate, in the process that owns the state.

Each task plans its next attempt with :func:`tlsgate.acme.client.schedule.next_attempt` (ARI
when the CA offers it, else the lifetime rule; backoff after failures; the emergency pace near
expiry), sleeps against the wall clock in short steps (a machine that slept past the moment
renews on wake), asks the issuer, stores the result and hands it to ``on_renewed``. A failure
changes nothing that is served: the error and the next attempt are logged and recorded in the
store, where ``tlsgate status`` reads them.

What counts as "the current certificate" is what the store holds: a certificate that is
expired, for other names or from another issuer is replaced at once (but served until then).

Several nodes on one store (a cluster on PostgreSQL) renew each certificate once, the way
certmagic does: before ordering, a node takes the lease ``renew:<name>`` (held while the order
runs, renewed every ``heartbeat``, expiring ``lease_ttl`` after the last renewal, so a node that
crashed mid-order is taken over within seconds), then re-reads the store, because another node
may have stored a new certificate since this one planned. A node that finds the lease taken does
not order: it waits for the certificate (or for the lease to end without one) and plans again
from what the store then holds, including the holder's failures and backoff. On a single node
the lease is always free and nothing changes.

A store that cannot be reached stops renewals, not serving: the loop waits and retries with
growing pauses, and a certificate obtained just before the store went away is kept in memory
and stored when it returns rather than ordered again (a fresh order would spend the CA's rate
limits on a certificate we already hold; the one being served meanwhile is still valid, since
renewal starts with a third of its lifetime left). An order the outage cuts short (its challenge
answers cannot be written) is not the CA's failure: it is not counted, backed off or recorded
as the certificate's error, and is ordered again on the outage's pace once the store answers.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import secrets
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from cryptography import x509

from tlsgate.acme.client.schedule import RenewalPlan, backoff, next_attempt
from tlsgate.errors import AlreadyExists, NotFound, NotInitialized, StorageError, TlsgateError
from tlsgate.pki.names import parse_identities
from tlsgate.pki.pem import load_certificates
from tlsgate.renewal.issuers import Issuer
from tlsgate.store.base import ManagedCertificate, RenewalState
from tlsgate.store.health import StoreHealth
from tlsgate.store.roles import LeasedRenewalStore

__all__ = ["Managed", "Renewer", "holder_id", "stored_leaf"]

log = logging.getLogger("tlsgate.renewal")

#: Re-plan at least this often, so a changed ARI window is seen (RFC 9773 suggests checking
#: renewal information a few times a day).
REPLAN = timedelta(hours=6)
#: The longest single sleep: wall-clock time is re-read after each one.
STEP = 30.0
#: The soonest a certificate is replaced after it arrived when its CA asks for that (ARI).
RENEW_AGAIN = timedelta(minutes=10)
#: Orders in flight at once; more sites wait their turn rather than hammer the CA.
PARALLEL = 4
#: How long a renewal lease outlives its holder's last heartbeat: how soon another node takes
#: over an order whose node died (certmagic considers its locks stale after about 10 s).
LEASE_TTL = timedelta(seconds=15)
#: How often a node that is not the holder checks whether the certificate arrived or the lease
#: ended without one.
LEASE_POLL = 1.0
#: Pauses while the store is unreachable, in seconds (the last one repeats).
STORE_RETRY = (1.0, 2.0, 5.0, 10.0, 30.0)
#: Storage errors that are the store's answer, not its absence: an attempt they end failed.
REFUSALS = (AlreadyExists, NotFound, NotInitialized)


def holder_id() -> str:
    """Who holds a lease: unique per process, and readable in ``lease`` rows and logs."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def _chain(cert: ManagedCertificate | None) -> bytes | None:
    return cert.fullchain_pem if cert is not None else None


@dataclass(frozen=True)
class Managed:
    """One certificate the edge keeps fresh."""

    name: str  # the store's key: the site's first host name
    names: tuple[str, ...]  # exactly what the certificate must cover
    issuer: Issuer


def stored_leaf(
    cert: ManagedCertificate | None, names: tuple[str, ...]
) -> tuple[x509.Certificate | None, str]:
    """The stored certificate's leaf and why it must be replaced now ("" if it need not)."""
    if cert is None:
        return None, "initial"
    try:
        leaf = load_certificates(cert.fullchain_pem, source="stored certificate")[0]
    except TlsgateError:
        return None, "initial"
    try:
        have = set(leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        have = set()
    if not set(parse_identities(names)) <= have:  # covering more is fine until renewal
        return leaf, "names-changed"
    return leaf, ""


class Renewer:
    def __init__(
        self,
        store: LeasedRenewalStore,
        managed: Sequence[Managed],
        on_renewed: Callable[[ManagedCertificate], object],
        *,
        rng: random.Random | None = None,
        holder: str | None = None,
        lease_ttl: timedelta = LEASE_TTL,
        lease_poll: float = LEASE_POLL,
        health: StoreHealth | None = None,
    ) -> None:
        self.store = store
        self.managed = tuple(managed)
        self.on_renewed = on_renewed
        self.rng = rng or random.Random()
        self.holder = holder or holder_id()
        self.lease_ttl = lease_ttl
        #: a third of the TTL: two heartbeats may fail (a slow store) before the lease lapses
        self.heartbeat = lease_ttl.total_seconds() / 3
        self.lease_poll = lease_poll
        self.health = health
        self._wake = asyncio.Event()
        self._parallel = asyncio.Semaphore(PARALLEL)

    async def run(self) -> None:
        """Keep every certificate fresh until cancelled; never raises otherwise."""
        try:
            async with asyncio.TaskGroup() as group:
                for managed in self.managed:
                    group.create_task(self._keep(managed))
        finally:
            for issuer in {id(m.issuer): m.issuer for m in self.managed}.values():
                await issuer.close()

    def retry_now(self) -> None:
        """Skip the backoff of failing certificates (SIGHUP: "I fixed it, try again")."""
        self._wake.set()

    # -- one certificate ---------------------------------------------------------------------
    async def _keep(self, m: Managed) -> None:
        state: RenewalState | None = None
        outage = 0
        while True:
            try:
                if state is None:
                    state = self._stored_state(m)
                state = await self._round(m, state)
                outage = 0
            except asyncio.CancelledError:
                raise
            except StorageError as exc:
                # Without the store there is no lease, no challenge answer and nowhere to put a
                # certificate: wait for it. What is served stays served.
                self._store_failed(m, exc)
                await asyncio.sleep(STORE_RETRY[min(outage, len(STORE_RETRY) - 1)])
                outage += 1
            except Exception:  # a bug must not end renewals for good: log it, try later
                log.exception("site %s: renewal loop error", m.name)
                await asyncio.sleep(60)

    def _stored_state(self, m: Managed, fallback: RenewalState | None = None) -> RenewalState:
        """The state the store holds (another node's, in a cluster), if it is for this issuer."""
        state = self.store.load_renewal_state(m.name)
        if state is not None and state.issuer == m.issuer.name:
            return state
        if fallback is not None:
            return fallback
        return RenewalState(name=m.name, issuer=m.issuer.name, next_attempt=None, reason="")

    def _store_failed(self, m: Managed, exc: StorageError) -> None:
        if self.health is not None:
            self.health.failed(exc)  # logs the outage once, for every site
        else:
            log.warning("site %s: renewal waits for the store: %s", m.name, exc)

    async def _round(self, m: Managed, state: RenewalState) -> RenewalState:
        now = datetime.now(UTC)
        stored = self.store.load_managed(m.name)
        leaf, why = stored_leaf(stored, m.names)
        if not why and stored is not None and stored.issuer != m.issuer.name:
            why = "issuer-changed"
        window = None
        if leaf is not None and not why:
            window = await m.issuer.renewal_window(leaf)
        got_at = stored.updated_at if stored is not None else None
        plan = self._plan(now, leaf, why, state, window, got_at)
        state = replace(
            state,
            next_attempt=plan.at,
            reason=plan.reason,
            ari_window=window,
            updated_at=now,
        )
        self._save(state)
        if plan.at > now:
            log.info("site %s: next renewal %s (%s)", m.name, _when(plan.at), plan.reason)
        if not await self._sleep_until(plan.at, min(plan.at, now + REPLAN), state.failures > 0):
            return state  # re-plan: ARI may have moved, or the day changed under us
        return await self._leased(m, stored, leaf, why, state)

    # -- one node at a time ------------------------------------------------------------------
    async def _leased(
        self,
        m: Managed,
        planned: ManagedCertificate | None,
        leaf: x509.Certificate | None,
        why: str,
        state: RenewalState,
    ) -> RenewalState:
        """Attempt under the lease; without it, wait for the holder's result."""
        lease = f"renew:{m.name}"
        if not self.store.try_lease(lease, self.holder, self.lease_ttl, datetime.now(UTC)):
            return await self._wait_for_holder(m, lease, planned, state)
        lost = asyncio.Event()
        work = asyncio.create_task(self._locked_attempt(m, planned, leaf, why, state))
        beat = asyncio.create_task(self._beat(m, lease, work, lost))
        try:
            return await work
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if lost.is_set() and task is not None and not task.cancelling():
                return self._stored_state(m, state)  # the new holder's result decides
            raise
        finally:
            beat.cancel()
            await asyncio.gather(beat, return_exceptions=True)
            if not lost.is_set():
                try:
                    self.store.release_lease(lease, self.holder)
                except StorageError:
                    pass  # it lapses by itself after the TTL

    async def _locked_attempt(
        self,
        m: Managed,
        planned: ManagedCertificate | None,
        leaf: x509.Certificate | None,
        why: str,
        state: RenewalState,
    ) -> RenewalState:
        async with self._parallel:
            # Planned from an older read: another node may have stored a certificate since
            # (it held the lease a moment ago). Then there is nothing to order.
            stored = self.store.load_managed(m.name)
            if _chain(stored) != _chain(planned):
                log.info("site %s: another node stored a new certificate; not ordering", m.name)
                if stored is None:
                    return self._stored_state(m, state)
                return self._adopt(m, stored, state)
            return await self._attempt(m, leaf, why, state)

    async def _beat(
        self, m: Managed, lease: str, work: asyncio.Task[RenewalState], lost: asyncio.Event
    ) -> None:
        """Renew the lease while ``work`` runs; cancel it if another node took the lease (ours
        lapsed: this process stalled, or could not reach the store for a whole TTL)."""
        while True:
            await asyncio.sleep(self.heartbeat)
            try:
                ours = self.store.try_lease(lease, self.holder, self.lease_ttl, datetime.now(UTC))
            except StorageError as exc:
                self._store_failed(m, exc)
                continue  # the order goes on; the lease is retaken when the store is back
            if not ours:
                log.warning(
                    "site %s: lost the renewal lease to %s; leaving the order to it",
                    m.name,
                    self.store.lease_holder(lease, datetime.now(UTC)) or "another node",
                )
                lost.set()
                work.cancel()
                return

    async def _wait_for_holder(
        self, m: Managed, lease: str, planned: ManagedCertificate | None, state: RenewalState
    ) -> RenewalState:
        """Another node is ordering: wait until it stored a certificate, or until its lease
        ended without one (it failed, or died and the lease lapsed), then plan again from what
        the store holds, its failures and backoff included."""
        holder = self.store.lease_holder(lease, datetime.now(UTC))
        log.info(
            "site %s: %s is renewing it; waiting for its certificate",
            m.name,
            holder or "another node",
        )
        while True:
            await asyncio.sleep(self.lease_poll)
            stored = self.store.load_managed(m.name)
            if _chain(stored) != _chain(planned):
                if stored is None:
                    break
                log.info("site %s: another node stored a new certificate", m.name)
                return self._adopt(m, stored, state)
            if self.store.lease_holder(lease, datetime.now(UTC)) is None:
                break
        return self._stored_state(m, state)

    def _adopt(self, m: Managed, stored: ManagedCertificate, state: RenewalState) -> RenewalState:
        """Serve a certificate another node stored; its arrival ends any failure streak, even
        if the holder's own record of that is not in the store yet (the plan then starts from
        the certificate, not from a stale "due now")."""
        self.on_renewed(stored)
        return replace(
            self._stored_state(m, state),
            failures=0,
            last_error=None,
            next_attempt=None,
            reason="",
        )

    def _plan(
        self,
        now: datetime,
        leaf: x509.Certificate | None,
        why: str,
        state: RenewalState,
        window: tuple[datetime, datetime] | None,
        got_at: datetime | None = None,
    ) -> RenewalPlan:
        since = state.last_attempt or now
        if state.failures and state.next_attempt is not None and state.next_attempt >= since:
            # Planned when the attempt failed (and logged then): keep it, across restarts too.
            return RenewalPlan(max(now, state.next_attempt), state.reason)
        if leaf is None or why or now >= leaf.not_valid_after_utc:
            reason = why or "expired"
            if not state.failures:
                return RenewalPlan(now, reason)
            life = None if leaf is None else leaf.not_valid_after_utc - leaf.not_valid_before_utc
            wait = backoff(state.failures, self.rng, lifetime=life)
            return RenewalPlan(max(now, since + wait), "backoff")
        plan = next_attempt(
            since if state.failures else now,
            leaf.not_valid_before_utc,
            leaf.not_valid_after_utc,
            failures=state.failures,
            ari_window=window,
            rng=self.rng,
        )
        if state.failures == 0 and state.next_attempt is not None and plan.reason != "emergency":
            # The moment picked before a restart stands (it was jittered once; re-rolling on
            # every start would pull renewals earlier and earlier), unless ARI moved it.
            if state.reason == plan.reason == "lifetime" and state.next_attempt <= plan.at:
                plan = RenewalPlan(state.next_attempt, "lifetime")
        if got_at is not None and not state.failures and plan.reason in ("lifetime", "ari"):
            # Lifetimes count from not-before, which CAs backdate for clock skew (ours by 1 %
            # of the life, at most 5 minutes; Let's Encrypt by an hour, others by a fixed
            # amount): for a certificate of a few minutes from such a CA that makes it
            # "due" the moment it arrives, and renewing would loop. So never before
            # half of what was left of it when we got it; a CA that asks (ARI) for a certificate
            # it just issued to be replaced (revoked at once) waits at most RENEW_AGAIN.
            half = (leaf.not_valid_after_utc - got_at) / 2
            floor = got_at + (half if plan.reason == "lifetime" else min(half, RENEW_AGAIN))
            plan = RenewalPlan(max(plan.at, floor), plan.reason)
        return RenewalPlan(max(plan.at, now), plan.reason)

    async def _sleep_until(self, due: datetime, wake_at: datetime, failing: bool) -> bool:
        """Sleep until ``wake_at`` (re-reading the wall clock); True when ``due`` has come or
        a retry was asked for (and this certificate is failing)."""
        while True:
            now = datetime.now(UTC)
            if now >= due:
                return True
            if now >= wake_at:
                return False
            seconds = min(STEP, max(0.05, (wake_at - now).total_seconds()))
            try:
                async with asyncio.timeout(seconds):
                    await self._wake.wait()
            except TimeoutError:
                continue
            await asyncio.sleep(0)  # let every waiter see the event before it is cleared
            self._wake.clear()
            if failing:
                return True

    async def _attempt(
        self, m: Managed, leaf: x509.Certificate | None, why: str, state: RenewalState
    ) -> RenewalState:
        now = datetime.now(UTC)
        log.info("site %s: requesting a certificate from %s", m.name, m.issuer.name)
        try:
            issued = await m.issuer.issue(m.names, replaces=leaf)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if isinstance(exc, StorageError) and not isinstance(exc, REFUSALS):
                # The store went away under the order (its challenge answers could not be
                # written): counting that against the CA would back renewals off for hours
                # after a one-minute outage and show the CA's error in `tlsgate status`.
                # _keep waits for the store instead, reports the outage once and orders again.
                raise
            if isinstance(exc, TlsgateError):
                error = str(exc)
            else:  # not one of ours: keep the traceback for whoever debugs it
                log.debug("site %s: renewal failed", m.name, exc_info=True)
                error = f"{type(exc).__name__}: {exc}"
            failed = replace(
                state,
                failures=state.failures + 1,
                last_attempt=now,
                last_error=error,
                next_attempt=None,
            )
            retry = self._plan(datetime.now(UTC), leaf, why, failed, state.ari_window)
            failed = replace(failed, next_attempt=retry.at, reason=retry.reason)
            self._save(failed)  # before the lease goes: a waiting node plans from it
            if leaf is None or datetime.now(UTC) >= leaf.not_valid_after_utc:
                serving = "no valid certificate to serve meanwhile"
            else:
                serving = f"still serving the current one until {_when(leaf.not_valid_after_utc)}"
            log.error(
                "site %s: no certificate from %s (attempt %d), %s; next attempt %s: %s",
                m.name,
                m.issuer.name,
                failed.failures,
                serving,
                _when(retry.at),
                error,
            )
            return failed
        record = ManagedCertificate(
            name=m.name,
            fullchain_pem=issued.fullchain_pem,
            key_pem=issued.key_pem,
            not_after=issued.leaf.not_valid_after_utc,
            issuer=m.issuer.name,
            updated_at=now,
        )
        if not await self._store_issued(record):
            return self._stored_state(m, state)
        self.on_renewed(record)
        log.warning(
            "site %s: new certificate %X from %s, valid until %s",
            m.name,
            issued.leaf.serial_number,
            m.issuer.name,
            _when(issued.leaf.not_valid_after_utc),
        )
        done = replace(
            state,
            failures=0,
            last_attempt=now,
            last_success=now,
            last_error=None,
            next_attempt=None,
            reason="",
        )
        self._save(done)  # before the lease goes: a waiting node plans from it
        return done

    async def _store_issued(self, record: ManagedCertificate) -> bool:
        """Store what the CA issued, waiting out a store outage; False if it is not needed any
        more (a newer certificate was stored meanwhile, or this one expired waiting)."""
        outage = 0
        while True:
            try:
                if outage:
                    stored = self.store.load_managed(record.name)
                    if stored is not None and stored.not_after > record.not_after:
                        log.info("site %s: a newer certificate was stored meanwhile", record.name)
                        return False
                self.store.save_managed(record)
            except StorageError as exc:
                if outage == 0:
                    log.error(
                        "site %s: got a new certificate but cannot store it; keeping it and "
                        "retrying (the current one serves meanwhile): %s",
                        record.name,
                        exc,
                    )
                if self.health is not None:
                    self.health.failed(exc)
                if datetime.now(UTC) >= record.not_after:
                    return False
                await asyncio.sleep(STORE_RETRY[min(outage, len(STORE_RETRY) - 1)])
                outage += 1
                continue
            if outage:
                log.warning("site %s: stored the new certificate after all", record.name)
            return True

    def _save(self, state: RenewalState) -> None:
        try:
            self.store.save_renewal_state(state)
        except TlsgateError as exc:  # status is informative; serving does not depend on it
            log.warning("site %s: cannot record renewal state: %s", state.name, exc)


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")

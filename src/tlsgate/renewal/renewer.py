"""The renewal loop: one task per served certificate, in the process that owns the state.

Each task plans its next attempt with :func:`tlsgate.acme.schedule.next_attempt` (ARI when the
CA offers it, else the lifetime rule; backoff after failures; the emergency pace near expiry),
sleeps against the wall clock in short steps (a machine that slept past the moment renews on
wake), asks the issuer, stores the result and hands it to ``on_renewed``. A failure changes
nothing that is served: the error and the next attempt are logged and recorded in the store,
where ``tlsgate status`` reads them.

What counts as "the current certificate" is what the store holds: a certificate that is
expired, for other names or from another issuer is replaced at once (but served until then).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from cryptography import x509

from tlsgate.acme.schedule import RenewalPlan, backoff, next_attempt
from tlsgate.errors import TlsgateError
from tlsgate.pki.names import parse_identities
from tlsgate.pki.pem import load_certificates
from tlsgate.renewal.issuers import Issuer
from tlsgate.store.base import ManagedCertificate, RenewalState, Store

__all__ = ["Managed", "Renewer", "stored_leaf"]

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
        store: Store,
        managed: Sequence[Managed],
        on_renewed: Callable[[ManagedCertificate], None],
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.managed = tuple(managed)
        self.on_renewed = on_renewed
        self.rng = rng or random.Random()
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
        state = self.store.load_renewal_state(m.name)
        if state is None or state.issuer != m.issuer.name:
            state = RenewalState(name=m.name, issuer=m.issuer.name, next_attempt=None, reason="")
        while True:
            try:
                state = await self._round(m, state)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must not end renewals for good: log it, try later
                log.exception("site %s: renewal loop error", m.name)
                await asyncio.sleep(60)

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
        async with self._parallel:
            return await self._attempt(m, leaf, why, state)

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
            # Lifetimes count from not-before, which CAs backdate for clock skew (ours by 5
            # minutes, Let's Encrypt by an hour): for a certificate of a few minutes that
            # makes it "due" the moment it arrives, and renewing would loop. So never before
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
            record = ManagedCertificate(
                name=m.name,
                fullchain_pem=issued.fullchain_pem,
                key_pem=issued.key_pem,
                not_after=issued.leaf.not_valid_after_utc,
                issuer=m.issuer.name,
                updated_at=now,
            )
            self.store.save_managed(record)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
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
        self.on_renewed(record)
        log.warning(
            "site %s: new certificate %X from %s, valid until %s",
            m.name,
            issued.leaf.serial_number,
            m.issuer.name,
            _when(issued.leaf.not_valid_after_utc),
        )
        return replace(
            state,
            failures=0,
            last_attempt=now,
            last_success=now,
            last_error=None,
            next_attempt=None,
            reason="",
        )

    def _save(self, state: RenewalState) -> None:
        try:
            self.store.save_renewal_state(state)
        except TlsgateError as exc:  # status is informative; serving does not depend on it
            log.warning("site %s: cannot record renewal state: %s", state.name, exc)


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")

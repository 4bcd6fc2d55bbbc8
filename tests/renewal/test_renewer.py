"""The renewal loop against a real store and the real internal CA; failures come from an issuer
that refuses on purpose (the one stand-in here: a CA that is down on demand)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509

from tlsgate.errors import TlsgateError
from tlsgate.renewal.issuers import InternalIssuer, Issued, Issuer
from tlsgate.renewal.renewer import Managed, Renewer
from tlsgate.store.base import ManagedCertificate
from tlsgate.store.sqlite import SQLiteStore

NAMES = ("app.internal",)


@dataclass
class Flaky:
    """The internal CA behind a switch: ``down`` makes every request fail like a CA outage."""

    inner: InternalIssuer
    down: bool = False
    window: tuple[datetime, datetime] | None = None
    calls: list[bool] = field(default_factory=list)
    name: str = "internal"

    async def issue(self, names: tuple[str, ...], *, replaces: x509.Certificate | None) -> Issued:
        self.calls.append(self.down)
        if self.down:
            raise TlsgateError("cannot read the ACME directory: connection refused")
        return await self.inner.issue(names, replaces=replaces)

    async def renewal_window(self, cert: x509.Certificate) -> tuple[datetime, datetime] | None:
        return self.window

    async def close(self) -> None:
        pass


async def until(check: Callable[[], bool], timeout: float = 20) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.02)


def run_renewer(
    store: SQLiteStore,
    issuer: Issuer,
    body: Callable[[Renewer, list[ManagedCertificate]], Awaitable[None]],
) -> list[ManagedCertificate]:
    renewed: list[ManagedCertificate] = []

    async def main() -> None:
        renewer = Renewer(
            store,
            [Managed("app", NAMES, issuer)],
            renewed.append,
            rng=random.Random(7),
        )
        task = asyncio.create_task(renewer.run())
        try:
            await body(renewer, renewed)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())
    return renewed


def test_issues_at_once_when_nothing_is_stored_and_records_it(store: SQLiteStore) -> None:
    async def body(renewer: Renewer, renewed: list[ManagedCertificate]) -> None:
        await until(lambda: len(renewed) == 1)
        await until(lambda: (s := store.load_renewal_state("app")) is not None and s.reason != "")

    renewed = run_renewer(store, InternalIssuer(store), body)
    stored = store.load_managed("app")
    assert stored is not None and stored.fullchain_pem == renewed[0].fullchain_pem
    state = store.load_renewal_state("app")
    assert state is not None
    assert state.failures == 0 and state.last_error is None and state.last_success is not None
    # The next renewal is planned with a third of the 90 days left, minus jitter.
    assert state.reason == "lifetime" and state.next_attempt is not None
    left = stored.not_after - state.next_attempt
    assert timedelta(days=30) <= left <= timedelta(days=34.5)


def test_a_due_certificate_is_renewed_and_short_lives_renew_at_half(store: SQLiteStore) -> None:
    issuer = InternalIssuer(store, lifetime=timedelta(minutes=1))
    old = issuer.issue_now(NAMES, now=datetime.now(UTC) - timedelta(seconds=40))
    store.save_managed(
        ManagedCertificate("app", old.fullchain_pem, old.key_pem, old.leaf.not_valid_after_utc,
                           "internal", datetime.now(UTC))
    )  # fmt: skip

    async def body(renewer: Renewer, renewed: list[ManagedCertificate]) -> None:
        await until(lambda: len(renewed) == 1)
        await until(lambda: (s := store.load_renewal_state("app")) is not None and s.reason != "")

    renewed = run_renewer(store, issuer, body)
    new = x509.load_pem_x509_certificate(renewed[0].fullchain_pem)
    assert new.serial_number != old.leaf.serial_number
    state = store.load_renewal_state("app")
    assert state is not None and state.next_attempt is not None
    # Under ten days of life: renew with half of it left (30 s), not counting the CA's 5-minute
    # backdating (which would make it due at once), minus up to 5 % jitter.
    left = new.not_valid_after_utc - state.next_attempt
    assert timedelta(seconds=29) <= left <= timedelta(seconds=33.1)


def test_a_failing_issuer_keeps_the_certificate_backs_off_and_retries_on_request(
    store: SQLiteStore,
) -> None:
    # 5 minutes long, 20 s left: under a tenth of its life (not-before is backdated 1 % only).
    internal = InternalIssuer(store, lifetime=timedelta(minutes=5))
    issued = datetime.now(UTC) - timedelta(minutes=4, seconds=40)
    old = internal.issue_now(NAMES, now=issued)
    record = ManagedCertificate(
        "app", old.fullchain_pem, old.key_pem, old.leaf.not_valid_after_utc, "internal", issued
    )
    store.save_managed(record)
    flaky = Flaky(internal, down=True)

    async def body(renewer: Renewer, renewed: list[ManagedCertificate]) -> None:
        await until(lambda: sum(flaky.calls) >= 2)  # two refused attempts
        await until(lambda: (s := store.load_renewal_state("app")) is not None and s.failures >= 2)
        state = store.load_renewal_state("app")
        assert state is not None
        assert state.last_error == "cannot read the ACME directory: connection refused"
        assert store.load_managed("app") == record  # the current certificate stays
        # Less than a tenth of its life is left: the emergency pace, measured in fractions of
        # its life (seconds here), not the minutes of an ordinary backoff.
        assert state.reason == "emergency" and state.next_attempt is not None
        assert state.next_attempt - datetime.now(UTC) < timedelta(seconds=10)
        flaky.down = False
        renewer.retry_now()
        await until(lambda: len(renewed) == 1, timeout=5)
        await until(lambda: (s := store.load_renewal_state("app")) is not None and not s.failures)

    run_renewer(store, flaky, body)
    state = store.load_renewal_state("app")
    assert state is not None and state.last_error is None and state.last_success is not None


def test_ari_window_decides_and_a_restart_keeps_the_plan(store: SQLiteStore) -> None:
    flaky = Flaky(InternalIssuer(store))
    start = datetime.now(UTC) + timedelta(days=10)
    flaky.window = (start, start + timedelta(hours=2))

    async def body(renewer: Renewer, renewed: list[ManagedCertificate]) -> None:
        await until(lambda: len(renewed) == 1)
        await until(
            lambda: (s := store.load_renewal_state("app")) is not None and s.reason == "ari"
        )

    run_renewer(store, flaky, body)
    state = store.load_renewal_state("app")
    assert state is not None and state.next_attempt is not None
    assert start <= state.next_attempt <= start + timedelta(hours=2)
    assert state.ari_window == flaky.window

    # Without ARI, a restart keeps the jittered moment it picked before, instead of re-rolling.
    flaky.window = None

    async def again(renewer: Renewer, renewed: list[ManagedCertificate]) -> None:
        await until(
            lambda: (s := store.load_renewal_state("app")) is not None and s.reason == "lifetime"
        )

    run_renewer(store, flaky, again)
    first = store.load_renewal_state("app")
    run_renewer(store, flaky, again)
    second = store.load_renewal_state("app")
    assert first is not None and second is not None
    assert first.next_attempt == second.next_attempt
    assert flaky.calls == [False]  # one issuance in three starts: a valid certificate is reused


@pytest.mark.parametrize("change", ["names", "issuer"])
def test_changed_names_or_issuer_are_replaced_at_once(store: SQLiteStore, change: str) -> None:
    internal = InternalIssuer(store)
    issued = internal.issue_now(
        ("old.internal",) if change == "names" else NAMES, now=datetime.now(UTC)
    )
    store.save_managed(
        ManagedCertificate(
            name="app",
            fullchain_pem=issued.fullchain_pem,
            key_pem=issued.key_pem,
            not_after=issued.leaf.not_valid_after_utc,
            issuer="internal" if change == "names" else "acme:https://ca.example/dir",
            updated_at=datetime.now(UTC),
        )
    )

    async def body(renewer: Renewer, renewed: list[ManagedCertificate]) -> None:
        await until(lambda: len(renewed) == 1)

    renewed = run_renewer(store, internal, body)
    assert renewed[0].issuer == "internal"
    san = x509.load_pem_x509_certificate(renewed[0].fullchain_pem).extensions
    names = san.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == list(NAMES)

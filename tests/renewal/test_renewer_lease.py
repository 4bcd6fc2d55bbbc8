"""Several renewal loops on one store, as several nodes of a cluster would run them.

Each loop is a :class:`Renewer` with its own lease holder id on the same store (SQLite: the
lease contract is the same on every backend, see tests/store/test_cluster.py); the issuer is the
real internal CA behind a gate, so a test decides how long an "order" lasts.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509

from tests.conftest import free_port
from tests.store.postgres import PostgresServer
from tlsgate.acme.client.solvers import StoredAnswers
from tlsgate.errors import StorageError
from tlsgate.renewal import renewer as renewer_module
from tlsgate.renewal.issuers import InternalIssuer, Issued, IssuerError
from tlsgate.renewal.renewer import Managed, Renewer
from tlsgate.store.base import ManagedCertificate, Store
from tlsgate.store.health import StoreHealth
from tlsgate.store.sqlite import SQLiteStore

NAMES = ("app.internal",)
LEASE = "renew:app"
TTL = timedelta(seconds=0.6)


@dataclass
class Slow:
    """The internal CA, taking ``seconds`` per certificate; records who asked and when."""

    inner: InternalIssuer
    seconds: float = 0.0
    calls: int = 0
    cancelled: int = 0
    done: list[int] = field(default_factory=list)
    name: str = "internal"

    async def issue(self, names: tuple[str, ...], *, replaces: x509.Certificate | None) -> Issued:
        self.calls += 1
        try:
            await asyncio.sleep(self.seconds)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        issued = await self.inner.issue(names, replaces=replaces)
        self.done.append(issued.leaf.serial_number)
        return issued

    async def renewal_window(self, cert: x509.Certificate) -> tuple[datetime, datetime] | None:
        return None

    async def close(self) -> None:
        pass


class Nodes:
    """``count`` renewal loops on ``store``, each with what it was told to serve."""

    def __init__(self, store: Store, issuer: Slow, count: int, **options: object) -> None:
        self.served: list[list[ManagedCertificate]] = [[] for _ in range(count)]
        self.renewers = [
            Renewer(
                store,
                [Managed("app", NAMES, issuer)],
                self.served[i].append,
                rng=random.Random(i),
                holder=f"node-{i}",
                lease_ttl=TTL,
                lease_poll=0.05,
                **options,  # type: ignore[arg-type]
            )
            for i in range(count)
        ]

    def run(self, body: Callable[[list[asyncio.Task[None]]], Awaitable[None]]) -> None:
        async def main() -> None:
            tasks = [asyncio.create_task(r.run()) for r in self.renewers]
            try:
                await body(tasks)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run(main())


async def until(check: Callable[[], object], timeout: float = 20) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.02)


def serial(cert: ManagedCertificate) -> int:
    return x509.load_pem_x509_certificate(cert.fullchain_pem).serial_number


def test_three_loops_order_once_and_all_serve_it(store: SQLiteStore) -> None:
    issuer = Slow(InternalIssuer(store), seconds=0.5)
    nodes = Nodes(store, issuer, 3)

    async def body(tasks: list[asyncio.Task[None]]) -> None:
        await until(lambda: all(nodes.served))
        await asyncio.sleep(0.3)  # nobody orders a second time afterwards

    nodes.run(body)
    assert issuer.calls == 1
    (only,) = issuer.done
    assert [[serial(c) for c in got] for got in nodes.served] == [[only]] * 3
    assert store.lease_holder(LEASE, datetime.now(UTC)) is None  # released after the order


def test_the_lease_is_renewed_while_a_long_order_runs(store: SQLiteStore) -> None:
    issuer = Slow(InternalIssuer(store), seconds=4 * TTL.total_seconds())
    nodes = Nodes(store, issuer, 1)
    holders: list[str | None] = []

    async def body(tasks: list[asyncio.Task[None]]) -> None:
        await until(lambda: issuer.calls == 1)
        for _ in range(6):  # across several TTLs: the heartbeat keeps it
            await asyncio.sleep(TTL.total_seconds() / 2)
            holders.append(store.lease_holder(LEASE, datetime.now(UTC)))
        await until(lambda: nodes.served[0])

    nodes.run(body)
    assert holders == ["node-0"] * 6


def test_a_dead_holders_lease_lapses_and_another_node_takes_over(
    store: SQLiteStore, caplog: pytest.LogCaptureFixture
) -> None:
    # A node took the lease and died: nothing renews it, so it lapses after the TTL.
    taken = datetime.now(UTC)
    assert store.try_lease(LEASE, "dead-node", TTL, taken)
    issuer = Slow(InternalIssuer(store))
    nodes = Nodes(store, issuer, 1)

    async def body(tasks: list[asyncio.Task[None]]) -> None:
        await until(lambda: nodes.served[0])

    with caplog.at_level(logging.INFO, logger="tlsgate.renewal"):
        nodes.run(body)
    assert "dead-node is renewing it; waiting for its certificate" in caplog.text
    assert issuer.calls == 1
    stored = store.load_managed("app")
    assert stored is not None and stored.updated_at >= taken + TTL


def test_a_holder_that_lost_its_lease_abandons_the_order(
    store: SQLiteStore, caplog: pytest.LogCaptureFixture
) -> None:
    issuer = Slow(InternalIssuer(store), seconds=30)
    nodes = Nodes(store, issuer, 1)

    async def body(tasks: list[asyncio.Task[None]]) -> None:
        await until(lambda: issuer.calls == 1)
        # Its lease lapsed (a stall) and another node holds it now.
        store.release_lease(LEASE, "node-0")
        assert store.try_lease(LEASE, "node-9", timedelta(minutes=5), datetime.now(UTC))
        await until(lambda: issuer.cancelled == 1)
        await asyncio.sleep(0.2)

    with caplog.at_level(logging.WARNING, logger="tlsgate.renewal"):
        nodes.run(body)
    assert "lost the renewal lease to node-9; leaving the order to it" in caplog.text
    assert store.load_managed("app") is None and not nodes.served[0]
    assert store.lease_holder(LEASE, datetime.now(UTC)) == "node-9"  # not released by node-0


def test_a_failure_is_the_waiting_nodes_plan_too(store: SQLiteStore) -> None:
    """The holder's failure and backoff are in the store when its lease ends: the node that
    waited does not order again at once."""

    @dataclass
    class Down(Slow):
        async def issue(
            self, names: tuple[str, ...], *, replaces: x509.Certificate | None
        ) -> Issued:
            self.calls += 1
            await asyncio.sleep(0.3)
            raise IssuerError("the CA refused the order")  # any failure but the store's

    issuer = Down(InternalIssuer(store))
    nodes = Nodes(store, issuer, 2)

    async def body(tasks: list[asyncio.Task[None]]) -> None:
        await until(lambda: issuer.calls == 1)
        await asyncio.sleep(1.0)  # the other loop saw the lease end and planned again

    nodes.run(body)
    assert issuer.calls == 1
    state = store.load_renewal_state("app")
    assert state is not None and state.failures == 1 and state.next_attempt is not None
    assert state.next_attempt > datetime.now(UTC)


class FlakyStore(SQLiteStore):
    """SQLite that is "unreachable" for its first ``outage`` writes of a certificate."""

    outage = 0

    def save_managed(self, cert: ManagedCertificate) -> None:
        if self.outage:
            self.outage -= 1
            raise StorageError("PostgreSQL at db:5432/tlsgate is unreachable: connection refused")
        super().save_managed(cert)


def test_a_certificate_got_during_an_outage_is_kept_and_stored_later(
    state_dir: object, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from pathlib import Path

    assert isinstance(state_dir, Path)
    monkeypatch.setattr(renewer_module, "STORE_RETRY", (0.05,))
    store = FlakyStore(state_dir)
    store.outage = 3
    issuer = Slow(InternalIssuer(store))
    health = StoreHealth(store.location)
    nodes = Nodes(store, issuer, 1, health=health)

    async def body(tasks: list[asyncio.Task[None]]) -> None:
        await until(lambda: nodes.served[0])

    try:
        with caplog.at_level(logging.INFO):
            nodes.run(body)
        assert issuer.calls == 1  # stored when the store came back, not ordered again
        stored = store.load_managed("app")
        assert stored is not None and serial(stored) == issuer.done[0]
        assert [serial(c) for c in nodes.served[0]] == issuer.done
        assert caplog.text.count("got a new certificate but cannot store it") == 1
        assert caplog.text.count("is unreachable; serving the certificates held") == 1
        assert "stored the new certificate after all" in caplog.text
    finally:
        store.close()


@pytest.fixture
def own_postgres(postgres_server: PostgresServer) -> Iterator[PostgresServer]:
    """A server of its own, to stop mid-order without disturbing other tests."""
    server = PostgresServer(postgres_server.bindir, free_port())
    server.start()
    yield server
    server.remove()


def test_an_order_cut_short_by_a_store_outage_is_no_failure(
    own_postgres: PostgresServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """PostgreSQL stops while an ACME order runs, so its challenge answer cannot be written:
    that is the store's outage (reported once, retried on its pace), not the CA's failure
    (counted, backed off for minutes to hours, shown in `tlsgate status`)."""
    from tlsgate.store.postgres import PostgresStore

    @dataclass
    class Ordering(Slow):
        """Answers its challenge through the store as an ACME order does, once ``go`` is set."""

        go: asyncio.Event = field(default_factory=asyncio.Event)

        async def issue(
            self, names: tuple[str, ...], *, replaces: x509.Certificate | None
        ) -> Issued:
            self.calls += 1
            await self.go.wait()
            answers = StoredAnswers(store, "http-01")
            await answers.present(names[0], "token", "token.thumbprint")
            await answers.cleanup(names[0], "token")
            issued = await self.inner.issue(names, replaces=replaces)
            self.done.append(issued.leaf.serial_number)
            return issued

    monkeypatch.setattr(renewer_module, "STORE_RETRY", (0.05,))
    store = PostgresStore(own_postgres.create_database())
    issuer = Ordering(InternalIssuer(store))
    health = StoreHealth(store.location)
    nodes = Nodes(store, issuer, 1, health=health)

    async def body(tasks: list[asyncio.Task[None]]) -> None:
        await until(lambda: issuer.calls == 1)  # the order runs (under the lease)
        await asyncio.to_thread(own_postgres.stop)
        issuer.go.set()
        await until(lambda: not health.up)
        await asyncio.sleep(0.5)  # several store retries: none orders while the store is away
        assert issuer.calls == 1
        await asyncio.to_thread(own_postgres.start)
        await until(lambda: nodes.served[0])

    try:
        with caplog.at_level(logging.INFO):
            nodes.run(body)
        assert issuer.calls == 2  # ordered again at once when the store answered
        stored = store.load_managed("app")
        assert stored is not None and [serial(stored)] == issuer.done
        state = store.load_renewal_state("app")
        assert state is not None and state.failures == 0 and state.last_error is None
        assert caplog.text.count("is unreachable; serving the certificates held") == 1
        assert "no certificate from" not in caplog.text
    finally:
        store.close()

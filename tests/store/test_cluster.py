"""Leases and shared nonces on every backend: what several nodes (or processes) coordinate with.

A single SQLite node must behave like a PostgreSQL cluster, so the same tests run on both.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from tlsgate.errors import AlreadyExists
from tlsgate.store import Store

NOW = datetime(2026, 1, 1, tzinfo=UTC)
TTL = timedelta(minutes=5)


def test_lease_take_renew_and_refuse(store: Store) -> None:
    assert store.lease_holder("renew:a.example", NOW) is None
    assert store.try_lease("renew:a.example", "node-1", TTL, NOW)
    assert store.lease_holder("renew:a.example", NOW) == "node-1"
    assert not store.try_lease("renew:a.example", "node-2", TTL, NOW + timedelta(minutes=1))
    # the holder renews: the lease now runs from the renewal
    assert store.try_lease("renew:a.example", "node-1", TTL, NOW + timedelta(minutes=4))
    assert not store.try_lease("renew:a.example", "node-2", TTL, NOW + timedelta(minutes=6))
    assert store.lease_holder("renew:a.example", NOW + timedelta(minutes=6)) == "node-1"
    # leases are independent of each other
    assert store.try_lease("renew:b.example", "node-2", TTL, NOW)


def test_expired_lease_is_taken_over(store: Store) -> None:
    assert store.try_lease("job", "node-1", TTL, NOW)
    expiry = NOW + TTL
    assert store.lease_holder("job", expiry) is None
    assert store.try_lease("job", "node-2", TTL, expiry)
    assert store.lease_holder("job", expiry) == "node-2"
    assert not store.try_lease("job", "node-1", TTL, expiry)  # the old holder lost it


def test_release(store: Store) -> None:
    assert store.try_lease("job", "node-1", TTL, NOW)
    store.release_lease("job", "node-2")  # not its lease: nothing happens
    assert store.lease_holder("job", NOW) == "node-1"
    store.release_lease("job", "node-1")
    assert store.lease_holder("job", NOW) is None
    assert store.try_lease("job", "node-2", TTL, NOW)
    store.release_lease("nothing", "node-1")  # missing: no error


@pytest.fixture
def stores(store: Store) -> Iterator[list[Store]]:
    """20 stores on the same state, each with its own connection, like 20 processes."""
    opened = [store.reopen() for _ in range(20)]
    yield opened
    for s in opened:
        s.close()


def _at_once(stores: list[Store], work: object) -> list[object]:
    barrier = threading.Barrier(len(stores))
    results: list[object] = [None] * len(stores)

    def run(index: int, s: Store) -> None:
        barrier.wait(timeout=60)
        results[index] = work(s)  # type: ignore[operator]

    threads = [threading.Thread(target=run, args=(i, s)) for i, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results


def test_concurrent_lease_has_one_holder(stores: list[Store]) -> None:
    holders = [f"node-{i}" for i in range(len(stores))]
    results = _at_once(stores, lambda s: s.try_lease("job", holders[stores.index(s)], TTL, NOW))
    assert results.count(True) == 1
    winner = holders[results.index(True)]
    assert stores[0].lease_holder("job", NOW) == winner


def test_nonce_is_used_once(store: Store) -> None:
    store.issue_nonce("n1", NOW + TTL)
    with pytest.raises(AlreadyExists):
        store.issue_nonce("n1", NOW + TTL)
    assert store.consume_nonce("n1", NOW)
    assert not store.consume_nonce("n1", NOW)
    assert not store.consume_nonce("never-issued", NOW)


def test_expired_nonce_is_refused_and_purged(store: Store) -> None:
    store.issue_nonce("old", NOW)
    store.issue_nonce("stale", NOW + timedelta(seconds=1))
    store.issue_nonce("fresh", NOW + TTL)
    assert not store.consume_nonce("old", NOW)  # expired: refused, and used up anyway
    assert store.purge_nonces(NOW + timedelta(seconds=1)) == 1  # "stale"
    assert not store.consume_nonce("stale", NOW)
    assert store.consume_nonce("fresh", NOW)
    assert store.purge_nonces(NOW + TTL) == 0


def test_concurrent_consumers_accept_a_nonce_once(stores: list[Store]) -> None:
    stores[0].issue_nonce("replayed", NOW + TTL)
    results = _at_once(stores, lambda s: s.consume_nonce("replayed", NOW))
    assert results.count(True) == 1 and results.count(False) == len(stores) - 1


def test_rate_tokens_burst_then_rate(store: Store) -> None:
    t = NOW.timestamp()
    assert [store.take_rate_token("a", t, rate=2.0, burst=3) for _ in range(3)] == [0.0] * 3
    wait = store.take_rate_token("a", t, rate=2.0, burst=3)
    assert wait == pytest.approx(0.5)  # one more every half second
    assert store.take_rate_token("b", t, rate=2.0, burst=3) == 0.0  # another key, its own
    assert store.take_rate_token("a", t + 0.5, rate=2.0, burst=3) == 0.0
    assert store.take_rate_token("a", t + 0.5, rate=2.0, burst=3) == pytest.approx(0.5)
    # A long pause refills up to the burst, not beyond.
    later = t + 3600
    assert [store.take_rate_token("a", later, rate=2.0, burst=3) for _ in range(4)][3] > 0


def test_concurrent_rate_tokens_are_shared(stores: list[Store]) -> None:
    """20 nodes taking at once from a burst of 5: exactly 5 pass, as on one node."""
    t = NOW.timestamp()
    results = _at_once(stores, lambda s: s.take_rate_token("acct", t, rate=0.01, burst=5))
    assert sum(1 for r in results if r == 0.0) == 5

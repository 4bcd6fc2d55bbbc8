"""NonceBook: unpredictable, single-use, expiring, bounded."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from itertools import count

import pytest

from tlsgate.acme.server.nonces import NonceBook, NonceStore, StoreNonces
from tlsgate.errors import AlreadyExists

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_nonces_are_base64url_unpadded_and_distinct() -> None:
    book = NonceBook()
    nonces = {book.issue(T0) for _ in range(500)}
    assert len(nonces) == 500
    for nonce in nonces:
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", nonce)


def test_consumed_at_most_once() -> None:
    book = NonceBook()
    nonce = book.issue(T0)
    assert book.consume(nonce, T0)
    assert not book.consume(nonce, T0)


def test_unknown_nonce_is_refused() -> None:
    assert not NonceBook().consume("never-issued", T0)


def test_expired_nonce_is_refused() -> None:
    book = NonceBook(lifetime=timedelta(minutes=5))
    nonce = book.issue(T0)
    assert not book.consume(nonce, T0 + timedelta(minutes=5))
    fresh = book.issue(T0)
    assert book.consume(fresh, T0 + timedelta(minutes=4, seconds=59))


def test_bounded_oldest_dropped() -> None:
    book = NonceBook(capacity=3)
    first, second, *rest = [book.issue(T0) for _ in range(4)]
    assert len(book) == 3
    assert not book.consume(first, T0)
    assert book.consume(second, T0)
    assert all(book.consume(n, T0) for n in rest)


def test_issue_prunes_expired() -> None:
    book = NonceBook(lifetime=timedelta(seconds=10))
    for _ in range(5):
        book.issue(T0)
    book.issue(T0 + timedelta(seconds=11))
    assert len(book) == 1


def test_injected_token_repeats_are_skipped() -> None:
    counter = count()
    book = NonceBook(token=lambda: str(next(counter) // 2))
    assert [book.issue(T0) for _ in range(3)] == ["0", "1", "2"]


def test_book_is_a_nonce_store() -> None:
    store: NonceStore = NonceBook()
    assert store.consume(store.issue(T0), T0)


@pytest.mark.parametrize("kwargs", [{"capacity": 0}, {"lifetime": timedelta(0)}])
def test_bad_configuration(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        NonceBook(**kwargs)  # type: ignore[arg-type]


class Table:
    """The store's nonce methods, in memory, counting purges."""

    def __init__(self) -> None:
        self.rows: dict[str, datetime] = {}
        self.purges = 0

    def issue_nonce(self, nonce: str, expires: datetime) -> None:
        if nonce in self.rows:
            raise AlreadyExists("nonce already issued")
        self.rows[nonce] = expires

    def consume_nonce(self, nonce: str, now: datetime) -> bool:
        expires = self.rows.pop(nonce, None)
        return expires is not None and now < expires

    def purge_nonces(self, now: datetime) -> int:
        self.purges += 1
        old = [n for n, e in self.rows.items() if e <= now]
        for nonce in old:
            del self.rows[nonce]
        return len(old)


def test_store_nonces_are_shared_by_every_node() -> None:
    table = Table()
    node_a, node_b = StoreNonces(table), StoreNonces(table)
    nonce = node_a.issue(T0)
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", nonce)
    assert node_b.consume(nonce, T0)
    assert not node_a.consume(nonce, T0)  # once, whichever node asks


def test_store_nonces_expire_and_are_purged_once_a_minute() -> None:
    table = Table()
    nonces = StoreNonces(table, lifetime=timedelta(minutes=5), purge_every=timedelta(minutes=1))
    old = nonces.issue(T0)
    assert table.purges == 1  # the first issue purges what earlier runs left
    for second in range(59):
        nonces.issue(T0 + timedelta(seconds=second))
    assert table.purges == 1
    assert not nonces.consume(old, T0 + timedelta(minutes=5))
    nonces.issue(T0 + timedelta(minutes=6))
    assert table.purges == 2 and len(table.rows) == 1  # all but the newest were expired


def test_store_nonces_draw_again_on_a_repeated_token() -> None:
    tokens = iter(["same", "same", "other"])
    nonces = StoreNonces(Table(), token=lambda: next(tokens))
    assert [nonces.issue(T0), nonces.issue(T0)] == ["same", "other"]
    stuck = StoreNonces(Table(), token=lambda: "same")
    stuck.issue(T0)
    with pytest.raises(AlreadyExists):
        stuck.issue(T0)


def test_store_nonces_refuse_nonsense_settings() -> None:
    with pytest.raises(ValueError):
        StoreNonces(Table(), lifetime=timedelta(0))

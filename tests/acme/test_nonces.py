"""NonceBook: unpredictable, single-use, expiring, bounded."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from itertools import count

import pytest

from tlsgate.acme.nonces import NonceBook, NonceStore

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

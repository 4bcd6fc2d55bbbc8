"""Renewal timing on the client side (tlsgate.acme.client.schedule)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tlsgate.acme.client.schedule import MAX_BACKOFF, backoff, next_attempt, renewal_time

T0 = datetime(2026, 11, 1, tzinfo=UTC)
DAY = timedelta(days=1)


def test_a_third_of_the_lifetime_left_with_jitter() -> None:
    plan = renewal_time(T0, T0 + 90 * DAY, rng=random.Random(1))
    assert plan.reason == "lifetime"
    assert T0 + 60 * DAY - 4.5 * DAY <= plan.at <= T0 + 60 * DAY


def test_short_lived_certificates_renew_at_half() -> None:
    plan = renewal_time(T0, T0 + 6 * DAY, rng=random.Random(2))
    assert T0 + 3 * DAY - 0.3 * DAY <= plan.at <= T0 + 3 * DAY


def test_ari_window_wins_and_spreads_clients() -> None:
    window = (T0 + 70 * DAY, T0 + 72 * DAY)
    picks = {
        renewal_time(T0, T0 + 90 * DAY, ari_window=window, rng=random.Random(i)).at
        for i in range(50)
    }
    assert all(window[0] <= at <= window[1] for at in picks)
    assert len(picks) == 50  # a random moment each, not the window's start for everyone
    assert renewal_time(T0, T0 + 90 * DAY, ari_window=(T0, T0)).at == T0


def test_backoff_doubles_and_is_capped() -> None:
    assert backoff(0) == timedelta(0)
    rng = random.Random(3)
    waits = [backoff(n, rng) for n in range(1, 15)]
    assert timedelta(seconds=48) <= waits[0] <= timedelta(seconds=72)
    assert waits[3] > waits[0] * 4
    assert all(w <= MAX_BACKOFF * 1.2 for w in waits)
    assert waits[-1] >= MAX_BACKOFF * 0.8


def test_next_attempt_paths() -> None:
    nb, na = T0, T0 + 90 * DAY
    healthy = next_attempt(T0 + DAY, nb, na, failures=0, rng=random.Random(4))
    assert healthy.reason == "lifetime" and healthy.at > T0 + 50 * DAY
    due = next_attempt(T0 + 80 * DAY, nb, na, failures=0)
    assert due.reason == "lifetime" and due.at == T0 + 80 * DAY  # overdue: now
    failing = next_attempt(T0 + 65 * DAY, nb, na, failures=9, rng=random.Random(5))
    assert failing.reason == "backoff" and failing.at - (T0 + 65 * DAY) > timedelta(hours=3)
    # Less than a tenth of the life left: the backoff no longer applies.
    urgent = next_attempt(T0 + 82 * DAY, nb, na, failures=9)
    assert urgent.reason == "emergency" and urgent.at - (T0 + 82 * DAY) == timedelta(minutes=10)
    first = next_attempt(T0 + 82 * DAY, nb, na, failures=0)
    assert (first.reason, first.at) == ("emergency", T0 + 82 * DAY)
    # A one-hour certificate retries every minute near its end, a two-minute one every 2 s.
    tiny = next_attempt(T0 + timedelta(minutes=55), T0, T0 + timedelta(hours=1), failures=3)
    assert tiny.at - (T0 + timedelta(minutes=55)) == timedelta(minutes=1)
    now = T0 + timedelta(seconds=110)
    minutes = next_attempt(now, T0, T0 + timedelta(minutes=2), failures=3)
    assert (minutes.reason, minutes.at - now) == ("emergency", timedelta(seconds=2))


def test_backoff_of_short_lived_certificates_starts_at_a_hundredth_of_life() -> None:
    rng = random.Random(6)
    life = timedelta(minutes=2)
    first = backoff(1, rng, lifetime=life)
    assert timedelta(seconds=0.96) <= first <= timedelta(seconds=1.44)
    # A 90-day certificate keeps the one-minute start.
    assert backoff(1, rng, lifetime=90 * DAY) >= timedelta(seconds=48)
    now = T0 + timedelta(seconds=30)
    plan = next_attempt(now, T0, T0 + life, failures=2, rng=rng)
    assert plan.reason == "backoff" and plan.at - now < timedelta(seconds=3)


@given(
    life_hours=st.integers(min_value=1, max_value=24 * 400),
    elapsed=st.floats(min_value=0, max_value=1),
    failures=st.integers(min_value=0, max_value=60),
    seed=st.integers(),
)
def test_never_plans_past_expiry_while_healthy_or_before_now(
    life_hours: int, elapsed: float, failures: int, seed: int
) -> None:
    life = timedelta(hours=life_hours)
    now = T0 + life * elapsed
    plan = next_attempt(now, T0, T0 + life, failures=failures, rng=random.Random(seed))
    assert plan.at >= now
    if failures == 0:
        assert plan.at < T0 + life or plan.at == now


@pytest.mark.parametrize("failures", [1, 5])
def test_emergency_retry_is_bounded(failures: int) -> None:
    plan = next_attempt(T0 + 89 * DAY, T0, T0 + 90 * DAY, failures=failures)
    assert plan.at - (T0 + 89 * DAY) <= timedelta(minutes=10)


@given(
    life_seconds=st.integers(min_value=60, max_value=400 * 86400),
    elapsed=st.floats(min_value=0, max_value=0.9),
    failures=st.integers(min_value=1, max_value=60),
    seed=st.integers(),
)
def test_a_backoff_never_jumps_over_the_emergency_pace(
    life_seconds: int, elapsed: float, failures: int, seed: int
) -> None:
    """A 1-minute certificate failing a sixth time with 11 s left waited ~19 s, past its
    expiry; the wait ends where the last tenth of the life (the emergency pace) begins."""
    life = timedelta(seconds=life_seconds)
    now = T0 + life * elapsed
    plan = next_attempt(now, T0, T0 + life, failures=failures, rng=random.Random(seed))
    assert now <= plan.at <= max(now, T0 + life - life / 10)


def test_a_short_certificate_after_many_failures_is_retried_before_it_expires() -> None:
    now = T0 + timedelta(seconds=49)  # 11 s left of one minute
    plan = next_attempt(now, T0, T0 + timedelta(minutes=1), failures=6, rng=random.Random(1))
    assert plan.at <= T0 + timedelta(seconds=54)

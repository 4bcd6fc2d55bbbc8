"""When to renew a certificate, and when to try again after a failure (the client side of ACME).

The seed's most preventable outage is a forgotten renewal; the second is every client of a CA
renewing in the same minute. So:

* the CA's ARI window (RFC 9773) wins when it offers one: a random moment inside it, so clients
  spread themselves over the window as the RFC asks;
* otherwise renew when a third of the lifetime is left (half for lifetimes under 10 days, as
  certbot, lego and Caddy do for short-lived certificates), minus a random jitter of up to 5 % of
  the lifetime;
* after a failure, back off exponentially (1 min doubling, capped at 6 hours), with jitter; a
  certificate that lives less than 100 minutes starts from a hundredth of its lifetime instead,
  since a minute's wait is a large part of a short life;
* once less than a tenth of the lifetime is left, the *emergency* path: retry every sixtieth of
  the lifetime (at least every 10 minutes, at most every 2 seconds), whatever the backoff says,
  because an expired certificate is the outage.

Pure: times and the random source are passed in, so the schedule is tested without a clock.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = ["RenewalPlan", "backoff", "next_attempt", "renewal_time"]

SHORT_LIVED = timedelta(days=10)
MAX_BACKOFF = timedelta(hours=6)
FIRST_BACKOFF = timedelta(minutes=1)
EMERGENCY_STEP = (timedelta(seconds=2), timedelta(minutes=10))
EMERGENCY_FRACTION = 10  # less than 1/10 of the lifetime left


@dataclass(frozen=True)
class RenewalPlan:
    at: datetime
    reason: str  # "ari", "lifetime", "backoff", "emergency": for the log and `tlsgate status`


def renewal_time(
    not_before: datetime,
    not_after: datetime,
    *,
    ari_window: tuple[datetime, datetime] | None = None,
    rng: random.Random | None = None,
) -> RenewalPlan:
    """When a healthy certificate should be renewed."""
    rng = rng or random.Random()
    if ari_window is not None:
        start, end = ari_window
        if end <= start:
            return RenewalPlan(start, "ari")
        return RenewalPlan(start + (end - start) * rng.random(), "ari")
    life = not_after - not_before
    left = life / 2 if life < SHORT_LIVED else life / 3
    jitter = life * 0.05 * rng.random()
    return RenewalPlan(not_after - left - jitter, "lifetime")


def backoff(
    failures: int, rng: random.Random | None = None, *, lifetime: timedelta | None = None
) -> timedelta:
    """The wait after ``failures`` consecutive failures (1 -> about a minute, or a hundredth
    of a short ``lifetime``), jittered +-20 %."""
    if failures < 1:
        return timedelta(0)
    rng = rng or random.Random()
    first = FIRST_BACKOFF if lifetime is None else min(FIRST_BACKOFF, lifetime / 100)
    base: timedelta = min(MAX_BACKOFF, first * (1 << min(failures - 1, 20)))
    return base * (0.8 + 0.4 * rng.random())


def next_attempt(
    now: datetime,
    not_before: datetime,
    not_after: datetime,
    *,
    failures: int,
    ari_window: tuple[datetime, datetime] | None = None,
    rng: random.Random | None = None,
) -> RenewalPlan:
    """When to try next, given how many attempts in a row have failed (0: none yet)."""
    rng = rng or random.Random()
    life = not_after - not_before
    if not_after - now < life / EMERGENCY_FRACTION:
        low, high = EMERGENCY_STEP
        step = min(high, max(low, life / 60))
        return RenewalPlan(now + (step if failures else timedelta(0)), "emergency")
    if failures:
        wait = backoff(failures, rng, lifetime=life)
        # Never beyond where the emergency pace starts: for a certificate of minutes a doubled
        # wait (20 s after six failures of a 1-minute one) jumps over the whole last tenth.
        emergency = not_after - life / EMERGENCY_FRACTION
        return RenewalPlan(max(now, min(now + wait, emergency)), "backoff")
    plan = renewal_time(not_before, not_after, ari_window=ari_window, rng=rng)
    return plan if plan.at > now else RenewalPlan(now, plan.reason)

"""Order, authorization and challenge statuses (RFC 8555 7.1.6): derived here and nowhere else.

Statuses are derived, never guessed: an order is ``ready`` exactly when every authorization is
``valid``, ``invalid`` as soon as one cannot become valid, and expiry is checked against ``now``
on every read rather than by a background sweep (a stopped server must not hand out an expired
``valid``). Pure functions over status strings (and over the store's records, which only pick
the strings out), so the endpoints (``orders.py``), the JSON they return (``resources.py``) and
the store agree by construction; a challenge left ``processing`` by a stopped node is judged here
too (:func:`abandoned`), since it is what moves such an authorization on.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from tlsgate.store.acme import (
    AcmeAuthorization,
    AcmeChallenge,
    AcmeOrder,
    ChallengeStatus,
)

__all__ = [
    "abandoned",
    "authorization_status",
    "current_authorization_status",
    "current_order_status",
    "order_status",
]

_DEAD_AUTHZ = frozenset({"invalid", "deactivated", "expired", "revoked"})


def authorization_status(
    status: str, challenge_statuses: Iterable[str], *, expires: datetime, now: datetime
) -> str:
    """An authorization's status now: a valid challenge makes it valid, an invalid one invalid
    (RFC 8555 7.1.6: one failed attempt ends the authorization), and a pending one expires."""
    if status != "pending":
        if status == "valid" and now >= expires:
            return "expired"
        return status
    if now >= expires:
        return "expired"
    statuses = list(challenge_statuses)
    if "valid" in statuses:
        return "valid"
    if "invalid" in statuses:
        return "invalid"
    return "pending"


def order_status(
    status: str,
    authorization_statuses: Sequence[str],
    *,
    expires: datetime,
    now: datetime,
) -> str:
    """An order's status now, from its stored status and its authorizations' current ones."""
    if status in ("valid", "invalid"):
        return status
    if status == "pending":
        if now >= expires or any(s in _DEAD_AUTHZ for s in authorization_statuses):
            return "invalid"
        if authorization_statuses and all(s == "valid" for s in authorization_statuses):
            return "ready"
        return "pending"
    if status == "ready" and now >= expires:
        return "invalid"
    return status  # ready, processing


def current_authorization_status(
    authz: AcmeAuthorization, challenges: Sequence[AcmeChallenge], now: datetime
) -> str:
    """A stored authorization's status now, from its record and its challenges' records."""
    return authorization_status(
        authz.status.value,
        [c.status.value for c in challenges],
        expires=authz.expires,
        now=now,
    )


def current_order_status(
    order: AcmeOrder, authorization_statuses: Sequence[str], now: datetime
) -> str:
    """A stored order's status now, given its authorizations' current statuses."""
    return order_status(order.status.value, authorization_statuses, expires=order.expires, now=now)


def abandoned(challenge: AcmeChallenge, stale_before: datetime) -> bool:
    """Left ``processing`` by a stopped node: since before ``stale_before``, or since a time not
    recorded (set by a node older than schema 6)."""
    if challenge.status is not ChallengeStatus.PROCESSING:
        return False
    return challenge.processing_since is None or challenge.processing_since < stale_before

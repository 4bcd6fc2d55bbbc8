"""What the ACME server (RFC 8555) keeps: accounts, orders, authorizations and challenges.

Records and the part of the :class:`~tlsgate.store.base.Store` Protocol that handles them live
here rather than in ``base`` so the CA's contract stays readable on its own; ``Store`` inherits
:class:`AcmeStore`, so every store implements both.

Why the methods look the way they do:
- ACME requests race: a client retries ``finalize``, two validation workers finish at once. Every
  status change can therefore be a compare-and-set (``expected_status``) that reports whether it
  happened, so exactly one request wins a transition and the others learn they lost.
- A rejected request must leave no trace, so anything one request creates or changes together
  (an order with its new authorizations and challenges; a challenge with its authorization) is
  one method, hence one transaction.
- Ids appear in URLs, so they are random and URL-safe (:func:`new_id`), never sequential.
- Nonces and rate limits are short-lived and live elsewhere; only durable state is here.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple, Protocol

__all__ = [
    "AccountStatus",
    "AcmeAccount",
    "AcmeAuthorization",
    "AcmeChallenge",
    "AcmeIdentifier",
    "AcmeOrder",
    "AcmeStore",
    "AuthzStatus",
    "ChallengeStatus",
    "ChallengeType",
    "OrderStatus",
    "new_id",
]

#: 16 random bytes: unguessable, and 22 characters of base64url in a URL.
ID_BYTES = 16


def new_id() -> str:
    """A fresh record id: random so one client cannot enumerate another's orders by URL."""
    return secrets.token_urlsafe(ID_BYTES)


class AccountStatus(StrEnum):
    VALID = "valid"
    DEACTIVATED = "deactivated"
    REVOKED = "revoked"


class OrderStatus(StrEnum):
    PENDING = "pending"
    READY = "ready"
    PROCESSING = "processing"
    VALID = "valid"
    INVALID = "invalid"


class AuthzStatus(StrEnum):
    PENDING = "pending"
    VALID = "valid"
    INVALID = "invalid"
    DEACTIVATED = "deactivated"
    EXPIRED = "expired"
    REVOKED = "revoked"


class ChallengeStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    VALID = "valid"
    INVALID = "invalid"


class ChallengeType(StrEnum):
    HTTP_01 = "http-01"
    DNS_01 = "dns-01"
    TLS_ALPN_01 = "tls-alpn-01"


class AcmeIdentifier(NamedTuple):
    """An RFC 8555 identifier object, ``{"type": "dns", "value": "a.example"}``, as a tuple."""

    type: str
    value: str


@dataclass(frozen=True)
class AcmeAccount:
    """An ACME account; its key is its identity, so one key maps to at most one account."""

    id: str
    #: The account's public key as JSON (a JWK), exactly as the front end wants it back.
    jwk: str
    #: RFC 7638 thumbprint (base64url) of ``jwk``; unique across accounts.
    thumbprint: str
    #: ``mailto:`` URLs, in the order the client sent them.
    contact: tuple[str, ...]
    status: AccountStatus
    created_at: datetime
    #: The external account binding key id used at registration (RFC 8555 7.3.4), if any.
    eab_kid: str | None = None


@dataclass(frozen=True)
class AcmeAuthorization:
    """Proof, once valid, that ``account_id`` controls ``identifier`` until ``expires``.

    For a wildcard order the identifier is the base name (``example.com``) with ``wildcard``
    set (RFC 8555 7.1.4); it is a different authorization from the plain name's.
    """

    id: str
    account_id: str
    identifier: AcmeIdentifier
    status: AuthzStatus
    expires: datetime
    created_at: datetime
    wildcard: bool = False


@dataclass(frozen=True)
class AcmeChallenge:
    id: str
    authorization_id: str
    type: ChallengeType
    token: str
    status: ChallengeStatus = ChallengeStatus.PENDING
    validated_at: datetime | None = None
    #: An RFC 7807 problem document as JSON text, once validation failed.
    error: str | None = None
    #: When the challenge became ``processing``: a node that sees it still processing long
    #: after that knows the validating node stopped (``None`` before schema 6 or when not
    #: processing).
    processing_since: datetime | None = None


@dataclass(frozen=True)
class AcmeOrder:
    id: str
    account_id: str
    identifiers: tuple[AcmeIdentifier, ...]
    status: OrderStatus
    expires: datetime
    #: In the order the order object lists them; new and reused authorizations alike.
    authorization_ids: tuple[str, ...]
    created_at: datetime
    #: The validity the client asked for, if it did.
    not_before: datetime | None = None
    not_after: datetime | None = None
    #: An RFC 7807 problem document as JSON text, when the order became invalid.
    error: str | None = None
    #: Set when the certificate is issued; the record is ``Store.get_certificate(serial)``.
    certificate_serial: int | None = None
    #: The ARI certificate id (draft-ietf-acme-ari) this order's certificate replaces.
    replaces: str | None = None
    #: The profile the client asked for (draft-aaron-acme-profiles), if any.
    profile: str | None = None
    #: When finalize made the order ``processing``, and the CSR (DER) it was given: kept so that
    #: another node can finish the order if the finalizing node stops half-way.
    processing_since: datetime | None = None
    csr: bytes | None = None


class AcmeStore(Protocol):
    """ACME state; part of :class:`~tlsgate.store.base.Store`. Each method is one transaction."""

    # -- accounts ------------------------------------------------------------------------------
    def add_account(self, account: AcmeAccount) -> None:
        """Store a new account; AlreadyExists if its thumbprint (or id) is taken."""
        ...

    def get_account(self, account_id: str) -> AcmeAccount:
        """The account; NotFound if unknown."""
        ...

    def find_account_by_thumbprint(self, thumbprint: str) -> AcmeAccount | None:
        """The account whose key has this RFC 7638 thumbprint (new-account with an old key)."""
        ...

    def update_account(
        self,
        account_id: str,
        *,
        contact: Sequence[str] | None = None,
        status: AccountStatus | None = None,
        jwk: str | None = None,
        thumbprint: str | None = None,
    ) -> AcmeAccount:
        """Change what is given and return the result; NotFound if unknown.

        ``jwk`` and ``thumbprint`` go together (key roll-over, RFC 8555 7.3.5) and replace the
        key atomically; AlreadyExists if another account has that thumbprint.
        """
        ...

    # -- orders, authorizations, challenges ----------------------------------------------------
    def add_order(
        self,
        order: AcmeOrder,
        authorizations: Sequence[AcmeAuthorization],
        challenges: Sequence[AcmeChallenge],
    ) -> None:
        """Store an order with its new authorizations and their challenges, all or nothing.

        ``order.authorization_ids`` lists every authorization: the new ones given here and
        reused ones (already stored, same account) by id only. NotFound if the account or a
        reused authorization is unknown, AlreadyExists if an id is taken, StorageError if the
        records do not belong together.
        """
        ...

    def get_order(self, order_id: str) -> AcmeOrder:
        """The order; NotFound if unknown."""
        ...

    def list_orders(self, account_id: str) -> Sequence[AcmeOrder]:
        """The account's orders, oldest first (the account's ``orders`` URL)."""
        ...

    def update_order(
        self,
        order_id: str,
        *,
        status: OrderStatus | None = None,
        error: str | None = None,
        certificate_serial: int | None = None,
        expected_status: OrderStatus | None = None,
        processing_since: datetime | None = None,
        csr: bytes | None = None,
    ) -> bool:
        """Change what is given (``None`` leaves a field as it is); with ``expected_status``
        only if the order is in that status.

        Returns whether it changed, so of two concurrent ``ready -> processing`` finalizes only
        one goes on to issue. NotFound if the order, or the certificate serial, is unknown.
        """
        ...

    def take_over_order(self, order_id: str, *, stale_before: datetime, now: datetime) -> bool:
        """Claim a ``processing`` order whose finalizing node seems gone, atomically.

        True, with ``processing_since`` moved to ``now``, only if the order is ``processing``
        since before ``stale_before`` (or since an unknown time, as rows from before schema 6);
        so of several nodes noticing the same abandoned order exactly one finishes it, and the
        others see a fresh ``processing_since``. NotFound if the order is unknown.
        """
        ...

    def order_certificate(self, order_id: str) -> int | None:
        """The serial of a certificate issued for this order, if any (the earliest if several).

        A node that takes an abandoned order over looks here first: the stopped node may have
        issued the certificate and died before recording it in the order.
        """
        ...

    def get_authorization(self, authorization_id: str) -> AcmeAuthorization:
        """The authorization; NotFound if unknown."""
        ...

    def find_valid_authorization(
        self,
        account_id: str,
        identifier: AcmeIdentifier,
        now: datetime,
        *,
        wildcard: bool = False,
    ) -> AcmeAuthorization | None:
        """A valid, unexpired authorization of this account to reuse in a new order.

        The one expiring last, so the new order gets the longest window.
        """
        ...

    def update_authorization(
        self,
        authorization_id: str,
        *,
        status: AuthzStatus,
        expected_status: AuthzStatus | None = None,
    ) -> bool:
        """Set the status (compare-and-set with ``expected_status``); NotFound if unknown."""
        ...

    def get_challenge(self, challenge_id: str) -> AcmeChallenge:
        """The challenge; NotFound if unknown."""
        ...

    def challenges_for(self, authorization_id: str) -> Sequence[AcmeChallenge]:
        """The authorization's challenges in the order they were added."""
        ...

    def update_challenge(
        self,
        challenge_id: str,
        *,
        status: ChallengeStatus,
        validated_at: datetime | None = None,
        error: str | None = None,
        expected_status: ChallengeStatus | None = None,
        authorization_status: AuthzStatus | None = None,
        processing_since: datetime | None = None,
    ) -> bool:
        """Record a validation step; compare-and-set with ``expected_status``.

        ``processing_since`` is recorded with the move to ``processing``, so that other nodes
        can tell a validation in progress from one whose node stopped.

        ``authorization_status`` sets the parent authorization's status in the same
        transaction, because a validation's outcome decides both and a crash between two
        writes would leave a valid challenge under a pending authorization. It does so only
        while the authorization is ``pending``: when two of its challenges are validated at
        once (a client may start http-01 on one node and tls-alpn-01 on another) the first
        outcome decides and a later one cannot overturn it, and a validation that ends after
        the client deactivated the authorization cannot bring it back. NotFound if unknown.
        """
        ...

"""ACME records from database rows, for every backend: one mapping from columns to fields.

The SQLite and PostgreSQL stores keep the same columns and differ only in how a few values are
stored (SQLite: ISO timestamps and JSON lists in TEXT; PostgreSQL: ``timestamptz`` and arrays /
``jsonb``), so each passes its :class:`Columns` decoders and a new column is mapped once, here.
The consistency check of new order records lives here too: both stores refuse the same inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from tlsgate.errors import StorageError
from tlsgate.store.acme import (
    AccountStatus,
    AcmeAccount,
    AcmeAuthorization,
    AcmeChallenge,
    AcmeIdentifier,
    AcmeOrder,
    AuthzStatus,
    ChallengeStatus,
    ChallengeType,
    OrderStatus,
)

__all__ = [
    "Columns",
    "Row",
    "account_from_row",
    "authorization_from_row",
    "challenge_from_row",
    "check_consistent",
    "order_from_row",
]


class Row(Protocol):
    """``sqlite3.Row`` and psycopg's dict rows alike: values by column name."""

    def __getitem__(self, key: str, /) -> Any: ...


@dataclass(frozen=True)
class Columns:
    """How one backend stores what SQL has no common type for."""

    time: Callable[[Any], datetime]  # a stored timestamp -> an aware UTC datetime
    items: Callable[[Any], Sequence[Any]]  # a stored list -> its items

    def optional_time(self, value: Any) -> datetime | None:
        return self.time(value) if value else None


def account_from_row(row: Row, columns: Columns) -> AcmeAccount:
    return AcmeAccount(
        id=row["id"],
        jwk=row["jwk"],
        thumbprint=row["thumbprint"],
        contact=tuple(columns.items(row["contact"])),
        status=AccountStatus(row["status"]),
        created_at=columns.time(row["created_at"]),
        eab_kid=row["eab_kid"],
    )


def order_from_row(row: Row, columns: Columns) -> AcmeOrder:
    serial = row["certificate_serial"]
    return AcmeOrder(
        id=row["id"],
        account_id=row["account_id"],
        identifiers=tuple(AcmeIdentifier(t, v) for t, v in columns.items(row["identifiers"])),
        status=OrderStatus(row["status"]),
        expires=columns.time(row["expires"]),
        authorization_ids=tuple(columns.items(row["authorization_ids"])),
        created_at=columns.time(row["created_at"]),
        not_before=columns.optional_time(row["not_before"]),
        not_after=columns.optional_time(row["not_after"]),
        error=row["error"],
        certificate_serial=int(serial, 16) if serial else None,
        replaces=row["replaces"],
        profile=row["profile"],
        processing_since=columns.optional_time(row["processing_since"]),
        csr=bytes(row["csr"]) if row["csr"] is not None else None,
    )


def authorization_from_row(row: Row, columns: Columns) -> AcmeAuthorization:
    return AcmeAuthorization(
        id=row["id"],
        account_id=row["account_id"],
        identifier=AcmeIdentifier(row["identifier_type"], row["identifier_value"]),
        status=AuthzStatus(row["status"]),
        expires=columns.time(row["expires"]),
        created_at=columns.time(row["created_at"]),
        wildcard=bool(row["wildcard"]),
    )


def challenge_from_row(row: Row, columns: Columns) -> AcmeChallenge:
    return AcmeChallenge(
        id=row["id"],
        authorization_id=row["authorization_id"],
        type=ChallengeType(row["type"]),
        token=row["token"],
        status=ChallengeStatus(row["status"]),
        validated_at=columns.optional_time(row["validated_at"]),
        error=row["error"],
        processing_since=columns.optional_time(row["processing_since"]),
    )


def check_consistent(
    order: AcmeOrder,
    authorizations: Sequence[AcmeAuthorization],
    challenges: Sequence[AcmeChallenge],
) -> None:
    """Refuse records that do not belong together before anything is written."""
    new_ids = [a.id for a in authorizations]
    if len(set(order.authorization_ids)) != len(order.authorization_ids):
        raise StorageError(f"order {order.id} lists an authorization twice")
    for authz in authorizations:
        if authz.account_id != order.account_id:
            raise StorageError(f"authorization {authz.id} belongs to another account")
        if authz.id not in order.authorization_ids:
            raise StorageError(f"authorization {authz.id} is not one of order {order.id}'s")
    for challenge in challenges:
        if challenge.authorization_id not in new_ids:
            raise StorageError(
                f"challenge {challenge.id} is not for a new authorization of order {order.id}"
            )

"""The ACME half of the PostgreSQL store (:class:`~tlsgate.store.acme.AcmeStore`), as a mixin.

It mirrors ``sqlite_acme`` and uses the store's own ``_run`` (one transaction on the store's
connection) so it shares the reconnection and the error handling. Where SQLite's single writer
made a read-then-write atomic, this one locks the row first (``SELECT ... FOR UPDATE``): of two
nodes finalizing the same order, the second waits, then sees the first one's status and loses
the compare-and-set.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from psycopg import errors as pg_errors
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from tlsgate.errors import AlreadyExists, NotFound, StorageError, TlsgateError
from tlsgate.store.acme import (
    AccountStatus,
    AcmeAccount,
    AcmeAuthorization,
    AcmeChallenge,
    AcmeIdentifier,
    AcmeOrder,
    AuthzStatus,
    ChallengeStatus,
    OrderStatus,
)
from tlsgate.store.acme_rows import (
    Columns,
    account_from_row,
    authorization_from_row,
    challenge_from_row,
    check_consistent,
    order_from_row,
)
from tlsgate.store.postgres_columns import Cursor, utc
from tlsgate.store.sqlite_columns import serial_key

__all__ = ["PostgresAcmeMixin"]

T = TypeVar("T")

#: Tables whose rows compare-and-set changes; the names go into SQL, so only these.
_TABLES = frozenset({"acme_account", "acme_order", "acme_authorization", "acme_challenge"})


#: PostgreSQL has timestamptz, arrays and jsonb: values arrive as Python objects already.
_COLUMNS = Columns(time=utc, items=list)


def _account(row: DictRow) -> AcmeAccount:
    return account_from_row(row, _COLUMNS)


def _order(row: DictRow) -> AcmeOrder:
    return order_from_row(row, _COLUMNS)


def _authorization(row: DictRow) -> AcmeAuthorization:
    return authorization_from_row(row, _COLUMNS)


def _challenge(row: DictRow) -> AcmeChallenge:
    return challenge_from_row(row, _COLUMNS)


class PostgresAcmeMixin:
    """ACME accounts, orders, authorizations and challenges in the store's database."""

    if TYPE_CHECKING:  # provided by PostgresStore

        def _run(self, work: Callable[[Cursor], T]) -> T: ...

        def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[DictRow]: ...

    def _one(self, table: str, key: str, what: str) -> DictRow:
        assert table in _TABLES
        rows = self._rows(f"SELECT * FROM {table} WHERE id = %s", (key,))
        if not rows:
            raise NotFound(f"no ACME {what} {key!r}")
        return rows[0]

    # -- accounts ------------------------------------------------------------------------------
    def add_account(self, account: AcmeAccount) -> None:
        def add(cur: Cursor) -> None:
            try:
                cur.execute(
                    "INSERT INTO acme_account (id, jwk, thumbprint, contact, status, created_at,"
                    " eab_kid) VALUES (%s,%s,%s,%s,%s,%s,%s)",
                    (
                        account.id,
                        account.jwk,
                        account.thumbprint,
                        list(account.contact),
                        account.status.value,
                        account.created_at,
                        account.eab_kid,
                    ),
                )
            except pg_errors.UniqueViolation as exc:
                if "thumbprint" in str(exc):
                    raise AlreadyExists("an ACME account already exists for this key") from None
                raise AlreadyExists(f"ACME account id {account.id!r} is taken") from None

        self._run(add)

    def get_account(self, account_id: str) -> AcmeAccount:
        return _account(self._one("acme_account", account_id, "account"))

    def find_account_by_thumbprint(self, thumbprint: str) -> AcmeAccount | None:
        rows = self._rows("SELECT * FROM acme_account WHERE thumbprint = %s", (thumbprint,))
        return _account(rows[0]) if rows else None

    def update_account(
        self,
        account_id: str,
        *,
        contact: Sequence[str] | None = None,
        status: AccountStatus | None = None,
        jwk: str | None = None,
        thumbprint: str | None = None,
    ) -> AcmeAccount:
        if (jwk is None) != (thumbprint is None):
            raise StorageError("a key change needs both the new JWK and its thumbprint")
        changes: dict[str, Any] = {}
        if contact is not None:
            changes["contact"] = list(contact)
        if status is not None:
            changes["status"] = status.value
        if jwk is not None:
            changes["jwk"] = jwk
            changes["thumbprint"] = thumbprint
        # The UNIQUE thumbprint is the only constraint a change can break: the key is taken.
        taken = AlreadyExists("another ACME account already uses this key")
        self._compare_and_set("acme_account", "account", account_id, changes, None, clash=taken)
        return self.get_account(account_id)

    # -- orders --------------------------------------------------------------------------------
    def add_order(
        self,
        order: AcmeOrder,
        authorizations: Sequence[AcmeAuthorization],
        challenges: Sequence[AcmeChallenge],
    ) -> None:
        check_consistent(order, authorizations, challenges)
        new_ids = {a.id for a in authorizations}

        def add(cur: Cursor) -> None:
            cur.execute("SELECT 1 FROM acme_account WHERE id = %s", (order.account_id,))
            if cur.fetchone() is None:
                raise NotFound(f"no ACME account {order.account_id!r}")
            for reused in (i for i in order.authorization_ids if i not in new_ids):
                cur.execute("SELECT account_id FROM acme_authorization WHERE id = %s", (reused,))
                row = cur.fetchone()
                if row is None or row["account_id"] != order.account_id:
                    raise NotFound(f"no ACME authorization {reused!r} for this account")
            try:
                self._insert_order(cur, order, authorizations, challenges)
            except pg_errors.UniqueViolation:
                raise AlreadyExists(f"an id of ACME order {order.id!r} is taken") from None
            except pg_errors.IntegrityError as exc:
                raise StorageError(f"cannot record ACME order {order.id!r}: {exc}") from None

        self._run(add)

    @staticmethod
    def _insert_order(
        cur: Cursor,
        order: AcmeOrder,
        authorizations: Sequence[AcmeAuthorization],
        challenges: Sequence[AcmeChallenge],
    ) -> None:
        serial = order.certificate_serial
        cur.execute(
            "INSERT INTO acme_order (id, account_id, identifiers, status, expires, not_before,"
            " not_after, authorization_ids, error, certificate_serial, replaces, profile,"
            " created_at) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
            (
                order.id,
                order.account_id,
                Jsonb([list(i) for i in order.identifiers]),
                order.status.value,
                order.expires,
                order.not_before,
                order.not_after,
                list(order.authorization_ids),
                order.error,
                serial_key(serial) if serial is not None else None,
                order.replaces,
                order.profile,
                order.created_at,
            ),
        )
        cur.executemany(
            "INSERT INTO acme_authorization (id, account_id, identifier_type, identifier_value,"
            " wildcard, status, expires, created_at) VALUES (%s,%s,%s,%s,%s,%s,%s,%s)",
            [
                (
                    a.id,
                    a.account_id,
                    a.identifier.type,
                    a.identifier.value,
                    a.wildcard,
                    a.status.value,
                    a.expires,
                    a.created_at,
                )
                for a in authorizations
            ],
        )
        cur.executemany(
            "INSERT INTO acme_challenge (id, authorization_id, type, token, status,"
            " validated_at, error) VALUES (%s,%s,%s,%s,%s,%s,%s)",
            [
                (
                    c.id,
                    c.authorization_id,
                    c.type.value,
                    c.token,
                    c.status.value,
                    c.validated_at,
                    c.error,
                )
                for c in challenges
            ],
        )

    def get_order(self, order_id: str) -> AcmeOrder:
        return _order(self._one("acme_order", order_id, "order"))

    def list_orders(self, account_id: str) -> Sequence[AcmeOrder]:
        rows = self._rows(
            "SELECT * FROM acme_order WHERE account_id = %s ORDER BY created_at, seq",
            (account_id,),
        )
        return [_order(r) for r in rows]

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
        changes: dict[str, Any] = {}
        if status is not None:
            changes["status"] = status.value
        if error is not None:
            changes["error"] = error
        if certificate_serial is not None:
            changes["certificate_serial"] = serial_key(certificate_serial)
        if processing_since is not None:
            changes["processing_since"] = processing_since
        if csr is not None:
            changes["csr"] = csr
        # The certificate_serial foreign key is the only constraint a change can break.
        unknown = NotFound(f"no certificate with serial {serial_key(certificate_serial or 0)}")
        return self._compare_and_set(
            "acme_order", "order", order_id, changes, expected_status, clash=unknown
        )

    def take_over_order(self, order_id: str, *, stale_before: datetime, now: datetime) -> bool:
        def take(cur: Cursor) -> bool:
            # One statement: the row lock it takes makes the check and the claim one step.
            cur.execute(
                "UPDATE acme_order SET processing_since = %s WHERE id = %s AND status = %s"
                " AND (processing_since IS NULL OR processing_since < %s)",
                (now, order_id, OrderStatus.PROCESSING.value, stale_before),
            )
            if cur.rowcount:
                return True
            cur.execute("SELECT 1 FROM acme_order WHERE id = %s", (order_id,))
            if cur.fetchone() is None:
                raise NotFound(f"no ACME order {order_id!r}")
            return False

        return self._run(take)

    def order_certificate(self, order_id: str) -> int | None:
        rows = self._rows(
            "SELECT serial FROM certificate WHERE order_id = %s ORDER BY issued_at, serial LIMIT 1",
            (order_id,),
        )
        return int(rows[0]["serial"], 16) if rows else None

    # -- authorizations ------------------------------------------------------------------------
    def get_authorization(self, authorization_id: str) -> AcmeAuthorization:
        return _authorization(self._one("acme_authorization", authorization_id, "authorization"))

    def find_valid_authorization(
        self,
        account_id: str,
        identifier: AcmeIdentifier,
        now: datetime,
        *,
        wildcard: bool = False,
    ) -> AcmeAuthorization | None:
        rows = self._rows(
            "SELECT * FROM acme_authorization WHERE account_id = %s AND identifier_type = %s"
            " AND identifier_value = %s AND wildcard = %s AND status = %s AND expires > %s"
            " ORDER BY expires DESC LIMIT 1",
            (
                account_id,
                identifier.type,
                identifier.value,
                wildcard,
                AuthzStatus.VALID.value,
                now,
            ),
        )
        return _authorization(rows[0]) if rows else None

    def update_authorization(
        self,
        authorization_id: str,
        *,
        status: AuthzStatus,
        expected_status: AuthzStatus | None = None,
    ) -> bool:
        return self._compare_and_set(
            "acme_authorization",
            "authorization",
            authorization_id,
            {"status": status.value},
            expected_status,
        )

    # -- challenges ----------------------------------------------------------------------------
    def get_challenge(self, challenge_id: str) -> AcmeChallenge:
        return _challenge(self._one("acme_challenge", challenge_id, "challenge"))

    def challenges_for(self, authorization_id: str) -> Sequence[AcmeChallenge]:
        rows = self._rows(
            "SELECT * FROM acme_challenge WHERE authorization_id = %s ORDER BY seq",
            (authorization_id,),
        )
        return [_challenge(r) for r in rows]

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
        changes: dict[str, Any] = {"status": status.value}
        if validated_at is not None:
            changes["validated_at"] = validated_at
        if processing_since is not None:
            changes["processing_since"] = processing_since
        if error is not None:
            changes["error"] = error
        parent = None
        if authorization_status is not None:
            parent = {"status": authorization_status.value}
        return self._compare_and_set(
            "acme_challenge", "challenge", challenge_id, changes, expected_status, parent
        )

    # -- plumbing ------------------------------------------------------------------------------
    def _compare_and_set(
        self,
        table: str,
        what: str,
        key: str,
        changes: dict[str, Any],
        expected: str | None,
        parent: dict[str, Any] | None = None,
        *,
        clash: TlsgateError | None = None,
    ) -> bool:
        """Apply ``changes`` to row ``key`` if its status is ``expected`` (or always).

        The row is locked first, so the status read is the one the update applies to; with
        ``parent`` the challenge's authorization is updated in the same transaction when, and
        only when, this row changed and the authorization is still pending (see
        ``AcmeStore.update_challenge``). ``clash`` is raised if the change breaks a constraint.
        """
        assert table in _TABLES

        def cas(cur: Cursor) -> bool:
            cur.execute(f"SELECT * FROM {table} WHERE id = %s FOR UPDATE".encode(), (key,))
            row = cur.fetchone()
            if row is None:
                raise NotFound(f"no ACME {what} {key!r}")
            if expected is not None and row["status"] != expected:
                return False
            if changes:
                sets = ", ".join(f"{column} = %s" for column in changes)
                try:
                    cur.execute(
                        f"UPDATE {table} SET {sets} WHERE id = %s".encode(),
                        (*changes.values(), key),
                    )
                except pg_errors.IntegrityError:
                    if clash is None:
                        raise
                    raise clash from None
            if parent is not None:
                sets = ", ".join(f"{column} = %s" for column in parent)
                cur.execute(
                    f"UPDATE acme_authorization SET {sets} WHERE id = %s AND status = %s".encode(),
                    (*parent.values(), row["authorization_id"], AuthzStatus.PENDING.value),
                )
            return True

        return self._run(cas)

"""The ACME half of the SQLite store (:class:`~tlsgate.store.acme.AcmeStore`), as a mixin.

It lives apart from ``sqlite.py`` to keep each file readable; :class:`SQLiteAcmeMixin` uses the
store's own ``_write`` (one ``BEGIN IMMEDIATE`` transaction) and ``_query``, so it shares the
connection, the locking and the error handling rather than having its own.

Compare-and-set is a single ``UPDATE ... WHERE id = ? AND status = ?`` whose row count says who
won; that is atomic across processes because SQLite serialises writers on one lock.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tlsgate.errors import AlreadyExists, NotFound, StorageError
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
from tlsgate.store.sqlite_columns import dt, serial_key, ts

__all__ = ["MIGRATION", "NODE_LOSS_MIGRATION", "SQLiteAcmeMixin"]

#: Schema 3. No semicolons inside: the migration runner splits statements on them.
MIGRATION = """
    CREATE TABLE acme_account (
        id TEXT PRIMARY KEY,
        jwk TEXT NOT NULL,
        thumbprint TEXT NOT NULL UNIQUE,   -- one account per key
        contact TEXT NOT NULL,             -- JSON list of URLs
        status TEXT NOT NULL,
        created_at TEXT NOT NULL,
        eab_kid TEXT
    );
    CREATE TABLE acme_order (
        id TEXT PRIMARY KEY,
        account_id TEXT NOT NULL REFERENCES acme_account(id),
        identifiers TEXT NOT NULL,         -- JSON list of [type, value]
        status TEXT NOT NULL,
        expires TEXT NOT NULL,
        not_before TEXT,
        not_after TEXT,
        authorization_ids TEXT NOT NULL,   -- JSON list, in the order object's order
        error TEXT,                        -- RFC 7807 problem, JSON
        certificate_serial TEXT REFERENCES certificate(serial),
        replaces TEXT,
        profile TEXT,
        created_at TEXT NOT NULL
    );
    CREATE INDEX acme_order_account ON acme_order(account_id, created_at);
    CREATE TABLE acme_authorization (
        id TEXT PRIMARY KEY,
        account_id TEXT NOT NULL REFERENCES acme_account(id),
        identifier_type TEXT NOT NULL,
        identifier_value TEXT NOT NULL,
        wildcard INTEGER NOT NULL,
        status TEXT NOT NULL,
        expires TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX acme_authorization_reuse
        ON acme_authorization(account_id, identifier_type, identifier_value, status, expires);
    CREATE TABLE acme_challenge (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, -- keeps the order challenges were offered in
        id TEXT NOT NULL UNIQUE,
        authorization_id TEXT NOT NULL REFERENCES acme_authorization(id),
        type TEXT NOT NULL,
        token TEXT NOT NULL,
        status TEXT NOT NULL,
        validated_at TEXT,
        error TEXT
    );
    CREATE INDEX acme_challenge_authorization ON acme_challenge(authorization_id, seq);
    ALTER TABLE certificate ADD COLUMN order_id TEXT REFERENCES acme_order(id);
    ALTER TABLE certificate ADD COLUMN revoked_by TEXT;
    CREATE INDEX certificate_order ON certificate(order_id) WHERE order_id IS NOT NULL;
"""

#: Schema 6: what lets a node finish what a stopped node left ``processing`` (when it started,
#: and finalize's CSR), and request budgets shared by every process on the store.
NODE_LOSS_MIGRATION = """
    ALTER TABLE acme_order ADD COLUMN processing_since TEXT;
    ALTER TABLE acme_order ADD COLUMN csr BLOB;
    ALTER TABLE acme_challenge ADD COLUMN processing_since TEXT;
    CREATE TABLE rate_bucket (
        key TEXT PRIMARY KEY,
        tat REAL NOT NULL                  -- GCRA: when the budget is whole again, epoch seconds
    ) WITHOUT ROWID
"""


def _opt_ts(value: datetime | None) -> str | None:
    return ts(value) if value is not None else None


def _opt_serial(value: int | None) -> str | None:
    return serial_key(value) if value is not None else None


#: SQLite keeps timestamps as ISO text and lists as JSON text.
_COLUMNS = Columns(time=dt, items=json.loads)


def _account(row: sqlite3.Row) -> AcmeAccount:
    return account_from_row(row, _COLUMNS)


def _order(row: sqlite3.Row) -> AcmeOrder:
    return order_from_row(row, _COLUMNS)


def _authorization(row: sqlite3.Row) -> AcmeAuthorization:
    return authorization_from_row(row, _COLUMNS)


def _challenge(row: sqlite3.Row) -> AcmeChallenge:
    return challenge_from_row(row, _COLUMNS)


class SQLiteAcmeMixin:
    """ACME accounts, orders, authorizations and challenges in the store's database."""

    if TYPE_CHECKING:  # provided by SQLiteStore

        def _write(self) -> contextlib.AbstractContextManager[sqlite3.Connection]: ...

        def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]: ...

    def _one(self, table: str, key: str, what: str) -> sqlite3.Row:
        rows = self._query(f"SELECT * FROM {table} WHERE id = ?", (key,))
        if not rows:
            raise NotFound(f"no ACME {what} {key!r}")
        return rows[0]

    # -- accounts ------------------------------------------------------------------------------
    def add_account(self, account: AcmeAccount) -> None:
        try:
            with self._write() as db:
                db.execute(
                    "INSERT INTO acme_account (id, jwk, thumbprint, contact, status, created_at,"
                    " eab_kid) VALUES (?,?,?,?,?,?,?)",
                    (
                        account.id,
                        account.jwk,
                        account.thumbprint,
                        json.dumps(list(account.contact)),
                        account.status.value,
                        ts(account.created_at),
                        account.eab_kid,
                    ),
                )
        except sqlite3.IntegrityError as exc:
            if "thumbprint" in str(exc):
                raise AlreadyExists("an ACME account already exists for this key") from None
            raise AlreadyExists(f"ACME account id {account.id!r} is taken") from None

    def get_account(self, account_id: str) -> AcmeAccount:
        return _account(self._one("acme_account", account_id, "account"))

    def find_account_by_thumbprint(self, thumbprint: str) -> AcmeAccount | None:
        rows = self._query("SELECT * FROM acme_account WHERE thumbprint = ?", (thumbprint,))
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
            changes["contact"] = json.dumps(list(contact))
        if status is not None:
            changes["status"] = status.value
        if jwk is not None:
            changes["jwk"] = jwk
            changes["thumbprint"] = thumbprint
        try:
            self._compare_and_set("acme_account", "account", account_id, changes, None)
        except sqlite3.IntegrityError:  # the UNIQUE thumbprint: the key is another account's
            raise AlreadyExists("another ACME account already uses this key") from None
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
        try:
            with self._write() as db:
                row = db.execute(
                    "SELECT 1 FROM acme_account WHERE id = ?", (order.account_id,)
                ).fetchone()
                if row is None:
                    raise NotFound(f"no ACME account {order.account_id!r}")
                for reused in (i for i in order.authorization_ids if i not in new_ids):
                    row = db.execute(
                        "SELECT account_id FROM acme_authorization WHERE id = ?", (reused,)
                    ).fetchone()
                    if row is None or row[0] != order.account_id:
                        raise NotFound(f"no ACME authorization {reused!r} for this account")
                db.execute(
                    "INSERT INTO acme_order (id, account_id, identifiers, status, expires,"
                    " not_before, not_after, authorization_ids, error, certificate_serial,"
                    " replaces, profile, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        order.id,
                        order.account_id,
                        json.dumps([list(i) for i in order.identifiers]),
                        order.status.value,
                        ts(order.expires),
                        _opt_ts(order.not_before),
                        _opt_ts(order.not_after),
                        json.dumps(list(order.authorization_ids)),
                        order.error,
                        _opt_serial(order.certificate_serial),
                        order.replaces,
                        order.profile,
                        ts(order.created_at),
                    ),
                )
                db.executemany(
                    "INSERT INTO acme_authorization (id, account_id, identifier_type,"
                    " identifier_value, wildcard, status, expires, created_at)"
                    " VALUES (?,?,?,?,?,?,?,?)",
                    [
                        (
                            a.id,
                            a.account_id,
                            a.identifier.type,
                            a.identifier.value,
                            int(a.wildcard),
                            a.status.value,
                            ts(a.expires),
                            ts(a.created_at),
                        )
                        for a in authorizations
                    ],
                )
                db.executemany(
                    "INSERT INTO acme_challenge (id, authorization_id, type, token, status,"
                    " validated_at, error) VALUES (?,?,?,?,?,?,?)",
                    [
                        (
                            c.id,
                            c.authorization_id,
                            c.type.value,
                            c.token,
                            c.status.value,
                            _opt_ts(c.validated_at),
                            c.error,
                        )
                        for c in challenges
                    ],
                )
        except sqlite3.IntegrityError as exc:
            if "UNIQUE" in str(exc):
                raise AlreadyExists(f"an id of ACME order {order.id!r} is taken") from None
            raise StorageError(f"cannot record ACME order {order.id!r}: {exc}") from None

    def get_order(self, order_id: str) -> AcmeOrder:
        return _order(self._one("acme_order", order_id, "order"))

    def list_orders(self, account_id: str) -> Sequence[AcmeOrder]:
        rows = self._query(
            "SELECT * FROM acme_order WHERE account_id = ? ORDER BY created_at, rowid",
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
            changes["processing_since"] = ts(processing_since)
        if csr is not None:
            changes["csr"] = csr
        try:
            return self._compare_and_set("acme_order", "order", order_id, changes, expected_status)
        except sqlite3.IntegrityError:  # the certificate_serial foreign key
            serial = serial_key(certificate_serial or 0)
            raise NotFound(f"no certificate with serial {serial}") from None

    def take_over_order(self, order_id: str, *, stale_before: datetime, now: datetime) -> bool:
        with self._write() as db:
            taken = db.execute(
                "UPDATE acme_order SET processing_since = ? WHERE id = ? AND status = ?"
                " AND (processing_since IS NULL OR processing_since < ?)",
                (ts(now), order_id, OrderStatus.PROCESSING.value, ts(stale_before)),
            ).rowcount
            if taken:
                return True
            if db.execute("SELECT 1 FROM acme_order WHERE id = ?", (order_id,)).fetchone() is None:
                raise NotFound(f"no ACME order {order_id!r}")
            return False

    def order_certificate(self, order_id: str) -> int | None:
        rows = self._query(
            "SELECT serial FROM certificate WHERE order_id = ? ORDER BY issued_at, rowid LIMIT 1",
            (order_id,),
        )
        return int(rows[0][0], 16) if rows else None

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
        rows = self._query(
            "SELECT * FROM acme_authorization WHERE account_id = ? AND identifier_type = ?"
            " AND identifier_value = ? AND wildcard = ? AND status = ? AND expires > ?"
            " ORDER BY expires DESC LIMIT 1",
            (
                account_id,
                identifier.type,
                identifier.value,
                int(wildcard),
                AuthzStatus.VALID.value,
                ts(now),
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
        rows = self._query(
            "SELECT * FROM acme_challenge WHERE authorization_id = ? ORDER BY seq",
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
            changes["validated_at"] = ts(validated_at)
        if processing_since is not None:
            changes["processing_since"] = ts(processing_since)
        if error is not None:
            changes["error"] = error
        parent = None
        if authorization_status is not None:
            parent = ("authorization_id", {"status": authorization_status.value})
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
        parent: tuple[str, dict[str, Any]] | None = None,
    ) -> bool:
        """Apply ``changes`` to row ``key`` if its status is ``expected`` (or always).

        ``parent`` = (column naming an acme_authorization, its changes) updates that row in the
        same transaction when, and only when, this one changed and the authorization is still
        pending (see ``AcmeStore.update_challenge``).
        """
        with self._write() as db:
            row = db.execute(f"SELECT status FROM {table} WHERE id = ?", (key,)).fetchone()
            if row is None:
                raise NotFound(f"no ACME {what} {key!r}")
            if expected is not None and row[0] != expected:
                return False
            if changes:
                sets = ", ".join(f"{column} = ?" for column in changes)
                db.execute(f"UPDATE {table} SET {sets} WHERE id = ?", (*changes.values(), key))
            if parent is not None:
                column, parent_changes = parent
                sets = ", ".join(f"{c} = ?" for c in parent_changes)
                db.execute(
                    f"UPDATE acme_authorization SET {sets}"
                    f" WHERE id = (SELECT {column} FROM {table} WHERE id = ?) AND status = ?",
                    (*parent_changes.values(), key, AuthzStatus.PENDING.value),
                )
            return True

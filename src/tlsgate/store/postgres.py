"""The store for clusters: every node's state in one PostgreSQL database.

Why this shape:
- One connection per store object, used by one operation at a time (a lock), each operation one
  transaction that commits or rolls back before the method returns: no connection sits idle in
  a transaction holding a snapshot, and every method keeps the Store contract's "all or nothing".
  A read that is a single SELECT runs as an autocommit statement (its own transaction, one round
  trip instead of BEGIN/SELECT/COMMIT); everything that writes opens its transaction explicitly.
- Where the SQLite store relied on its single writer, this one says what it means: ``SELECT ...
  FOR UPDATE`` before a compare-and-set, ``INSERT ... ON CONFLICT`` for first-caller-wins values
  (the ticket secret, ACME account keys), ``UPDATE ... RETURNING`` for counters (CRL numbers) and
  ``DELETE ... RETURNING`` for single-use values (nonces), so several processes on several
  machines agree without a lock of their own.
- Private keys are rows (``private_key``, ``managed.key_pem``, ``secret``) stored as the PEM given:
  encrypted by the caller when the CA has a passphrase, so the database alone does not give them
  away. Database access control is the operator's job; messages never contain the password.
- A PostgreSQL restart must not make a long-running process useless: a broken connection is
  dropped and the next operation connects again. An operation that failed on a connection that
  turned out to be stale is retried once on a fresh one, which is safe because nothing was
  committed; a failure while committing is never retried (its outcome is unknown) and, like an
  unreachable server, surfaces as :class:`~tlsgate.errors.StorageError`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import DictRow, dict_row

from tlsgate.errors import AlreadyExists, NotFound, StorageError, authority_exists
from tlsgate.store.base import (
    AuthorityRecord,
    CertificateRecord,
    CertificateWatch,
    CertStatus,
    ManagedCertificate,
    NewAuthority,
    revocation_digest,
)
from tlsgate.store.postgres_acme import PostgresAcmeMixin
from tlsgate.store.postgres_columns import Cursor, opt_utc, utc
from tlsgate.store.postgres_notify import CERTIFICATES_CHANNEL, CertificateListener
from tlsgate.store.postgres_renewal import PostgresRenewalMixin
from tlsgate.store.postgres_schema import migrate
from tlsgate.store.sqlite_columns import serial_key

__all__ = ["PostgresStore", "describe", "redact"]

TICKET_SECRET = "session-tickets"
TICKET_SECRET_SIZE = 32
#: Connections a forked process inherited from its parent: kept, never closed (see ``_drop``).
_INHERITED: list[psycopg.Connection[DictRow]] = []
_CONNECT_TIMEOUT = 10  # seconds: an unreachable server is reported, not waited for forever

T = TypeVar("T")


def redact(url: str) -> str:
    """``url`` without its password (in the user part or as a ``password=`` parameter)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.split(':', 1)[0]}@{host}"
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != "password"])
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def describe(url: str) -> str:
    """``host:port/dbname``: what messages call the database (never the password)."""
    try:
        info = conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise StorageError(f"invalid PostgreSQL URL {redact(url)!r}: {exc}") from None
    host = str(info.get("host") or os.environ.get("PGHOST") or "localhost")
    port = str(info.get("port") or os.environ.get("PGPORT") or "5432")
    dbname = str(info.get("dbname") or os.environ.get("PGDATABASE") or info.get("user") or "")
    return f"{host}:{port}/{dbname}"


class PostgresStore(PostgresAcmeMixin, PostgresRenewalMixin):
    """State in a PostgreSQL database named by a ``postgresql://`` URL."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._where = describe(url)
        self._location = redact(url)
        self._lock = threading.RLock()
        self._conn: psycopg.Connection[DictRow] | None = None
        self._pid = os.getpid()  # the process that opened ``_conn``
        try:
            self._run(lambda cur: migrate(cur, self._where))
        except BaseException:
            self.close()  # a store refused at the door must not leak its connection
            raise

    @property
    def location(self) -> str:
        return self._location

    def reopen(self) -> PostgresStore:
        """A new store on the same database with its own connection (after ``fork()``)."""
        return PostgresStore(self._url)

    def close(self) -> None:
        with self._lock:
            self._drop()

    def __del__(self) -> None:
        # Commands open a store and exit without closing it; SQLite does not mind, but an open
        # PostgreSQL connection would be reported (ResourceWarning) rather than ended politely.
        if getattr(self, "_conn", None) is not None:
            self._drop()

    # -- plumbing ----------------------------------------------------------------------------
    def _unreachable(self, exc: BaseException) -> StorageError:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return StorageError(f"PostgreSQL at {self._where} is unreachable: {detail}")

    def _connect(self) -> psycopg.Connection[DictRow]:
        try:
            return psycopg.connect(
                self._url,
                # Reads run as single statements (one round trip); everything else opens its
                # transaction explicitly (``_run``), so autocommit never half-applies a change.
                autocommit=True,
                row_factory=dict_row,
                connect_timeout=_CONNECT_TIMEOUT,
                application_name="tlsgate",
            )
        except psycopg.OperationalError as exc:
            raise self._unreachable(exc) from None
        except psycopg.Error as exc:
            raise StorageError(f"cannot connect to PostgreSQL at {self._where}: {exc}") from None

    def _drop(self) -> None:
        """Forget the connection, closing it if this process opened it.

        A forked worker must not close the connection it inherited: closing sends the server a
        goodbye on the parent's session. It is kept referenced instead, so it is never finalised.
        """
        if self._conn is None:
            return
        if self._pid == os.getpid():
            try:
                self._conn.close()
            except psycopg.Error:
                pass
        else:
            _INHERITED.append(self._conn)
        self._conn = None

    def _run(self, work: Callable[[Cursor], T], *, read: bool = False) -> T:
        """Run ``work`` in one transaction on a live connection and commit; see the module doc
        for when a lost connection is retried.

        ``read``: ``work`` is one SELECT, run without BEGIN/COMMIT around it: one round trip
        instead of three, which is most of what a store call costs on the ACME server's event
        loop (a statement is its own transaction, so it sees one consistent snapshot anyway).
        """
        with self._lock:
            for attempt in (1, 2):
                fresh = self._conn is None or self._conn.closed or self._conn.broken
                if fresh:
                    self._drop()
                    self._conn = self._connect()
                    self._pid = os.getpid()
                conn = self._conn
                assert conn is not None
                try:
                    if read:
                        with conn.cursor() as cursor:
                            return work(cursor)
                    conn.execute(b"BEGIN")
                    with conn.cursor() as cursor:
                        result = work(cursor)
                except psycopg.OperationalError as exc:
                    if not (conn.broken or conn.closed):  # e.g. a deadlock: the server is fine
                        self._rollback()
                        raise self._failed(exc) from None
                    self._drop()
                    if not fresh and attempt == 1:
                        continue  # a connection from before a restart: nothing was committed
                    raise self._unreachable(exc) from None
                except psycopg.Error as exc:
                    self._rollback()
                    raise self._failed(exc) from None
                except BaseException:
                    self._rollback()
                    raise
                try:
                    conn.commit()
                except psycopg.OperationalError as exc:
                    self._drop()
                    raise self._unreachable(exc) from None
                except psycopg.Error as exc:
                    self._rollback()
                    raise self._failed(exc) from None
                return result
            raise AssertionError("unreachable")  # pragma: no cover

    def _failed(self, exc: psycopg.Error) -> StorageError:
        return StorageError(f"PostgreSQL at {self._where} refused the operation: {exc}")

    def _rollback(self) -> None:
        if self._conn is None:
            return
        try:
            self._conn.rollback()
        except psycopg.Error:
            self._drop()

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[DictRow]:
        """One read in its own transaction."""

        def read(cur: Cursor) -> list[DictRow]:
            cur.execute(sql.encode(), params)
            return cur.fetchall()

        return self._run(read, read=True)

    # -- certificate authority --------------------------------------------------------------
    @staticmethod
    def _authority(row: DictRow) -> AuthorityRecord:
        return AuthorityRecord(
            id=row["id"],
            name=row["name"],
            root_pem=bytes(row["root_pem"]),
            intermediate_pem=bytes(row["intermediate_pem"]),
            root_key_id=row["root_key_id"],
            intermediate_key_id=row["intermediate_key_id"],
            crl_url=row["crl_url"],
            created_at=utc(row["created_at"]),
            active=bool(row["active"]),
        )

    def active_authority(self) -> AuthorityRecord | None:
        rows = self._rows("SELECT * FROM authority WHERE active")
        return self._authority(rows[0]) if rows else None

    def create_authority(self, new: NewAuthority, *, replace: bool = False) -> AuthorityRecord:
        def create(cur: Cursor) -> AuthorityRecord:
            # Serialise CA creation across nodes; readers are not blocked.
            cur.execute("LOCK TABLE authority IN SHARE ROW EXCLUSIVE MODE")
            cur.execute("SELECT id FROM authority WHERE active")
            if cur.fetchone() is not None and not replace:
                raise authority_exists(str(self._location))
            for key_id, pem in new.keys.items():
                try:
                    with cur.connection.transaction():  # a savepoint, to name the clash
                        cur.execute(
                            "INSERT INTO private_key (id, pem) VALUES (%s, %s)", (key_id, pem)
                        )
                except pg_errors.UniqueViolation:
                    raise AlreadyExists(f"private key {key_id} already exists") from None
            cur.execute("UPDATE authority SET active = FALSE WHERE active")
            cur.execute(
                "INSERT INTO authority (name, root_pem, intermediate_pem, root_key_id,"
                " intermediate_key_id, crl_url, created_at, active)"
                " VALUES (%s,%s,%s,%s,%s,%s,%s,TRUE) RETURNING *",
                (
                    new.name,
                    new.root_pem,
                    new.intermediate_pem,
                    new.root_key_id,
                    new.intermediate_key_id,
                    new.crl_url,
                    new.created_at,
                ),
            )
            row = cur.fetchone()
            assert row is not None
            return self._authority(row)

        return self._run(create)

    def load_key(self, key_id: str) -> bytes:
        rows = self._rows("SELECT pem FROM private_key WHERE id = %s", (key_id,))
        if not rows:
            raise NotFound(f"private key {key_id} is missing from {self._location}")
        return bytes(rows[0]["pem"])

    # -- issued certificates -----------------------------------------------------------------
    @staticmethod
    def _certificate(row: DictRow) -> CertificateRecord:
        return CertificateRecord(
            serial=int(row["serial"], 16),
            authority_id=row["authority_id"],
            names=tuple(row["names"]),
            usages=tuple(row["usages"]),
            not_before=utc(row["not_before"]),
            not_after=utc(row["not_after"]),
            issued_at=utc(row["issued_at"]),
            pem=bytes(row["pem"]),
            status=CertStatus(row["status"]),
            revoked_at=opt_utc(row["revoked_at"]),
            revocation_reason=row["revocation_reason"],
            requester=row["requester"],
            order_id=row["order_id"],
            revoked_by=row["revoked_by"],
        )

    def add_certificate(self, record: CertificateRecord) -> None:
        def add(cur: Cursor) -> None:
            try:
                cur.execute(
                    "INSERT INTO certificate (serial, authority_id, names, usages, not_before,"
                    " not_after, issued_at, pem, status, revoked_at, revocation_reason,"
                    " requester, order_id, revoked_by)"
                    " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                    (
                        serial_key(record.serial),
                        record.authority_id,
                        list(record.names),
                        list(record.usages),
                        record.not_before,
                        record.not_after,
                        record.issued_at,
                        record.pem,
                        record.status.value,
                        record.revoked_at,
                        record.revocation_reason,
                        record.requester,
                        record.order_id,
                        record.revoked_by,
                    ),
                )
            except pg_errors.UniqueViolation:
                raise AlreadyExists(f"serial {serial_key(record.serial)} is already used") from None
            except pg_errors.ForeignKeyViolation as exc:
                if record.order_id is not None and "order" in str(exc):
                    raise NotFound(f"no ACME order {record.order_id!r}") from None
                raise StorageError(f"cannot record certificate: {exc}") from None

        self._run(add)

    def get_certificate(self, serial: int) -> CertificateRecord:
        rows = self._rows("SELECT * FROM certificate WHERE serial = %s", (serial_key(serial),))
        if not rows:
            raise NotFound(f"no certificate with serial {serial_key(serial)}")
        return self._certificate(rows[0])

    def list_certificates(
        self,
        *,
        authority_id: int | None = None,
        status: CertStatus | None = None,
        not_after_before: datetime | None = None,
        not_after_after: datetime | None = None,
    ) -> Sequence[CertificateRecord]:
        clauses: list[str] = []
        params: list[Any] = []
        for clause, value in (
            ("authority_id = %s", authority_id),
            ("status = %s", status.value if status is not None else None),
            ("not_after < %s", not_after_before),
            ("not_after > %s", not_after_after),
        ):
            if value is not None:
                clauses.append(clause)
                params.append(value)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._rows(f"SELECT * FROM certificate{where} ORDER BY not_after, serial", params)
        return [self._certificate(r) for r in rows]

    def revoke_certificate(
        self, serial: int, *, at: datetime, reason: str, revoked_by: str = "cli"
    ) -> CertificateRecord:
        key = serial_key(serial)

        def revoke(cur: Cursor) -> CertificateRecord:
            cur.execute("SELECT status FROM certificate WHERE serial = %s FOR UPDATE", (key,))
            row = cur.fetchone()
            if row is None:
                raise NotFound(f"no certificate with serial {key}")
            if row["status"] == CertStatus.REVOKED.value:
                raise AlreadyExists(f"certificate {key} is already revoked")
            cur.execute(
                "UPDATE certificate SET status = %s, revoked_at = %s, revocation_reason = %s,"
                " revoked_by = %s WHERE serial = %s RETURNING *",
                (CertStatus.REVOKED.value, at, reason, revoked_by, key),
            )
            updated = cur.fetchone()
            assert updated is not None
            # Delivered on commit: every serving node looks at the revocations at once
            # (the payload "" asks listeners to look at everything, revocations included).
            cur.execute("SELECT pg_notify(%s, '')", (CERTIFICATES_CHANNEL,))
            return self._certificate(updated)

        return self._run(revoke)

    def next_crl_number(self, authority_id: int) -> int:
        def bump(cur: Cursor) -> int:
            cur.execute(
                "UPDATE authority SET crl_number = crl_number + 1 WHERE id = %s"
                " RETURNING crl_number",
                (authority_id,),
            )
            row = cur.fetchone()
            if row is None:
                raise NotFound(f"no certificate authority with id {authority_id}")
            return int(row["crl_number"])

        return self._run(bump)

    def revocation_mark(self) -> str:
        rows = self._rows(
            "SELECT a.id, c.serial FROM authority a LEFT JOIN certificate c"
            " ON c.authority_id = a.id AND c.status = %s WHERE a.active",
            (CertStatus.REVOKED.value,),
        )
        authority = rows[0]["id"] if rows else None
        return revocation_digest(authority, (r["serial"] for r in rows if r["serial"] is not None))

    # -- certificates the edge serves ------------------------------------------------------
    def save_managed(self, cert: ManagedCertificate) -> None:
        """Upsert the row and ``NOTIFY`` in the same transaction: PostgreSQL delivers the
        notification only when the row is committed, so a listening node never reads the old
        certificate on being told about the new one, and never hears of one rolled back."""

        def save(cur: Cursor) -> None:
            cur.execute(
                "INSERT INTO managed (name, fullchain_pem, key_pem, not_after, issuer,"
                " updated_at) VALUES (%s,%s,%s,%s,%s,%s) ON CONFLICT (name) DO UPDATE SET"
                " fullchain_pem = EXCLUDED.fullchain_pem, key_pem = EXCLUDED.key_pem,"
                " not_after = EXCLUDED.not_after, issuer = EXCLUDED.issuer,"
                " updated_at = EXCLUDED.updated_at",
                (
                    cert.name,
                    cert.fullchain_pem,
                    cert.key_pem,
                    cert.not_after,
                    cert.issuer,
                    cert.updated_at,
                ),
            )
            cur.execute("SELECT pg_notify(%s, %s)", (CERTIFICATES_CHANNEL, cert.name))

        self._run(save)

    def managed_fingerprints(self) -> Mapping[str, str]:
        rows = self._rows("SELECT name, encode(sha256(fullchain_pem), 'hex') AS fp FROM managed")
        return {row["name"]: str(row["fp"]) for row in rows}

    def watch_certificates(self, changed: Callable[[str], None]) -> CertificateWatch:
        return CertificateListener(self._url, self._where, changed)

    def load_managed(self, name: str) -> ManagedCertificate | None:
        rows = self._rows("SELECT * FROM managed WHERE name = %s", (name,))
        return self._managed(rows[0]) if rows else None

    def _managed(self, row: DictRow) -> ManagedCertificate | None:
        return ManagedCertificate(
            name=row["name"],
            fullchain_pem=bytes(row["fullchain_pem"]),
            key_pem=bytes(row["key_pem"]),
            not_after=utc(row["not_after"]),
            issuer=row["issuer"],
            updated_at=utc(row["updated_at"]),
        )

    # -- TLS session tickets ---------------------------------------------------------------
    def ticket_secret(self) -> bytes:
        secret = self._secret(TICKET_SECRET, lambda: os.urandom(TICKET_SECRET_SIZE))
        if len(secret) != TICKET_SECRET_SIZE:
            raise StorageError(
                f"the ticket secret in {self._location} is damaged ({len(secret)} bytes, "
                f"expected {TICKET_SECRET_SIZE}); delete its row from table secret for a new one"
            )
        return secret

    def _secret(self, name: str, create: Callable[[], bytes]) -> bytes:
        """The value of secret ``name``, made with ``create()`` if missing; first writer wins.

        ``ON CONFLICT DO NOTHING`` waits for a concurrent inserter to commit and then inserts
        nothing, and the ``SELECT`` after it (a new snapshot) reads the winner's value.
        """
        rows = self._rows("SELECT value FROM secret WHERE name = %s", (name,))
        if rows:
            return bytes(rows[0]["value"])
        value = create()

        def insert(cur: Cursor) -> bytes:
            cur.execute(
                "INSERT INTO secret (name, value) VALUES (%s, %s) ON CONFLICT (name) DO NOTHING",
                (name, value),
            )
            cur.execute("SELECT value FROM secret WHERE name = %s", (name,))
            row = cur.fetchone()
            assert row is not None
            return bytes(row["value"])

        return self._run(insert)

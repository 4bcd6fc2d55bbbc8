"""The embedded default store: one SQLite file plus 0600 key files in a private directory.

Why this shape:
- SQLite in WAL mode with ``synchronous=FULL`` gives crash-safe transactions and lets readers run
  while one process writes; every write transaction starts with ``BEGIN IMMEDIATE`` so two
  processes serialise on the database lock instead of failing half-way (``busy_timeout`` waits).
- Private keys live in files (``keys/<id>.pem``, 0600, written atomically) rather than in the
  database, so a copy of the database for debugging never carries them.
- The schema version is ``PRAGMA user_version``; migrations run inside the same write lock, so
  several processes starting at once migrate exactly once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from tlsgate.errors import AlreadyExists, NotFound, StorageError, authority_exists
from tlsgate.store.base import (
    AuthorityRecord,
    CertificateRecord,
    CertStatus,
    ManagedCertificate,
    NewAuthority,
    revocation_digest,
)
from tlsgate.store.files import PRIVATE, atomic_write, ensure_private_dir
from tlsgate.store.sqlite_acme import MIGRATION as ACME_MIGRATION
from tlsgate.store.sqlite_acme import NODE_LOSS_MIGRATION, SQLiteAcmeMixin
from tlsgate.store.sqlite_columns import dt as _dt
from tlsgate.store.sqlite_columns import serial_key as _serial_key
from tlsgate.store.sqlite_columns import ts as _ts
from tlsgate.store.sqlite_renewal import CLUSTER_MIGRATION, SQLiteRenewalMixin
from tlsgate.store.sqlite_renewal import MIGRATION as RENEWAL_MIGRATION

__all__ = ["SQLiteStore"]

DB_NAME = "tlsgate.db"
TICKET_SECRET_NAME = "session-tickets.key"
TICKET_SECRET_SIZE = 32
_BUSY_TIMEOUT_MS = 30_000

_MIGRATIONS: tuple[str, ...] = (
    # 1: certificate authority and issued certificates
    """
    CREATE TABLE authority (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        root_pem BLOB NOT NULL,
        intermediate_pem BLOB NOT NULL,
        root_key_id TEXT NOT NULL,
        intermediate_key_id TEXT NOT NULL,
        crl_url TEXT,
        created_at TEXT NOT NULL,
        active INTEGER NOT NULL DEFAULT 1,
        crl_number INTEGER NOT NULL DEFAULT 0
    );
    CREATE UNIQUE INDEX authority_one_active ON authority(active) WHERE active = 1;
    CREATE TABLE certificate (
        serial TEXT PRIMARY KEY,           -- upper-case hex, even length
        authority_id INTEGER NOT NULL REFERENCES authority(id),
        names TEXT NOT NULL,               -- JSON list of identity strings
        usages TEXT NOT NULL,              -- JSON list
        not_before TEXT NOT NULL,
        not_after TEXT NOT NULL,           -- ISO 8601 UTC, sortable
        issued_at TEXT NOT NULL,
        pem BLOB NOT NULL,
        status TEXT NOT NULL DEFAULT 'valid',
        revoked_at TEXT,
        revocation_reason TEXT,
        requester TEXT NOT NULL DEFAULT 'cli'
    );
    CREATE INDEX certificate_not_after ON certificate(not_after);
    CREATE INDEX certificate_authority ON certificate(authority_id, status);
    """,
    # 2: certificates the edge serves (key in keys/, like the CA's)
    """
    CREATE TABLE managed (
        name TEXT PRIMARY KEY,
        fullchain_pem BLOB NOT NULL,
        key_id TEXT NOT NULL,
        not_after TEXT NOT NULL,
        issuer TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    """,
    # 3: the ACME server's accounts, orders, authorizations, challenges; certificate audit
    # columns order_id and revoked_by
    ACME_MIGRATION,
    # 4: renewal state per served certificate, ACME challenge answers for the workers
    RENEWAL_MIGRATION,
    # 5: leases and shared ACME nonces (what the PostgreSQL store offers clusters, so a single
    # node behaves the same)
    CLUSTER_MIGRATION,
    # 6: when orders and challenges became processing (another node finishes what a stopped
    # node left), finalize's CSR, and rate-limit budgets shared by processes
    NODE_LOSS_MIGRATION,
)


class SQLiteStore(SQLiteAcmeMixin, SQLiteRenewalMixin):
    """State in ``<dir>/tlsgate.db`` and ``<dir>/keys/``; ACME and renewal state via mixins."""

    def __init__(self, directory: Path) -> None:
        self.directory = ensure_private_dir(directory)
        self._keys = ensure_private_dir(directory / "keys")
        path = directory / DB_NAME
        if not path.exists():
            # Create it 0600 before SQLite does, since SQLite would honour the umask (often 0644).
            with contextlib.suppress(FileExistsError):
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE))
        try:
            self._db = sqlite3.connect(
                path, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
            )
            self._db.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = FULL")
            self._db.execute("PRAGMA foreign_keys = ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StorageError(f"cannot open state database {path}: {exc}") from None

    @property
    def location(self) -> str:
        return str(self.directory)

    def reopen(self) -> SQLiteStore:
        """A new store on the same directory with its own connection (after ``fork()``)."""
        return SQLiteStore(self.directory)

    def close(self) -> None:
        self._db.close()

    # -- plumbing ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction holding SQLite's write lock from the start."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StorageError(f"state database is busy or unwritable: {exc}") from None
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        else:
            try:
                self._db.execute("COMMIT")
            except sqlite3.DatabaseError as exc:
                self._db.execute("ROLLBACK")
                raise StorageError(f"cannot commit to the state database: {exc}") from None

    def _migrate(self) -> None:
        (version,) = self._db.execute("PRAGMA user_version").fetchone()
        if version == len(_MIGRATIONS):
            return
        with self._write() as db:
            (version,) = db.execute("PRAGMA user_version").fetchone()  # re-read under the lock
            if version > len(_MIGRATIONS):
                raise StorageError(
                    f"state in {self.directory} was written by a newer tlsgate (schema {version})"
                )
            for number in range(version, len(_MIGRATIONS)):
                for statement in _MIGRATIONS[number].split(";"):
                    if statement.strip():
                        db.execute(statement)
            db.execute(f"PRAGMA user_version = {len(_MIGRATIONS)}")

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        try:
            cursor = self._db.execute(sql, params)
            cursor.row_factory = sqlite3.Row
            return cursor.fetchall()
        except sqlite3.DatabaseError as exc:
            raise StorageError(f"cannot read the state database: {exc}") from None

    # -- certificate authority --------------------------------------------------------------
    @staticmethod
    def _authority(row: sqlite3.Row) -> AuthorityRecord:
        return AuthorityRecord(
            id=row["id"],
            name=row["name"],
            root_pem=bytes(row["root_pem"]),
            intermediate_pem=bytes(row["intermediate_pem"]),
            root_key_id=row["root_key_id"],
            intermediate_key_id=row["intermediate_key_id"],
            crl_url=row["crl_url"],
            created_at=_dt(row["created_at"]),
            active=bool(row["active"]),
        )

    def active_authority(self) -> AuthorityRecord | None:
        rows = self._query("SELECT * FROM authority WHERE active = 1")
        return self._authority(rows[0]) if rows else None

    def _key_path(self, key_id: str) -> Path:
        if not key_id or not all(c in "0123456789abcdef" for c in key_id):
            raise StorageError(f"invalid key id {key_id!r}")
        return self._keys / f"{key_id}.pem"

    def create_authority(self, new: NewAuthority, *, replace: bool = False) -> AuthorityRecord:
        written: list[Path] = []
        try:
            with self._write() as db:
                active = db.execute("SELECT id FROM authority WHERE active = 1").fetchone()
                if active is not None and not replace:
                    raise authority_exists(str(self.directory))
                for key_id, pem in new.keys.items():
                    path = self._key_path(key_id)
                    atomic_write(path, pem, mode=PRIVATE, overwrite=False)
                    written.append(path)
                db.execute("UPDATE authority SET active = 0 WHERE active = 1")
                cursor = db.execute(
                    "INSERT INTO authority (name, root_pem, intermediate_pem, root_key_id,"
                    " intermediate_key_id, crl_url, created_at, active) VALUES (?,?,?,?,?,?,?,1)",
                    (
                        new.name,
                        new.root_pem,
                        new.intermediate_pem,
                        new.root_key_id,
                        new.intermediate_key_id,
                        new.crl_url,
                        _ts(new.created_at),
                    ),
                )
                authority_id = cursor.lastrowid
        except BaseException:
            for path in written:  # the transaction rolled back: leave no orphan key behind
                with contextlib.suppress(OSError):
                    path.unlink()
            raise
        rows = self._query("SELECT * FROM authority WHERE id = ?", (authority_id,))
        return self._authority(rows[0])

    def load_key(self, key_id: str) -> bytes:
        path = self._key_path(key_id)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise NotFound(f"private key {path} is missing") from None
        except OSError as exc:
            raise StorageError(f"cannot read private key {path}: {exc.strerror}") from None

    # -- issued certificates -----------------------------------------------------------------
    @staticmethod
    def _certificate(row: sqlite3.Row) -> CertificateRecord:
        return CertificateRecord(
            serial=int(row["serial"], 16),
            authority_id=row["authority_id"],
            names=tuple(json.loads(row["names"])),
            usages=tuple(json.loads(row["usages"])),
            not_before=_dt(row["not_before"]),
            not_after=_dt(row["not_after"]),
            issued_at=_dt(row["issued_at"]),
            pem=bytes(row["pem"]),
            status=CertStatus(row["status"]),
            revoked_at=_dt(row["revoked_at"]) if row["revoked_at"] else None,
            revocation_reason=row["revocation_reason"],
            requester=row["requester"],
            order_id=row["order_id"],
            revoked_by=row["revoked_by"],
        )

    def add_certificate(self, record: CertificateRecord) -> None:
        try:
            with self._write() as db:
                db.execute(
                    "INSERT INTO certificate (serial, authority_id, names, usages, not_before,"
                    " not_after, issued_at, pem, status, revoked_at, revocation_reason, requester,"
                    " order_id, revoked_by) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        _serial_key(record.serial),
                        record.authority_id,
                        json.dumps(list(record.names)),
                        json.dumps(list(record.usages)),
                        _ts(record.not_before),
                        _ts(record.not_after),
                        _ts(record.issued_at),
                        record.pem,
                        record.status.value,
                        _ts(record.revoked_at) if record.revoked_at else None,
                        record.revocation_reason,
                        record.requester,
                        record.order_id,
                        record.revoked_by,
                    ),
                )
        except sqlite3.IntegrityError as exc:
            if "UNIQUE" in str(exc):
                raise AlreadyExists(
                    f"serial {_serial_key(record.serial)} is already used"
                ) from None
            if record.order_id is not None and "FOREIGN KEY" in str(exc):
                raise NotFound(f"no ACME order {record.order_id!r}") from None
            raise StorageError(f"cannot record certificate: {exc}") from None

    def get_certificate(self, serial: int) -> CertificateRecord:
        rows = self._query("SELECT * FROM certificate WHERE serial = ?", (_serial_key(serial),))
        if not rows:
            raise NotFound(f"no certificate with serial {_serial_key(serial)}")
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
        if authority_id is not None:
            clauses.append("authority_id = ?")
            params.append(authority_id)
        if status is not None:
            clauses.append("status = ?")
            params.append(status.value)
        if not_after_before is not None:
            clauses.append("not_after < ?")
            params.append(_ts(not_after_before))
        if not_after_after is not None:
            clauses.append("not_after > ?")
            params.append(_ts(not_after_after))
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._query(f"SELECT * FROM certificate{where} ORDER BY not_after, serial", params)
        return [self._certificate(r) for r in rows]

    def revoke_certificate(
        self, serial: int, *, at: datetime, reason: str, revoked_by: str = "cli"
    ) -> CertificateRecord:
        key = _serial_key(serial)
        with self._write() as db:
            row = db.execute("SELECT status FROM certificate WHERE serial = ?", (key,)).fetchone()
            if row is None:
                raise NotFound(f"no certificate with serial {key}")
            if row[0] == CertStatus.REVOKED.value:
                raise AlreadyExists(f"certificate {key} is already revoked")
            db.execute(
                "UPDATE certificate SET status = ?, revoked_at = ?, revocation_reason = ?,"
                " revoked_by = ? WHERE serial = ?",
                (CertStatus.REVOKED.value, _ts(at), reason, revoked_by, key),
            )
        return self.get_certificate(serial)

    def next_crl_number(self, authority_id: int) -> int:
        with self._write() as db:
            db.execute(
                "UPDATE authority SET crl_number = crl_number + 1 WHERE id = ?", (authority_id,)
            )
            row = db.execute(
                "SELECT crl_number FROM authority WHERE id = ?", (authority_id,)
            ).fetchone()
        if row is None:
            raise NotFound(f"no certificate authority with id {authority_id}")
        return int(row[0])

    def revocation_mark(self) -> str:
        rows = self._query(
            "SELECT a.id, c.serial FROM authority a LEFT JOIN certificate c"
            " ON c.authority_id = a.id AND c.status = ? WHERE a.active = 1",
            (CertStatus.REVOKED.value,),
        )
        authority = rows[0][0] if rows else None
        return revocation_digest(authority, (row[1] for row in rows if row[1] is not None))

    # -- certificates the edge serves ------------------------------------------------------
    def save_managed(self, cert: ManagedCertificate) -> None:
        key_id = hashlib.sha256(cert.key_pem).hexdigest()[:40]
        path = self._key_path(key_id)
        atomic_write(path, cert.key_pem, mode=PRIVATE)
        old: str | None = None
        try:
            with self._write() as db:
                row = db.execute(
                    "SELECT key_id FROM managed WHERE name = ?", (cert.name,)
                ).fetchone()
                old = row[0] if row else None
                db.execute(
                    "INSERT OR REPLACE INTO managed (name, fullchain_pem, key_id, not_after,"
                    " issuer, updated_at) VALUES (?,?,?,?,?,?)",
                    (
                        cert.name,
                        cert.fullchain_pem,
                        key_id,
                        _ts(cert.not_after),
                        cert.issuer,
                        _ts(cert.updated_at),
                    ),
                )
        except BaseException:
            with contextlib.suppress(OSError):
                path.unlink()
            raise
        if old and old != key_id:  # the replaced key is no longer referenced
            with contextlib.suppress(OSError):
                self._key_path(old).unlink()

    def load_managed(self, name: str) -> ManagedCertificate | None:
        rows = self._query("SELECT * FROM managed WHERE name = ?", (name,))
        return self._managed(rows[0]) if rows else None

    def _managed(self, row: sqlite3.Row) -> ManagedCertificate | None:
        try:
            key_pem = self.load_key(row["key_id"])
        except NotFound:
            return None  # a lost key means the certificate must be issued again
        return ManagedCertificate(
            name=row["name"],
            fullchain_pem=bytes(row["fullchain_pem"]),
            key_pem=key_pem,
            not_after=_dt(row["not_after"]),
            issuer=row["issuer"],
            updated_at=_dt(row["updated_at"]),
        )

    # -- TLS session tickets ---------------------------------------------------------------
    def ticket_secret(self) -> bytes:
        """``keys/session-tickets.key``: created once (0600, atomically, never replaced) by
        whichever process gets there first; everyone else reads that one."""
        path = self._keys / TICKET_SECRET_NAME
        if not path.exists():
            try:
                atomic_write(path, os.urandom(TICKET_SECRET_SIZE), mode=PRIVATE, overwrite=False)
            except AlreadyExists:
                pass  # another process won the race: its secret is the one
        try:
            secret = path.read_bytes()
        except OSError as exc:
            raise StorageError(f"cannot read ticket secret {path}: {exc.strerror}") from None
        if len(secret) != TICKET_SECRET_SIZE:
            raise StorageError(
                f"ticket secret {path} is damaged ({len(secret)} bytes, expected "
                f"{TICKET_SECRET_SIZE}); delete it to make a new one"
            )
        return secret

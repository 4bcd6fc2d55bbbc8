"""The renewal half of the SQLite store: renewal states, challenge answers, the ACME client key.

It is a mixin for the same reason as ``sqlite_acme``: :class:`SQLiteRenewalMixin` uses the
store's own ``_write``, ``_query`` and key directory, so it shares the connection, the locking
and the error handling.

Challenge answers cross processes: the renewal loop (master) publishes them and any worker may
be the one the CA's validator reaches. ``challenge_answer`` is therefore a single primary-key
read, which in WAL mode never waits for a writer; expired answers are swept by the next
``put_challenge_answer`` rather than by a reader, so the request path never writes.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tlsgate.errors import AlreadyExists, StorageError
from tlsgate.store.base import (
    CertificateWatch,
    ManagedCertificate,
    RenewalState,
    chain_fingerprint,
)
from tlsgate.store.files import PRIVATE, atomic_write
from tlsgate.store.sqlite_columns import dt, ts

__all__ = [
    "CHALLENGE_KINDS",
    "CLUSTER_MIGRATION",
    "MIGRATION",
    "SQLiteRenewalMixin",
    "gcra_wait",
]

#: What workers answer themselves; dns-01 is published in DNS, not here.
CHALLENGE_KINDS = frozenset({"http-01", "tls-alpn-01"})

#: Schema 4. No semicolons inside: the migration runner splits statements on them.
MIGRATION = """
    CREATE TABLE renewal_state (
        name TEXT PRIMARY KEY,             -- the site's first host name, as in managed
        issuer TEXT NOT NULL,
        next_attempt TEXT,
        reason TEXT NOT NULL,
        failures INTEGER NOT NULL DEFAULT 0,
        last_attempt TEXT,
        last_error TEXT,
        last_success TEXT,
        ari_start TEXT,                    -- both or neither
        ari_end TEXT,
        updated_at TEXT
    );
    CREATE TABLE challenge_answer (
        kind TEXT NOT NULL,                -- http-01 or tls-alpn-01
        key TEXT NOT NULL,                 -- the token, or the identifier
        value TEXT NOT NULL,               -- the key authorization
        expires_at TEXT NOT NULL,
        PRIMARY KEY (kind, key)
    ) WITHOUT ROWID;
    CREATE INDEX challenge_answer_expiry ON challenge_answer(expires_at)
"""

#: Schema 5: leases (one node at a time does a job) and ACME nonces shared by processes.
CLUSTER_MIGRATION = """
    CREATE TABLE lease (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        expires TEXT NOT NULL
    );
    CREATE TABLE nonce (
        value TEXT PRIMARY KEY,
        expires TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX nonce_expiry ON nonce(expires)
"""


def gcra_wait(tat: float, now: float, *, rate: float, burst: int) -> float:
    """The generic cell rate algorithm's answer for one request: 0.0 to allow, else the wait.

    A bucket is one number, ``tat``: when it would be full again. A request fits while ``tat``
    is at most ``burst - 1`` intervals ahead of ``now``; allowing it moves ``tat`` one interval
    on. One number per key means one row and one atomic update in a shared store, and the same
    answers as a token bucket of ``burst`` refilled at ``rate``.
    """
    ahead = tat - now - (burst - 1) / rate
    return 0.0 if ahead <= 1e-9 else ahead


#: keys/acme-account-<sha256(directory URL)[:32]>.key
ACCOUNT_KEY_PREFIX = "acme-account-"


class _NoWatch:
    def close(self) -> None:
        pass


def _opt_ts(value: datetime | None) -> str | None:
    return ts(value) if value is not None else None


def _opt_dt(value: str | None) -> datetime | None:
    return dt(value) if value else None


def _renewal_state(row: sqlite3.Row) -> RenewalState:
    start, end = _opt_dt(row["ari_start"]), _opt_dt(row["ari_end"])
    return RenewalState(
        name=row["name"],
        issuer=row["issuer"],
        next_attempt=_opt_dt(row["next_attempt"]),
        reason=row["reason"],
        failures=row["failures"],
        last_attempt=_opt_dt(row["last_attempt"]),
        last_error=row["last_error"],
        last_success=_opt_dt(row["last_success"]),
        ari_window=(start, end) if start is not None and end is not None else None,
        updated_at=_opt_dt(row["updated_at"]),
    )


def _check_kind(kind: str) -> None:
    if kind not in CHALLENGE_KINDS:
        raise StorageError(f"unknown challenge kind {kind!r} (expected http-01 or tls-alpn-01)")


class SQLiteRenewalMixin:
    """Renewal state, challenge answers and the ACME client account key."""

    if TYPE_CHECKING:  # provided by SQLiteStore
        _keys: Path

        def _write(self) -> contextlib.AbstractContextManager[sqlite3.Connection]: ...

        def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]: ...

        def _managed(self, row: sqlite3.Row) -> ManagedCertificate | None: ...

    # -- served certificates -------------------------------------------------------------------
    def list_managed(self) -> Sequence[ManagedCertificate]:
        rows = self._query("SELECT * FROM managed ORDER BY name")
        return [cert for cert in map(self._managed, rows) if cert is not None]

    def managed_fingerprints(self) -> Mapping[str, str]:
        rows = self._query("SELECT name, fullchain_pem FROM managed")
        return {row["name"]: chain_fingerprint(bytes(row["fullchain_pem"])) for row in rows}

    def watch_certificates(self, changed: Callable[[str], None]) -> CertificateWatch:
        """Nothing to listen to: SQLite has no notifications across processes; the caller's
        polling of :meth:`managed_fingerprints` is the whole mechanism."""
        return _NoWatch()

    # -- renewal state -------------------------------------------------------------------------
    def save_renewal_state(self, state: RenewalState) -> None:
        start, end = state.ari_window if state.ari_window is not None else (None, None)
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO renewal_state (name, issuer, next_attempt, reason,"
                " failures, last_attempt, last_error, last_success, ari_start, ari_end,"
                " updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    state.name,
                    state.issuer,
                    _opt_ts(state.next_attempt),
                    state.reason,
                    state.failures,
                    _opt_ts(state.last_attempt),
                    state.last_error,
                    _opt_ts(state.last_success),
                    _opt_ts(start),
                    _opt_ts(end),
                    _opt_ts(state.updated_at),
                ),
            )

    def load_renewal_state(self, name: str) -> RenewalState | None:
        rows = self._query("SELECT * FROM renewal_state WHERE name = ?", (name,))
        return _renewal_state(rows[0]) if rows else None

    def list_renewal_states(self) -> Sequence[RenewalState]:
        return [_renewal_state(r) for r in self._query("SELECT * FROM renewal_state ORDER BY name")]

    # -- challenge answers ---------------------------------------------------------------------
    def put_challenge_answer(
        self, kind: str, key: str, value: str, *, expires_at: datetime
    ) -> None:
        _check_kind(kind)
        with self._write() as db:
            db.execute(
                "DELETE FROM challenge_answer WHERE expires_at <= ?", (ts(datetime.now(UTC)),)
            )
            db.execute(
                "INSERT OR REPLACE INTO challenge_answer (kind, key, value, expires_at)"
                " VALUES (?,?,?,?)",
                (kind, key, value, ts(expires_at)),
            )

    def challenge_answer(self, kind: str, key: str, *, now: datetime) -> str | None:
        rows = self._query(
            "SELECT value FROM challenge_answer WHERE kind = ? AND key = ? AND expires_at > ?",
            (kind, key, ts(now)),
        )
        return str(rows[0][0]) if rows else None

    def delete_challenge_answer(self, kind: str, key: str) -> None:
        with self._write() as db:
            db.execute("DELETE FROM challenge_answer WHERE kind = ? AND key = ?", (kind, key))

    # -- tlsgate's own ACME client account -----------------------------------------------------
    def client_account_key(self, directory: str, create: Callable[[], bytes]) -> bytes:
        """``keys/acme-account-<hash>.key``, made like the ticket secret: 0600, atomically and
        never replaced, so whichever process gets there first decides the key for everyone."""
        digest = hashlib.sha256(directory.encode()).hexdigest()[:32]
        path = self._keys / f"{ACCOUNT_KEY_PREFIX}{digest}.key"
        if not path.exists():
            pem = create()
            if not pem.strip():  # kept forever once written: refuse it before, not after
                raise StorageError("refusing to store an empty ACME account key")
            try:
                atomic_write(path, pem, mode=PRIVATE, overwrite=False)
            except AlreadyExists:
                pass  # another process won the race: its key is the account's
        try:
            pem = path.read_bytes()
        except OSError as exc:
            raise StorageError(f"cannot read the ACME account key {path}: {exc.strerror}") from None
        if not pem.strip():
            raise StorageError(
                f"the ACME account key {path} is empty; delete it to register a new account"
            )
        return pem

    # -- leases (one process at a time does a job) ---------------------------------------------
    def try_lease(self, name: str, holder: str, ttl: timedelta, now: datetime) -> bool:
        """Take or renew ``name`` under the write lock, which makes read-then-write atomic."""
        with self._write() as db:
            row = db.execute("SELECT holder, expires FROM lease WHERE name = ?", (name,)).fetchone()
            if row is not None and row[0] != holder and dt(row[1]) > now:
                return False
            db.execute(
                "INSERT OR REPLACE INTO lease (name, holder, expires) VALUES (?,?,?)",
                (name, holder, ts(now + ttl)),
            )
            return True

    def release_lease(self, name: str, holder: str) -> None:
        with self._write() as db:
            db.execute("DELETE FROM lease WHERE name = ? AND holder = ?", (name, holder))

    def lease_holder(self, name: str, now: datetime) -> str | None:
        rows = self._query(
            "SELECT holder FROM lease WHERE name = ? AND expires > ?", (name, ts(now))
        )
        return str(rows[0][0]) if rows else None

    # -- ACME nonces shared by processes ------------------------------------------------------
    def issue_nonce(self, nonce: str, expires: datetime) -> None:
        try:
            with self._write() as db:
                db.execute("INSERT INTO nonce (value, expires) VALUES (?,?)", (nonce, ts(expires)))
        except sqlite3.IntegrityError:
            raise AlreadyExists("nonce already issued") from None

    def consume_nonce(self, nonce: str, now: datetime) -> bool:
        with self._write() as db:
            row = db.execute("SELECT expires FROM nonce WHERE value = ?", (nonce,)).fetchone()
            if row is None:
                return False
            db.execute("DELETE FROM nonce WHERE value = ?", (nonce,))
            return now < dt(row[0])

    def purge_nonces(self, now: datetime) -> int:
        with self._write() as db:
            return db.execute("DELETE FROM nonce WHERE expires <= ?", (ts(now),)).rowcount

    # -- rate limits shared by processes -----------------------------------------------------
    def take_rate_token(self, key: str, now: float, *, rate: float, burst: int) -> float:
        # GCRA under the write lock: read the bucket's time, decide, write it back.
        with self._write() as db:
            row = db.execute("SELECT tat FROM rate_bucket WHERE key = ?", (key,)).fetchone()
            tat = now if row is None else float(row[0])
            wait = gcra_wait(tat, now, rate=rate, burst=burst)
            if wait == 0.0:
                db.execute(
                    "INSERT INTO rate_bucket (key, tat) VALUES (?, ?)"
                    " ON CONFLICT (key) DO UPDATE SET tat = excluded.tat",
                    (key, max(tat, now) + 1.0 / rate),
                )
            return wait

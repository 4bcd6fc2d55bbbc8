"""The renewal half of the PostgreSQL store: renewal states, challenge answers, the ACME client
key, and the leases and nonces that let several nodes share that work.

It mirrors ``sqlite_renewal`` and uses the store's ``_run``/``_rows``/``_secret``, so it shares
the connection, the reconnection and the error handling. Challenge answers matter more here than
with SQLite: the CA's validator may reach any node, not only the one renewing, and every node
reads the same table. ``challenge_answer`` stays a single primary-key read; expired answers are
swept by the next ``put_challenge_answer``, so the request path never writes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from psycopg import errors as pg_errors
from psycopg.rows import DictRow

from tlsgate.errors import AlreadyExists, StorageError
from tlsgate.store.base import ManagedCertificate, RenewalState
from tlsgate.store.postgres_columns import Cursor, opt_utc
from tlsgate.store.sqlite_renewal import CHALLENGE_KINDS

__all__ = ["PostgresRenewalMixin"]

T = TypeVar("T")

#: The ``secret`` row of tlsgate's ACME account key at a directory: this prefix + the URL.
ACCOUNT_KEY_PREFIX = "acme-account:"


def _renewal_state(row: DictRow) -> RenewalState:
    start, end = opt_utc(row["ari_start"]), opt_utc(row["ari_end"])
    return RenewalState(
        name=row["name"],
        issuer=row["issuer"],
        next_attempt=opt_utc(row["next_attempt"]),
        reason=row["reason"],
        failures=row["failures"],
        last_attempt=opt_utc(row["last_attempt"]),
        last_error=row["last_error"],
        last_success=opt_utc(row["last_success"]),
        ari_window=(start, end) if start is not None and end is not None else None,
        updated_at=opt_utc(row["updated_at"]),
    )


def _check_kind(kind: str) -> None:
    if kind not in CHALLENGE_KINDS:
        raise StorageError(f"unknown challenge kind {kind!r} (expected http-01 or tls-alpn-01)")


class PostgresRenewalMixin:
    """Renewal state, challenge answers and the ACME client account key."""

    if TYPE_CHECKING:  # provided by PostgresStore
        _location: str

        def _run(self, work: Callable[[Cursor], T]) -> T: ...

        def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[DictRow]: ...

        def _managed(self, row: DictRow) -> ManagedCertificate | None: ...

        def _secret(self, name: str, create: Callable[[], bytes]) -> bytes: ...

    # -- served certificates -------------------------------------------------------------------
    def list_managed(self) -> Sequence[ManagedCertificate]:
        rows = self._rows("SELECT * FROM managed ORDER BY name")
        return [cert for cert in map(self._managed, rows) if cert is not None]

    # -- renewal state -------------------------------------------------------------------------
    def save_renewal_state(self, state: RenewalState) -> None:
        start, end = state.ari_window if state.ari_window is not None else (None, None)
        self._run(
            lambda cur: cur.execute(
                "INSERT INTO renewal_state (name, issuer, next_attempt, reason, failures,"
                " last_attempt, last_error, last_success, ari_start, ari_end, updated_at)"
                " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (name) DO UPDATE SET"
                " issuer = EXCLUDED.issuer, next_attempt = EXCLUDED.next_attempt,"
                " reason = EXCLUDED.reason, failures = EXCLUDED.failures,"
                " last_attempt = EXCLUDED.last_attempt, last_error = EXCLUDED.last_error,"
                " last_success = EXCLUDED.last_success, ari_start = EXCLUDED.ari_start,"
                " ari_end = EXCLUDED.ari_end, updated_at = EXCLUDED.updated_at",
                (
                    state.name,
                    state.issuer,
                    state.next_attempt,
                    state.reason,
                    state.failures,
                    state.last_attempt,
                    state.last_error,
                    state.last_success,
                    start,
                    end,
                    state.updated_at,
                ),
            )
        )

    def load_renewal_state(self, name: str) -> RenewalState | None:
        rows = self._rows("SELECT * FROM renewal_state WHERE name = %s", (name,))
        return _renewal_state(rows[0]) if rows else None

    def list_renewal_states(self) -> Sequence[RenewalState]:
        return [_renewal_state(r) for r in self._rows("SELECT * FROM renewal_state ORDER BY name")]

    # -- challenge answers ---------------------------------------------------------------------
    def put_challenge_answer(
        self, kind: str, key: str, value: str, *, expires_at: datetime
    ) -> None:
        _check_kind(kind)

        def put(cur: Cursor) -> None:
            cur.execute("DELETE FROM challenge_answer WHERE expires_at <= %s", (datetime.now(UTC),))
            cur.execute(
                "INSERT INTO challenge_answer (kind, key, value, expires_at)"
                " VALUES (%s,%s,%s,%s) ON CONFLICT (kind, key) DO UPDATE SET"
                " value = EXCLUDED.value, expires_at = EXCLUDED.expires_at",
                (kind, key, value, expires_at),
            )

        self._run(put)

    def challenge_answer(self, kind: str, key: str, *, now: datetime) -> str | None:
        rows = self._rows(
            "SELECT value FROM challenge_answer WHERE kind = %s AND key = %s AND expires_at > %s",
            (kind, key, now),
        )
        return str(rows[0]["value"]) if rows else None

    def delete_challenge_answer(self, kind: str, key: str) -> None:
        self._run(
            lambda cur: cur.execute(
                "DELETE FROM challenge_answer WHERE kind = %s AND key = %s", (kind, key)
            )
        )

    # -- tlsgate's own ACME client account -----------------------------------------------------
    def client_account_key(self, directory: str, create: Callable[[], bytes]) -> bytes:
        """A ``secret`` row made like the ticket secret: whichever node inserts first decides the
        key for everyone, so a cluster registers one account per directory, not one per node."""

        def make() -> bytes:
            pem = create()
            if not pem.strip():  # kept forever once written: refuse it before, not after
                raise StorageError("refusing to store an empty ACME account key")
            return pem

        pem = self._secret(ACCOUNT_KEY_PREFIX + directory, make)
        if not pem.strip():
            raise StorageError(
                f"the ACME account key for {directory} in {self._location} is empty; delete its "
                "row from table secret to register a new account"
            )
        return pem

    # -- leases (one node at a time does a job) ----------------------------------------------
    def try_lease(self, name: str, holder: str, ttl: timedelta, now: datetime) -> bool:
        def take(cur: Cursor) -> bool:
            cur.execute(
                "INSERT INTO lease (name, holder, expires) VALUES (%s, %s, %s)"
                " ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder,"
                " expires = EXCLUDED.expires"
                " WHERE lease.holder = EXCLUDED.holder OR lease.expires <= %s RETURNING holder",
                (name, holder, now + ttl, now),
            )
            return cur.fetchone() is not None

        return self._run(take)

    def release_lease(self, name: str, holder: str) -> None:
        self._run(
            lambda cur: cur.execute(
                "DELETE FROM lease WHERE name = %s AND holder = %s", (name, holder)
            )
        )

    def lease_holder(self, name: str, now: datetime) -> str | None:
        rows = self._rows("SELECT holder FROM lease WHERE name = %s AND expires > %s", (name, now))
        return str(rows[0]["holder"]) if rows else None

    # -- ACME nonces shared by several nodes -------------------------------------------------
    def issue_nonce(self, nonce: str, expires: datetime) -> None:
        def issue(cur: Cursor) -> None:
            try:
                cur.execute("INSERT INTO nonce (value, expires) VALUES (%s, %s)", (nonce, expires))
            except pg_errors.UniqueViolation:
                raise AlreadyExists("nonce already issued") from None

        self._run(issue)

    def consume_nonce(self, nonce: str, now: datetime) -> bool:
        def consume(cur: Cursor) -> bool:
            cur.execute("DELETE FROM nonce WHERE value = %s RETURNING expires", (nonce,))
            row = cur.fetchone()
            return row is not None and now < row["expires"]

        return self._run(consume)

    def purge_nonces(self, now: datetime) -> int:
        def purge(cur: Cursor) -> int:
            cur.execute("DELETE FROM nonce WHERE expires <= %s", (now,))
            return cur.rowcount

        return self._run(purge)

    # -- rate limits shared by several nodes -------------------------------------------------
    def take_rate_token(self, key: str, now: float, *, rate: float, burst: int) -> float:
        # GCRA (see sqlite_renewal.gcra_wait) as one UPSERT: the row lock of ON CONFLICT makes
        # the read, the decision and the write one atomic step, in one round trip.
        params = {
            "key": key,
            "now": float(now),
            "step": 1.0 / rate,
            "ahead": (burst - 1) / rate + 1e-9,
        }

        def take(cur: Cursor) -> float:
            cur.execute(
                "INSERT INTO rate_bucket AS b (key, tat, granted)"
                " VALUES (%(key)s, %(now)s + %(step)s, TRUE)"
                " ON CONFLICT (key) DO UPDATE SET"
                " granted = b.tat - %(now)s <= %(ahead)s,"
                " tat = CASE WHEN b.tat - %(now)s <= %(ahead)s"
                " THEN greatest(b.tat, %(now)s) + %(step)s ELSE b.tat END"
                " RETURNING tat, granted",
                params,
            )
            row = cur.fetchone()
            assert row is not None
            if row["granted"]:
                return 0.0
            return max(float(row["tat"]) - float(now) - (burst - 1) / rate, 1e-9)

        return self._run(take)

"""The PostgreSQL store's schema, as numbered migrations, and how they are applied.

Why this shape:
- ``schema_version`` holds one row per applied migration, so ``max(version)`` is the schema and
  the table itself tells an operator when each step ran.
- Every pending step runs in one transaction that first takes ``pg_advisory_xact_lock`` on a
  fixed key: when several nodes start at once, one migrates and the others wait, then re-read
  the version and find nothing left to do. PostgreSQL's DDL is transactional, so a step that
  fails leaves the schema as it was.
- A store never downgrades: a database whose schema is newer than this code is refused rather
  than written with assumptions that no longer hold.
- Unlike the SQLite store the first migration is the whole contract (CA, ACME, renewal, leases,
  nonces): PostgreSQL support began with it, so there is no older layout to carry.
"""

from __future__ import annotations

from typing import Any

import psycopg

from tlsgate.errors import StorageError

__all__ = ["MIGRATIONS", "MIGRATION_LOCK", "migrate"]

#: The advisory lock key all tlsgate nodes agree on ("tlsgate" in ASCII, as a 64-bit integer).
MIGRATION_LOCK = 0x746C7367617465

MIGRATIONS: tuple[str, ...] = (
    # 1: everything the Store protocol keeps
    """
    CREATE TABLE authority (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        name TEXT NOT NULL,
        root_pem BYTEA NOT NULL,
        intermediate_pem BYTEA NOT NULL,
        root_key_id TEXT NOT NULL,
        intermediate_key_id TEXT NOT NULL,
        crl_url TEXT,
        created_at TIMESTAMPTZ NOT NULL,
        active BOOLEAN NOT NULL DEFAULT TRUE,
        crl_number BIGINT NOT NULL DEFAULT 0
    );
    CREATE UNIQUE INDEX authority_one_active ON authority(active) WHERE active;
    -- PEM as given: already encrypted when the CA has a passphrase
    CREATE TABLE private_key (
        id TEXT PRIMARY KEY,
        pem BYTEA NOT NULL
    );
    CREATE TABLE certificate (
        serial TEXT COLLATE "C" PRIMARY KEY,  -- upper-case hex, even length
        authority_id BIGINT NOT NULL REFERENCES authority(id),
        names TEXT[] NOT NULL,
        usages TEXT[] NOT NULL,
        not_before TIMESTAMPTZ NOT NULL,
        not_after TIMESTAMPTZ NOT NULL,
        issued_at TIMESTAMPTZ NOT NULL,
        pem BYTEA NOT NULL,
        status TEXT NOT NULL DEFAULT 'valid',
        revoked_at TIMESTAMPTZ,
        revocation_reason TEXT,
        requester TEXT NOT NULL DEFAULT 'cli',
        order_id TEXT,
        revoked_by TEXT
    );
    CREATE INDEX certificate_not_after ON certificate(not_after);
    CREATE INDEX certificate_authority ON certificate(authority_id, status);
    CREATE TABLE managed (
        name TEXT PRIMARY KEY,
        fullchain_pem BYTEA NOT NULL,
        key_pem BYTEA NOT NULL,
        not_after TIMESTAMPTZ NOT NULL,
        issuer TEXT NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL
    );
    -- the session-ticket secret and ACME client account keys: key material made once
    CREATE TABLE secret (
        name TEXT PRIMARY KEY,
        value BYTEA NOT NULL
    );
    CREATE TABLE acme_account (
        id TEXT PRIMARY KEY,
        jwk TEXT NOT NULL,
        thumbprint TEXT NOT NULL UNIQUE,
        contact TEXT[] NOT NULL,
        status TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        eab_kid TEXT
    );
    CREATE TABLE acme_order (
        seq BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
        id TEXT PRIMARY KEY,
        account_id TEXT NOT NULL REFERENCES acme_account(id),
        identifiers JSONB NOT NULL,
        status TEXT NOT NULL,
        expires TIMESTAMPTZ NOT NULL,
        not_before TIMESTAMPTZ,
        not_after TIMESTAMPTZ,
        authorization_ids TEXT[] NOT NULL,
        error TEXT,
        certificate_serial TEXT COLLATE "C" REFERENCES certificate(serial),
        replaces TEXT,
        profile TEXT,
        created_at TIMESTAMPTZ NOT NULL
    );
    CREATE INDEX acme_order_account ON acme_order(account_id, created_at, seq);
    ALTER TABLE certificate ADD FOREIGN KEY (order_id) REFERENCES acme_order(id);
    CREATE INDEX certificate_order ON certificate(order_id) WHERE order_id IS NOT NULL;
    CREATE TABLE acme_authorization (
        id TEXT PRIMARY KEY,
        account_id TEXT NOT NULL REFERENCES acme_account(id),
        identifier_type TEXT NOT NULL,
        identifier_value TEXT NOT NULL,
        wildcard BOOLEAN NOT NULL,
        status TEXT NOT NULL,
        expires TIMESTAMPTZ NOT NULL,
        created_at TIMESTAMPTZ NOT NULL
    );
    CREATE INDEX acme_authorization_reuse
        ON acme_authorization(account_id, identifier_type, identifier_value, status, expires);
    CREATE TABLE acme_challenge (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        authorization_id TEXT NOT NULL REFERENCES acme_authorization(id),
        type TEXT NOT NULL,
        token TEXT NOT NULL,
        status TEXT NOT NULL,
        validated_at TIMESTAMPTZ,
        error TEXT
    );
    CREATE INDEX acme_challenge_authorization ON acme_challenge(authorization_id, seq);
    CREATE TABLE renewal_state (
        name TEXT PRIMARY KEY,
        issuer TEXT NOT NULL,
        next_attempt TIMESTAMPTZ,
        reason TEXT NOT NULL,
        failures INTEGER NOT NULL DEFAULT 0,
        last_attempt TIMESTAMPTZ,
        last_error TEXT,
        last_success TIMESTAMPTZ,
        ari_start TIMESTAMPTZ,
        ari_end TIMESTAMPTZ,
        updated_at TIMESTAMPTZ
    );
    CREATE TABLE challenge_answer (
        kind TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        expires_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (kind, key)
    );
    CREATE INDEX challenge_answer_expiry ON challenge_answer(expires_at);
    CREATE TABLE lease (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        expires TIMESTAMPTZ NOT NULL
    );
    CREATE TABLE nonce (
        value TEXT PRIMARY KEY,
        expires TIMESTAMPTZ NOT NULL
    );
    CREATE INDEX nonce_expiry ON nonce(expires)
    """,
    # 2: when orders and challenges became processing (another node finishes what a stopped
    # node left), finalize's CSR, and rate-limit budgets shared by the nodes (GCRA: ``tat`` is
    # when the budget is whole again, in epoch seconds; ``granted`` is the last answer, so one
    # UPSERT both decides and reports)
    """
    ALTER TABLE acme_order ADD COLUMN processing_since TIMESTAMPTZ;
    ALTER TABLE acme_order ADD COLUMN csr BYTEA;
    ALTER TABLE acme_challenge ADD COLUMN processing_since TIMESTAMPTZ;
    CREATE TABLE rate_bucket (
        key TEXT PRIMARY KEY,
        tat DOUBLE PRECISION NOT NULL,
        granted BOOLEAN NOT NULL
    )
    """,
)


def _current(cursor: psycopg.Cursor[Any]) -> int:
    cursor.execute("SELECT to_regclass('schema_version') IS NOT NULL AS present")
    row = cursor.fetchone()
    if row is None or not _first(row):
        return 0
    cursor.execute("SELECT coalesce(max(version), 0) AS version FROM schema_version")
    row = cursor.fetchone()
    return int(_first(row)) if row is not None else 0


def _first(row: Any) -> Any:
    return next(iter(row.values())) if isinstance(row, dict) else row[0]


def migrate(cursor: psycopg.Cursor[Any], where: str) -> None:
    """Bring the schema up to date inside the caller's transaction (which commits it).

    The version is read once without the lock (the common case: nothing to do, no waiting on
    other nodes) and again under it, because another node may have migrated in between.
    """
    latest = len(MIGRATIONS)
    version = _current(cursor)
    if version == latest:
        return
    cursor.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
    cursor.execute(
        "CREATE TABLE IF NOT EXISTS schema_version ("
        " version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
    )
    version = _current(cursor)
    if version > latest:
        raise StorageError(
            f"the PostgreSQL database at {where} has schema {version}, written by a newer "
            f"tlsgate (this one knows up to {latest}); upgrade tlsgate"
        )
    for number in range(version, latest):
        for statement in MIGRATIONS[number].split(";"):
            if statement.strip():
                cursor.execute(statement.encode())
        cursor.execute("INSERT INTO schema_version (version) VALUES (%s)", (number + 1,))

"""What the rest of tlsgate may ask of persistent state: records and ``Store``, no engine.

Callers (the CA, the ACME server, the renewal loop) depend on this module, the roles in
``store.roles`` and the ACME records in ``store.acme`` only, so SQLite (the embedded default) and
PostgreSQL (for clusters) are interchangeable without touching them. Every method is one
transaction: it either happens completely or not at all, and a concurrent process sees the state
before or after, never between.

Private keys pass through here as opaque PEM bytes, already encrypted by the caller when a
passphrase is set; a store never parses or logs them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from tlsgate.store.acme import AcmeStore
from tlsgate.store.roles import CAStore, Coordination, RenewalStore

__all__ = [
    "AuthorityRecord",
    "CertStatus",
    "CertificateRecord",
    "CertificateWatch",
    "ManagedCertificate",
    "NewAuthority",
    "RenewalState",
    "Store",
    "chain_fingerprint",
    "revocation_digest",
]


class CertStatus(StrEnum):
    VALID = "valid"
    REVOKED = "revoked"


@dataclass(frozen=True)
class NewAuthority:
    """A CA about to be stored: certificates, encrypted-or-not key PEMs and settings."""

    name: str
    root_pem: bytes
    intermediate_pem: bytes
    #: key id -> PEM; ids are the keys' SubjectKeyIdentifier in hex, so they never clash.
    keys: Mapping[str, bytes]
    root_key_id: str
    intermediate_key_id: str
    crl_url: str | None
    created_at: datetime


@dataclass(frozen=True)
class AuthorityRecord:
    id: int
    name: str
    root_pem: bytes
    intermediate_pem: bytes
    root_key_id: str
    intermediate_key_id: str
    crl_url: str | None
    created_at: datetime
    active: bool


@dataclass(frozen=True)
class CertificateRecord:
    """One certificate the CA signed; the audit trail a CA must keep."""

    serial: int
    authority_id: int
    names: tuple[str, ...]
    usages: tuple[str, ...]
    not_before: datetime
    not_after: datetime
    issued_at: datetime
    pem: bytes
    status: CertStatus = CertStatus.VALID
    revoked_at: datetime | None = None
    revocation_reason: str | None = None
    #: who asked: "cli", later "acme:<account>"; kept for the audit trail.
    requester: str = "cli"
    #: the ACME order it was issued for (its account is the order's), ``None`` outside ACME.
    order_id: str | None = None
    #: who revoked it ("cli", "acme:<account>", ...), for the audit trail like ``requester``.
    revoked_by: str | None = None


@dataclass(frozen=True)
class ManagedCertificate:
    """A certificate the edge serves and renews itself, with its key (PEM, possibly encrypted)."""

    name: str  # the site's first host name
    fullchain_pem: bytes
    key_pem: bytes
    not_after: datetime
    issuer: str  # "internal" now; "acme:<directory>" later
    updated_at: datetime


@dataclass(frozen=True)
class RenewalState:
    """Where the automatic renewal of one served certificate stands; what `tlsgate status` shows.

    The renewal loop (master process) writes it after every decision and attempt; `tlsgate
    status` reads it from another process, so it is the only place an operator learns why a
    certificate is not being renewed.
    """

    name: str  # the site's first host name (same key as ManagedCertificate)
    issuer: str  # "internal" or "acme:<directory URL>"
    next_attempt: datetime | None  # when the renewal loop will next try (None: not scheduled)
    reason: str  # "lifetime", "ari", "backoff", "emergency", "initial", ...
    failures: int = 0  # consecutive failed attempts
    last_attempt: datetime | None = None
    #: the latest attempt's error; None once an attempt succeeds (`tlsgate status` exits 1
    #: while any is set)
    last_error: str | None = None
    last_success: datetime | None = None
    ari_window: tuple[datetime, datetime] | None = None
    updated_at: datetime | None = None


def chain_fingerprint(fullchain_pem: bytes) -> str:
    """What :meth:`Store.managed_fingerprints` reports for a chain: hex SHA-256 of its PEM bytes
    (PostgreSQL computes the same in SQL, so every backend and the server agree on it)."""
    return hashlib.sha256(fullchain_pem).hexdigest()


def revocation_digest(authority_id: int | None, serials: Iterable[str]) -> str:
    """What :meth:`Store.revocation_mark` reports: hex SHA-256 over the active CA's id and its
    revoked serials (sorted, so the order the database returns them in does not matter)."""
    text = f"{authority_id}:" + ",".join(sorted(serials))
    return hashlib.sha256(text.encode()).hexdigest()


class CertificateWatch(Protocol):
    """What :meth:`Store.watch_certificates` returns: stop it with :meth:`close`."""

    def close(self) -> None: ...


class Store(CAStore, AcmeStore, RenewalStore, Coordination, Protocol):
    """Persistence for the CA, the ACME server, certificate renewal and the cluster: every role of
    :mod:`tlsgate.store.roles` (and :class:`AcmeStore`), which every backend implements.

    Consumers take the roles they use; what needs the whole store, or a connection of its own,
    takes this.
    """

    def reopen(self) -> Store:
        """A new store on the same state with a connection of its own.

        For a forked worker or another thread: a database connection must not cross ``fork()``,
        and :attr:`location` cannot be opened again when it is a URL (it has no password).
        """
        ...

    def close(self) -> None: ...

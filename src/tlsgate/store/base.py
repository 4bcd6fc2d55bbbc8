"""What the rest of tlsgate may ask of persistent state: records and one Protocol, no engine.

Callers (the CA, the ACME server, the renewal loop) depend on this module (and the ACME records in
``store.acme``) only, so SQLite (the embedded default) and PostgreSQL (for clusters) are
interchangeable without touching them. Every method is one transaction: it either happens
completely or not at all, and a concurrent process sees the state before or after, never between.

Private keys pass through here as opaque PEM bytes, already encrypted by the caller when a
passphrase is set; a store never parses or logs them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from tlsgate.store.acme import AcmeStore

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


class Store(AcmeStore, Protocol):
    """Persistence for the CA, the ACME server (:class:`AcmeStore`) and certificate renewal."""

    @property
    def location(self) -> str:
        """Where the state lives, for messages (a path or a redacted URL)."""
        ...

    def reopen(self) -> Store:
        """A new store on the same state with a connection of its own.

        For a forked worker or another thread: a database connection must not cross ``fork()``,
        and :attr:`location` cannot be opened again when it is a URL (it has no password).
        """
        ...

    def close(self) -> None: ...

    # -- certificate authority --------------------------------------------------------------
    def active_authority(self) -> AuthorityRecord | None: ...

    def create_authority(self, new: NewAuthority, *, replace: bool = False) -> AuthorityRecord:
        """Store a CA and make it the active one.

        Raises :class:`~tlsgate.errors.AlreadyExists` if one is active and ``replace`` is false;
        with ``replace`` the old CA is kept (inactive) with its certificate records.
        """
        ...

    def load_key(self, key_id: str) -> bytes:
        """The stored PEM for ``key_id``; :class:`~tlsgate.errors.NotFound` if missing."""
        ...

    # -- issued certificates -----------------------------------------------------------------
    def add_certificate(self, record: CertificateRecord) -> None:
        """Record an issued certificate; AlreadyExists if the serial is taken."""
        ...

    def get_certificate(self, serial: int) -> CertificateRecord: ...

    def list_certificates(
        self,
        *,
        authority_id: int | None = None,
        status: CertStatus | None = None,
        not_after_before: datetime | None = None,
        not_after_after: datetime | None = None,
    ) -> Sequence[CertificateRecord]:
        """Records ordered by ``not_after``, filtered as asked."""
        ...

    def revoke_certificate(
        self, serial: int, *, at: datetime, reason: str, revoked_by: str = "cli"
    ) -> CertificateRecord:
        """Mark revoked (once) by ``revoked_by``; AlreadyExists if it already is, NotFound if
        unknown."""
        ...

    def next_crl_number(self, authority_id: int) -> int:
        """A CRL number greater than any handed out before for this CA (RFC 5280 5.2.3)."""
        ...

    def revocation_mark(self) -> str:
        """A digest of which certificates of the active CA are revoked, in one cheap read
        (:func:`revocation_digest`; an index lookup, not a scan of every certificate).

        How ``serve`` notices a revocation made by another process or node (``tlsgate ca
        revoke``, an ACME ``revokeCert``): it compares this with the mark it last applied and
        regenerates its CRL only when it changed. A new active CA changes it too.
        """
        ...

    # -- certificates the edge serves ------------------------------------------------------
    def save_managed(self, cert: ManagedCertificate) -> None:
        """Replace the certificate and key served for ``cert.name`` (atomically)."""
        ...

    def load_managed(self, name: str) -> ManagedCertificate | None: ...

    def list_managed(self) -> Sequence[ManagedCertificate]:
        """Every served certificate, ordered by name; one whose key is lost is left out, as
        :meth:`load_managed` returns ``None`` for it (it must be issued again)."""
        ...

    def managed_fingerprints(self) -> Mapping[str, str]:
        """Name -> a digest of the stored chain, for every served certificate, in one cheap read.

        How a cluster node (or another process on a shared SQLite store) notices that someone
        else stored a certificate: it compares these with the ones it last saw and loads only
        the names that changed, rather than every certificate every few seconds.
        """
        ...

    def watch_certificates(self, changed: Callable[[str], None]) -> CertificateWatch:
        """Call ``changed(name)`` soon after any process or node stores a managed certificate.

        Best effort and a shortcut only: it is called from another thread, may be called with
        ``""`` (after a reconnection, when notifications may have been missed, and after a
        revocation: look at everything, :meth:`revocation_mark` included) and may miss changes
        altogether, so callers still poll :meth:`managed_fingerprints` now and then.
        PostgreSQL uses LISTEN/NOTIFY; SQLite, whose writers are processes on the same
        machine, relies on polling alone.
        """
        ...

    # -- automatic renewal -------------------------------------------------------------------
    def save_renewal_state(self, state: RenewalState) -> None:
        """Insert or replace the state for ``state.name``."""
        ...

    def load_renewal_state(self, name: str) -> RenewalState | None: ...

    def list_renewal_states(self) -> Sequence[RenewalState]:
        """Every renewal state, ordered by name."""
        ...

    # -- ACME challenge answers (the renewal loop writes, every worker reads) ---------------
    def put_challenge_answer(
        self, kind: str, key: str, value: str, *, expires_at: datetime
    ) -> None:
        """Publish an answer for the workers: ``kind`` "http-01" (``key`` the token) or
        "tls-alpn-01" (``key`` the identifier); ``value`` the key authorization.

        Inserts or replaces, and deletes answers already expired in the same transaction, so
        an attempt that died before cleaning up leaves nothing behind for long.
        """
        ...

    def challenge_answer(self, kind: str, key: str, *, now: datetime) -> str | None:
        """The answer, or ``None`` when missing or expired at ``now``.

        Workers call this on the request path: one indexed read, never a write, so it does not
        queue behind the database's write lock.
        """
        ...

    def delete_challenge_answer(self, kind: str, key: str) -> None:
        """Withdraw an answer; nothing happens if there is none."""
        ...

    # -- tlsgate's own ACME client account ---------------------------------------------------
    def client_account_key(self, directory: str, create: Callable[[], bytes]) -> bytes:
        """The PEM private key of tlsgate's ACME account at ``directory`` (a directory URL).

        Made with ``create()`` on first use and kept like the other private keys; concurrent
        first callers all get the same key, so several processes never register several
        accounts. Never logged.
        """
        ...

    # -- TLS session tickets ---------------------------------------------------------------
    def ticket_secret(self) -> bytes:
        """The 32 random bytes every worker (and node) derives session-ticket keys from.

        Created on first use; concurrent first callers all get the same value. It is key
        material: kept like private keys and never logged.
        """
        ...

    # -- leases: one node at a time does a job (renewing a certificate, ...) ----------------
    def try_lease(self, name: str, holder: str, ttl: timedelta, now: datetime) -> bool:
        """Take or renew the lease ``name`` for ``holder`` until ``now + ttl``.

        True if it is free, expired at ``now``, or already ``holder``'s; False while another
        holder has it. Atomic across processes and nodes, so of several callers exactly one
        holds it. A holder re-checks the state it is about to change after taking it.
        """
        ...

    def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up early; nothing happens unless ``holder`` has it."""
        ...

    def lease_holder(self, name: str, now: datetime) -> str | None:
        """Who holds ``name`` at ``now`` (``None``: free or expired)."""
        ...

    # -- ACME anti-replay nonces shared by several processes or nodes ----------------------
    def issue_nonce(self, nonce: str, expires: datetime) -> None:
        """Record a nonce handed out; AlreadyExists if it was already issued."""
        ...

    def consume_nonce(self, nonce: str, now: datetime) -> bool:
        """True exactly once for an issued nonce unexpired at ``now``; it is used up either way,
        atomically, so two requests replaying the same nonce never both pass."""
        ...

    def purge_nonces(self, now: datetime) -> int:
        """Delete nonces expired at ``now``; how many there were."""
        ...

    # -- rate limits shared by several processes or nodes ----------------------------------
    def take_rate_token(self, key: str, now: float, *, rate: float, burst: int) -> float:
        """Spend one request of ``key``'s budget: ``burst`` at once, then ``rate`` per second.

        0.0 when allowed, else the seconds until a request would be. Atomic across processes
        and nodes, so N nodes together allow what one would, not N times as much. ``now`` is
        seconds since the epoch (the caller's clock, so tests can move time).
        """
        ...

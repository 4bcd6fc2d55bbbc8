"""The store by role: what the CA, the renewal loop and the cluster each ask of persistent state.

Small interfaces, as certmagic keeps its storage and its locker apart: a consumer is typed
against the roles it uses (the CA against :class:`CAStore`, ``tlsgate status`` against
:class:`RenewalStore`, ...), so reading its signature tells which state it can touch, and a
test double implements one role, not all of them. The ACME server's role is
:class:`~tlsgate.store.acme.AcmeStore`. :class:`~tlsgate.store.base.Store` is their union,
which every backend (SQLite, PostgreSQL) implements; ``tests/store/test_roles.py`` and mypy hold
them to it. Python has no intersection types, so a consumer of several roles takes one of the
named unions at the end of this module. Each method is one transaction, as ``base`` explains.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from tlsgate.store.acme import AcmeStore

if TYPE_CHECKING:  # base imports this module for Store; the records are only annotations here
    from tlsgate.store.base import (
        AuthorityRecord,
        CertificateRecord,
        CertificateWatch,
        CertStatus,
        ManagedCertificate,
        NewAuthority,
        RenewalState,
    )

__all__ = [
    "AcmeServerStore",
    "CAStore",
    "ChangeFeed",
    "Coordination",
    "IssuingStore",
    "LeasedRenewalStore",
    "Leases",
    "Located",
    "NonceTable",
    "RateTokens",
    "RenewalStore",
    "ServedCertificateStore",
    "TicketSecret",
]


class Located(Protocol):
    """Every role says where its state lives, for messages."""

    @property
    def location(self) -> str:
        """Where the state lives, for messages (a path or a redacted URL)."""
        ...


class CAStore(Located, Protocol):
    """The certificate authority's state: its keys and certificates, and what it signed."""

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


class RenewalStore(Located, Protocol):
    """Certificates the edge serves and renews itself, where their renewal stands, the answers
    to ACME challenges the renewal loop publishes for the workers, and its ACME account key."""

    # -- certificates the edge serves ------------------------------------------------------
    def save_managed(self, cert: ManagedCertificate) -> None:
        """Replace the certificate and key served for ``cert.name`` (atomically)."""
        ...

    def load_managed(self, name: str) -> ManagedCertificate | None: ...

    def list_managed(self) -> Sequence[ManagedCertificate]:
        """Every served certificate, ordered by name; one whose key is lost is left out, as
        :meth:`load_managed` returns ``None`` for it (it must be issued again)."""
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


class ChangeFeed(Located, Protocol):
    """How a process or node notices what another stored: cheap digests to poll, and a
    best-effort notification to poll sooner."""

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

    def revocation_mark(self) -> str:
        """A digest of which certificates of the active CA are revoked, in one cheap read
        (:func:`revocation_digest`; an index lookup, not a scan of every certificate).

        How ``serve`` notices a revocation made by another process or node (``tlsgate ca
        revoke``, an ACME ``revokeCert``): it compares this with the mark it last applied and
        regenerates its CRL only when it changed. A new active CA changes it too.
        """
        ...


class TicketSecret(Located, Protocol):
    # -- TLS session tickets ---------------------------------------------------------------
    def ticket_secret(self) -> bytes:
        """The 32 random bytes every worker (and node) derives session-ticket keys from.

        Created on first use; concurrent first callers all get the same value. It is key
        material: kept like private keys and never logged.
        """
        ...


class Leases(Located, Protocol):
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


class NonceTable(Located, Protocol):
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


class RateTokens(Located, Protocol):
    # -- rate limits shared by several processes or nodes ----------------------------------
    def take_rate_token(self, key: str, now: float, *, rate: float, burst: int) -> float:
        """Spend one request of ``key``'s budget: ``burst`` at once, then ``rate`` per second.

        0.0 when allowed, else the seconds until a request would be. Atomic across processes
        and nodes, so N nodes together allow what one would, not N times as much. ``now`` is
        seconds since the epoch (the caller's clock, so tests can move time).
        """
        ...


class Coordination(ChangeFeed, TicketSecret, Leases, NonceTable, RateTokens, Protocol):
    """What several processes or nodes sharing one store agree through: change notices and
    digests, the session-ticket secret, leases, ACME nonces and rate-limit tokens."""


class LeasedRenewalStore(RenewalStore, Leases, Protocol):
    """What renewing takes: the served certificates and their renewal state, and a lease per
    certificate so that of several processes or nodes one renews it (certmagic's storage plus
    its locker)."""


class AcmeServerStore(AcmeStore, CAStore, Protocol):
    """What the ACME server takes: its accounts, orders and authorizations, and the CA's records
    of the certificates those orders were issued (nonces and rate tokens come in as their own
    objects, see ``acme.service``)."""


class IssuingStore(CAStore, RenewalStore, Protocol):
    """A store whose own CA issues the certificates it keeps: what a client identity takes (its
    certificate is issued by the internal CA and kept beside the served ones)."""


class ServedCertificateStore(IssuingStore, Leases, Protocol):
    """What keeping certificates renewed takes, with the internal CA as one issuer: the edge's
    certificate manager and a client identity's renewer. Leases keep two nodes (or processes)
    from renewing one certificate at once."""

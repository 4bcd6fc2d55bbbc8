"""A service's client identity, from the internal CA in a state directory, kept fresh.

A client certificate is an X.509-SVID (exactly one URI name, the SPIFFE ID) or, for services
named by DNS, a certificate for one DNS name; client use only, never server use. It is stored
with its key as a managed certificate named ``client:<id>`` (so ``tlsgate status`` shows it next
to the sites ``serve`` renews) and renewed by the same loop as ``serve``'s certificates
(:class:`~tlsgate.renewal.renewer.Renewer`), with the internal issuer in its client mode.

Short lifetimes are the point: a stolen key is worth a day at most (the default), or a minute in
the tests. So a certificate is reused across restarts while it has life left, and a new one is
issued the moment the stored one cannot be used (expired, nearly so, from another CA, or longer
lived than now asked for).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from tlsgate.ca import CertificateAuthority, passphrase_from_env
from tlsgate.errors import InvalidIdentity, NotInitialized
from tlsgate.pki.names import parse_dns_name, parse_spiffe_id
from tlsgate.pki.pem import load_certificates
from tlsgate.pki.profiles import CLOCK_SKEW, MIN_LEAF_LIFETIME
from tlsgate.renewal.issuers import InternalIssuer
from tlsgate.renewal.renewer import Managed, Renewer, stored_leaf
from tlsgate.store.base import ManagedCertificate
from tlsgate.store.roles import CAStore, IssuingStore, ServedCertificateStore

__all__ = [
    "CLIENT_ISSUER",
    "DEFAULT_LIFETIME",
    "ClientCertificate",
    "canonical_identity",
    "check_lifetime",
    "client_renewer",
    "current_certificate",
    "managed_name",
]

#: A day: long enough to ride out a CA outage of a few hours, short enough that a leaked key
#: is soon worthless (SPIRE's default X.509-SVID lifetime is an hour; ours renews at 2/3).
DEFAULT_LIFETIME = timedelta(hours=24)
#: What the store records as the issuer of client identities (InternalIssuer(client=True).name).
CLIENT_ISSUER = "internal-client"
#: A stored certificate with less than this share of its life left is replaced before use.
_MIN_LEFT = 0.1


def canonical_identity(text: str) -> str:
    """A SPIFFE ID (``spiffe://trust.domain/path``) or a DNS name, in canonical form.

    Exactly one name: an X.509-SVID carries exactly one URI, and a client is one workload.
    """
    value = text.strip()
    if value.lower().startswith("spiffe://"):
        return parse_spiffe_id(value)
    if "://" in value:
        raise InvalidIdentity(
            f"{text!r}: a client identity is a SPIFFE ID (spiffe://...) or a DNS name"
        )
    return parse_dns_name(value, allow_wildcard=False)


def managed_name(identity: str) -> str:
    """The store's key for an identity's certificate: ``client:`` never collides with a site."""
    return f"client:{canonical_identity(identity)}"


def check_lifetime(lifetime: timedelta) -> timedelta:
    if lifetime < MIN_LEAF_LIFETIME:
        raise InvalidIdentity("a client certificate must live at least one minute")
    return lifetime


@dataclass(frozen=True)
class ClientCertificate:
    """The certificate an identity presents, with its key, as the store holds it."""

    identity: str
    record: ManagedCertificate
    leaf: x509.Certificate

    @property
    def serial(self) -> int:
        return self.leaf.serial_number

    @property
    def not_after(self) -> datetime:
        return self.leaf.not_valid_after_utc

    @classmethod
    def of(cls, identity: str, record: ManagedCertificate) -> ClientCertificate:
        leaf = load_certificates(record.fullchain_pem, source=f"the certificate of {identity}")[0]
        return cls(identity, record, leaf)


def _ca(store: CAStore) -> CertificateAuthority:
    """The CA in the state; a client never creates one (nobody would trust its identities)."""
    try:
        return CertificateAuthority.load(store, passphrase_from_env())
    except NotInitialized:
        raise NotInitialized(
            f"no certificate authority in {store.location}: client identities come from the CA "
            "the servers trust; use the state directory `tlsgate serve` or `tlsgate ca init` "
            "made (--state DIR or TLSGATE_STATE)"
        ) from None


def _reason_to_replace(
    cert: ClientCertificate, ca: CertificateAuthority, lifetime: timedelta, now: datetime
) -> str:
    """Why the stored certificate must not be presented any more ("" when it may)."""
    leaf = cert.leaf
    if cert.record.issuer != CLIENT_ISSUER:
        return "not a client certificate"
    if leaf.issuer != ca.intermediate.subject:
        return "issued by another CA"
    try:
        leaf.verify_directly_issued_by(ca.intermediate)
    except (ValueError, TypeError, InvalidSignature):
        return "issued by another CA"
    life = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    if now >= leaf.not_valid_after_utc - max(timedelta(seconds=10), life * _MIN_LEFT):
        return "expired or about to"
    if life - CLOCK_SKEW > lifetime + MIN_LEAF_LIFETIME:
        return "lives longer than asked for"
    return ""


def current_certificate(
    store: IssuingStore,
    identity: str,
    *,
    lifetime: timedelta = DEFAULT_LIFETIME,
    now: datetime | None = None,
) -> ClientCertificate:
    """The identity's stored certificate if it can still be presented, else a new one (stored).

    Synchronous and local (the CA is in the store), so a client has its certificate before its
    first connection; the renewal loop takes over from there.
    """
    identity = canonical_identity(identity)
    check_lifetime(lifetime)
    now = now or datetime.now(UTC)
    name = managed_name(identity)
    ca = _ca(store)
    stored = store.load_managed(name)
    leaf, why = stored_leaf(stored, (identity,))
    if stored is not None and leaf is not None and not why:
        cert = ClientCertificate(identity, stored, leaf)
        if not _reason_to_replace(cert, ca, lifetime, now):
            return cert
    issuer = InternalIssuer(store, lifetime=lifetime, client=True)
    issued = issuer.issue_now((identity,), now=now)
    record = ManagedCertificate(
        name=name,
        fullchain_pem=issued.fullchain_pem,
        key_pem=issued.key_pem,
        not_after=issued.leaf.not_valid_after_utc,
        issuer=issuer.name,
        updated_at=now,
    )
    store.save_managed(record)
    return ClientCertificate(identity, record, issued.leaf)


def client_renewer(
    store: ServedCertificateStore,
    identity: str,
    *,
    lifetime: timedelta = DEFAULT_LIFETIME,
    on_renewed: Callable[[ClientCertificate], None],
) -> Renewer:
    """The renewal loop for one identity: ``serve``'s loop, with the client issuer.

    ``on_renewed`` gets each new certificate once it is stored (in the loop's thread).
    """
    identity = canonical_identity(identity)
    _ca(store)  # refuse now, not in the loop's first attempt
    issuer = InternalIssuer(store, lifetime=check_lifetime(lifetime), client=True)

    def renewed(record: ManagedCertificate) -> None:
        on_renewed(ClientCertificate.of(identity, record))

    managed = Managed(name=managed_name(identity), names=(identity,), issuer=issuer)
    return Renewer(store, [managed], renewed)

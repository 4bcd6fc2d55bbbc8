"""The certificate authority: the chain of trust from the seed, made operational.

A root (trusted by definition, its key used only to sign the intermediate and the root CRL), an
intermediate that signs every leaf, and a store that remembers each certificate signed so it can
be listed, revoked and put on a CRL. Time is a parameter everywhere (``now``) so that issuance and
revocation are deterministic under test; the CLI passes the wall clock.

Order of operations on issuance: validate everything, sign, *record*, and only then hand the
certificate out. A certificate the CA signed but did not record would be impossible to revoke.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509

from tlsgate.errors import (
    AlreadyExists,
    ConfigError,
    NotInitialized,
    PolicyDenied,
    authority_exists,
)
from tlsgate.pki.csr import CheckedCSR
from tlsgate.pki.info import CertInfo
from tlsgate.pki.keys import (
    DEFAULT_KEY_TYPE,
    KeyType,
    PrivateKey,
    generate_key,
    load_private_key,
    private_key_pem,
)
from tlsgate.pki.names import NameConstraints, display_name
from tlsgate.pki.pem import certificate_pem, load_certificate
from tlsgate.pki.profiles import (
    DEFAULT_INTERMEDIATE_LIFETIME,
    DEFAULT_ROOT_LIFETIME,
    LeafProfile,
    build_intermediate,
    build_leaf,
    build_root,
)
from tlsgate.pki.revocation import REASONS, RevokedEntry, build_crl
from tlsgate.pki.serial import random_serial
from tlsgate.store.base import CertificateRecord, CertStatus, NewAuthority
from tlsgate.store.roles import CAStore

__all__ = ["PASSPHRASE_ENV", "CertificateAuthority", "IssuedCertificate", "passphrase_from_env"]

PASSPHRASE_ENV = "TLSGATE_CA_PASSPHRASE"


def passphrase_from_env() -> bytes | None:
    value = os.environ.get(PASSPHRASE_ENV)
    return value.encode() if value else None


def _key_id(cert: x509.Certificate) -> str:
    return x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest.hex()


@dataclass(frozen=True)
class IssuedCertificate:
    """A signed leaf with what a server needs to present it."""

    certificate: x509.Certificate
    intermediate: x509.Certificate
    root: x509.Certificate
    #: Set when the CA generated the key; ``None`` when the requester kept it (CSR issuance).
    private_key: PrivateKey | None

    @property
    def info(self) -> CertInfo:
        return CertInfo.of(self.certificate)

    @property
    def cert_pem(self) -> bytes:
        return certificate_pem(self.certificate)

    @property
    def chain_pem(self) -> bytes:
        """The intermediate(s) a server must send after its certificate (not the root)."""
        return certificate_pem(self.intermediate)

    @property
    def fullchain_pem(self) -> bytes:
        return self.cert_pem + self.chain_pem


class CertificateAuthority:
    """An initialised CA bound to a store. Create with :meth:`init`, reopen with :meth:`load`."""

    def __init__(self, store: CAStore, passphrase: bytes | None = None) -> None:
        record = store.active_authority()
        if record is None:
            raise NotInitialized(
                f"no certificate authority in {store.location}; run 'tlsgate ca init' first"
            )
        self.store = store
        self.record = record
        self.root = load_certificate(record.root_pem, source="stored root certificate")
        self.intermediate = load_certificate(
            record.intermediate_pem, source="stored intermediate certificate"
        )
        self.constraints = NameConstraints.from_certificate(self.intermediate)
        self._passphrase = passphrase
        self._intermediate_key: PrivateKey | None = None

    @classmethod
    def load(cls, store: CAStore, passphrase: bytes | None = None) -> CertificateAuthority:
        return cls(store, passphrase)

    @classmethod
    def init(
        cls,
        store: CAStore,
        *,
        now: datetime,
        name: str = "tlsgate",
        key_type: KeyType = DEFAULT_KEY_TYPE,
        constraints: NameConstraints | None = None,
        root_lifetime: timedelta = DEFAULT_ROOT_LIFETIME,
        intermediate_lifetime: timedelta = DEFAULT_INTERMEDIATE_LIFETIME,
        crl_url: str | None = None,
        passphrase: bytes | None = None,
        force: bool = False,
    ) -> CertificateAuthority:
        """Create root and intermediate and store them; refuses to replace a CA unless ``force``."""
        if store.active_authority() is not None and not force:
            # Checked again inside the store's transaction; this early exit just saves key
            # generation when the answer is already known.
            raise authority_exists(str(store.location))
        if not name.strip() or len(f"{name} Intermediate CA") > 64:
            raise ConfigError(
                "the CA name must be 1 to 48 characters (it goes into 64-character fields)"
            )
        if intermediate_lifetime > root_lifetime:
            raise PolicyDenied("the intermediate cannot outlive the root; shorten --int-days")
        root_key = generate_key(key_type)
        root = build_root(
            root_key, f"{name} Root CA", now=now, lifetime=root_lifetime, organization=name
        )
        int_key = generate_key(key_type)
        intermediate = build_intermediate(
            root,
            root_key,
            int_key.public_key(),
            f"{name} Intermediate CA",
            now=now,
            lifetime=intermediate_lifetime,
            constraints=constraints,
            organization=name,
        )
        root_id, int_id = _key_id(root), _key_id(intermediate)
        store.create_authority(
            NewAuthority(
                name=name,
                root_pem=certificate_pem(root),
                intermediate_pem=certificate_pem(intermediate),
                keys={
                    root_id: private_key_pem(root_key, passphrase),
                    int_id: private_key_pem(int_key, passphrase),
                },
                root_key_id=root_id,
                intermediate_key_id=int_id,
                crl_url=crl_url,
                created_at=now,
            ),
            replace=force,
        )
        ca = cls(store, passphrase)
        ca._intermediate_key = int_key
        return ca

    # -- keys ----------------------------------------------------------------------------------
    def _load_key(self, key_id: str, what: str) -> PrivateKey:
        pem = self.store.load_key(key_id)
        return load_private_key(pem, self._passphrase, source=f"{what} private key")

    @property
    def intermediate_key(self) -> PrivateKey:
        if self._intermediate_key is None:
            self._intermediate_key = self._load_key(self.record.intermediate_key_id, "intermediate")
        return self._intermediate_key

    # -- issuance ------------------------------------------------------------------------------
    def issue(
        self,
        names: Sequence[x509.GeneralName],
        *,
        now: datetime,
        profile: LeafProfile | None = None,
        key_type: KeyType = DEFAULT_KEY_TYPE,
        csr: CheckedCSR | None = None,
        requester: str = "cli",
        order_id: str | None = None,
    ) -> IssuedCertificate:
        """Sign a leaf for ``names``: for the CSR's key if given, else for a new key we generate.

        ``requester`` and ``order_id`` (the ACME order, if any) go into the audit record.
        """
        profile = profile or LeafProfile()
        private_key = None if csr is not None else generate_key(key_type)
        public_key = csr.public_key if csr is not None else private_key.public_key()  # type: ignore[union-attr]
        issuer_key = self.intermediate_key
        for _attempt in range(3):
            cert = build_leaf(
                self.intermediate,
                issuer_key,
                public_key,
                names,
                profile,
                now=now,
                serial=random_serial(),
                crl_url=self.record.crl_url,
                constraints=self.constraints,
            )
            record = CertificateRecord(
                serial=cert.serial_number,
                authority_id=self.record.id,
                names=tuple(display_name(n) for n in names),
                usages=tuple(profile.usages()),
                not_before=cert.not_valid_before_utc,
                not_after=cert.not_valid_after_utc,
                issued_at=now,
                pem=certificate_pem(cert),
                requester=requester,
                order_id=order_id,
            )
            try:
                self.store.add_certificate(record)
            except AlreadyExists:  # a serial clash: 2^-64 odds, but never issue a duplicate
                continue
            return IssuedCertificate(cert, self.intermediate, self.root, private_key)
        raise AlreadyExists("could not allocate a unique serial number")  # pragma: no cover

    # -- revocation ----------------------------------------------------------------------------
    def revoke(
        self,
        serial: int,
        *,
        now: datetime,
        reason: x509.ReasonFlags,
        revoked_by: str = "cli",
    ) -> CertificateRecord:
        """Revoke ``serial``, recording who asked (``revoked_by``) for the audit trail."""
        reason_name = next(k for k, v in REASONS.items() if v is reason)
        return self.store.revoke_certificate(
            serial, at=now, reason=reason_name, revoked_by=revoked_by
        )

    def crl(self, *, now: datetime) -> x509.CertificateRevocationList:
        """The intermediate's CRL: every revoked certificate it issued that has not expired yet.

        Expired entries are dropped (RFC 5280 3.3 allows it) so the list does not grow forever.
        """
        records = self.store.list_certificates(
            authority_id=self.record.id, status=CertStatus.REVOKED, not_after_after=now
        )
        entries = [
            RevokedEntry(
                r.serial,
                r.revoked_at or now,
                REASONS.get(r.revocation_reason or "", x509.ReasonFlags.unspecified),
            )
            for r in records
        ]
        number = self.store.next_crl_number(self.record.id)
        return build_crl(self.intermediate, self.intermediate_key, entries, number=number, now=now)

    def root_crl(self, *, now: datetime) -> x509.CertificateRevocationList:
        """The root's (empty) CRL, for verifiers that check every link (``-crl_check_all``)."""
        root_key = self._load_key(self.record.root_key_id, "root")
        number = self.store.next_crl_number(self.record.id)
        return build_crl(self.root, root_key, [], number=number, now=now)

    def certificates(self) -> Sequence[CertificateRecord]:
        return self.store.list_certificates()

    def describe(self) -> dict[str, object]:
        return {
            "name": self.record.name,
            "root": CertInfo.of(self.root).to_json(),
            "intermediate": CertInfo.of(self.intermediate).to_json(),
            "name_constraints": self.constraints.describe(),
            "crl_url": self.record.crl_url,
            "state": self.store.location,
        }

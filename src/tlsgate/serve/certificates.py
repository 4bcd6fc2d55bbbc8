"""The certificates ``serve`` presents, per site: from files, from the store, or a placeholder.

Embedded default: no configuration at all. If the state has no CA yet, one is created (so
``tlsgate ca export-root`` right after gives the root to trust); each site's certificate is
issued from it before the first handshake, stored with its key, and reused on the next start.

Sites with ``issuer = "acme"`` use the certificate in the store while it is valid, even if its
renewal is due (the renewer replaces it in the background). Until a first one arrives, they
present a self-signed placeholder, because the listeners must be up for the CA to validate.

Renewal itself (when, retries, ARI) is :mod:`tlsgate.renewal`; this module loads what is
current and re-reads certificate files, so a renewal done outside tlsgate is served too.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509

from tlsgate.ca import CertificateAuthority
from tlsgate.config import AcmeSettings, SiteConfig
from tlsgate.errors import ConfigError, TlsgateError
from tlsgate.pki.keys import load_private_key
from tlsgate.pki.names import with_loopback
from tlsgate.pki.pem import load_certificates
from tlsgate.pki.placeholder import placeholder_certificate
from tlsgate.renewal.issuers import AcmeIssuer, InternalIssuer, Issuer
from tlsgate.renewal.renewer import LEASE_TTL, Managed, holder_id, stored_leaf
from tlsgate.store.base import ManagedCertificate
from tlsgate.store.roles import ServedCertificateStore

__all__ = [
    "FILE_CHECK",
    "CertificateManager",
    "SiteCertificate",
    "certified_names",
    "read_site_files",
]

log = logging.getLogger("tlsgate.certificates")

#: How often certificate files are re-read: a renewal done outside tlsgate (certbot's deploy
#: hook, a secrets manager) is served within this, with no signal needed.
FILE_CHECK = timedelta(seconds=60)
PLACEHOLDER = "placeholder"


@dataclass(frozen=True)
class SiteCertificate:
    site: SiteConfig
    fullchain_pem: bytes
    key_pem: bytes
    leaf: x509.Certificate
    source: str  # "internal", "acme:<directory>", "placeholder" or the certificate file's path

    @property
    def name(self) -> str:
        return self.site.hosts[0]


def certified_names(site: SiteConfig) -> tuple[str, ...]:
    """What a site's certificate covers. The internal CA adds 127.0.0.1 and ::1 to localhost
    (the browsers' rule); a public CA is asked for exactly the configured names."""
    if site.issuer == "acme":
        return site.hosts
    return tuple(with_loopback(site.hosts))


def _lease(site: SiteConfig) -> str:
    """The renewer's lease name for a site: first issuance and renewals exclude each other."""
    return f"renew:{site.hosts[0]}"


def read_site_files(site: SiteConfig) -> SiteCertificate:
    """A site's certificate and key files, read and checked to belong together."""
    assert site.tls is not None
    try:
        chain_pem = Path(site.tls.cert).read_bytes()
        key_pem = Path(site.tls.key).read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"site {site.hosts[0]}: cannot read {exc.filename}: {exc.strerror}"
        ) from None
    certs = load_certificates(chain_pem, source=str(site.tls.cert))
    key = load_private_key(key_pem, source=str(site.tls.key))
    if certs[0].public_key() != key.public_key():
        raise ConfigError(f"site {site.hosts[0]}: {site.tls.key} is not the key of {site.tls.cert}")
    return SiteCertificate(site, chain_pem, key_pem, certs[0], str(site.tls.cert))


class CertificateManager:
    def __init__(self, store: ServedCertificateStore, sites: tuple[SiteConfig, ...]) -> None:
        self.store = store
        self.sites = sites
        self.current: dict[str, SiteCertificate] = {}
        self.internal = InternalIssuer(store)
        self._acme: dict[AcmeSettings, AcmeIssuer] = {}
        self.file_errors: dict[str, str] = {}
        #: This process in renewal leases: the renewer takes over the first issuance's lease.
        self.holder = holder_id()

    def ca(self, now: datetime) -> CertificateAuthority:
        return self.internal.ca(now)

    def issuer(self, site: SiteConfig) -> Issuer:
        if site.acme is None:
            return self.internal
        issuer = self._acme.get(site.acme)
        if issuer is None:  # one account and connection pool per CA settings
            issuer = self._acme[site.acme] = AcmeIssuer(site.acme, self.store)
        return issuer

    def managed(self) -> list[Managed]:
        """What the renewer keeps fresh: every site whose certificate is not a file pair."""
        return [
            Managed(site.hosts[0], certified_names(site), self.issuer(site))
            for site in self.sites
            if site.tls is None
        ]

    # -- loading -------------------------------------------------------------------------------
    def from_files(self, site: SiteConfig) -> SiteCertificate:
        return read_site_files(site)

    def from_store(self, site: SiteConfig, now: datetime) -> SiteCertificate | None:
        """The stored certificate while it is valid and for the site's names, else None.

        Due or from another issuer is fine: serving it beats a placeholder while the renewer
        replaces it."""
        stored = self.store.load_managed(site.hosts[0])
        return self._usable(site, stored, now) if stored is not None else None

    def accept(self, record: ManagedCertificate, now: datetime) -> SiteCertificate | None:
        """A stored certificate (this node's renewal or another node's) if it may replace what
        a site serves: the site's own, renewed here, currently valid and covering its names.
        A cluster node whose configuration lags behind its peers' never serves a certificate
        for names it was not told about."""
        for site in self.sites:
            if site.tls is None and site.hosts[0] == record.name:
                return self._usable(site, record, now)
        return None

    @staticmethod
    def _usable(
        site: SiteConfig, stored: ManagedCertificate, now: datetime
    ) -> SiteCertificate | None:
        leaf, why = stored_leaf(stored, certified_names(site))
        if leaf is None or why:
            return None
        if not leaf.not_valid_before_utc <= now < leaf.not_valid_after_utc:
            return None
        return SiteCertificate(site, stored.fullchain_pem, stored.key_pem, leaf, stored.issuer)

    def _first(self, site: SiteConfig, now: datetime) -> SiteCertificate:
        """A site with nothing stored: the internal CA issues at once (no network involved);
        an ACME site starts on a placeholder until the renewer's first order completes."""
        if site.acme is None:
            peer = self._await_peer(site, now)
            if peer is not None:
                return peer
            names = certified_names(site)
            try:
                issued = self.internal.issue_now(names, now=now)
                self.store.save_managed(
                    ManagedCertificate(
                        name=site.hosts[0],
                        fullchain_pem=issued.fullchain_pem,
                        key_pem=issued.key_pem,
                        not_after=issued.leaf.not_valid_after_utc,
                        issuer=self.internal.name,
                        updated_at=now,
                    )
                )
            finally:
                self.store.release_lease(_lease(site), self.holder)
            log.info(
                "issued certificate for %s (serial %X, until %s)",
                ", ".join(site.hosts),
                issued.leaf.serial_number,
                issued.leaf.not_valid_after_utc.isoformat(),
            )
            return SiteCertificate(
                site, issued.fullchain_pem, issued.key_pem, issued.leaf, self.internal.name
            )
        cert_pem, key_pem = placeholder_certificate(site.hosts, now=now)
        leaf = load_certificates(cert_pem)[0]
        log.warning(
            "site %s: no certificate yet; serving a self-signed placeholder until %s issues one",
            site.hosts[0],
            site.acme.directory,
        )
        return SiteCertificate(site, cert_pem, key_pem, leaf, PLACEHOLDER)

    def _await_peer(self, site: SiteConfig, now: datetime) -> SiteCertificate | None:
        """Cluster nodes starting together issue a site's first internal certificate once.

        The node that takes the site's renewal lease issues (None: "issue now, under the
        lease"), after looking once more, since a peer may have stored one meanwhile; the others
        wait, at most a lease lifetime (the time a crashed issuer would hold it), for its
        certificate to appear in the shared store. On a single node the lease is always free.
        """
        lease = _lease(site)
        deadline = time.monotonic() + LEASE_TTL.total_seconds() + 5
        waiting = False
        while True:
            if self.store.try_lease(lease, self.holder, LEASE_TTL, datetime.now(UTC)):
                stored = self.from_store(site, now)
                if stored is not None:
                    self.store.release_lease(lease, self.holder)
                return stored
            stored = self.from_store(site, now)
            if stored is not None or time.monotonic() > deadline:
                return stored  # a peer's; or None: the holder is stuck, issue without it
            if not waiting:
                log.info("site %s: another node is issuing its certificate; waiting", lease[6:])
                waiting = True
            time.sleep(0.2)

    def load_all(self, now: datetime) -> dict[str, SiteCertificate]:
        """Every site's certificate for start-up: fail loudly, since nothing can be served yet."""
        for site in self.sites:
            if site.tls is not None:
                cert = self.from_files(site)
            else:
                cert = self.from_store(site, now) or self._first(site, now)
            self.current[cert.name] = cert
        return dict(self.current)

    def reload(self, now: datetime) -> list[SiteCertificate]:
        """What changed in the files and the store since the last look; never raises for one
        site's failure: the current certificate stays and the error is logged."""
        changed: list[SiteCertificate] = []
        for site in self.sites:
            name = site.hosts[0]
            try:
                if site.tls is not None:
                    fresh: SiteCertificate | None = self.from_files(site)
                else:
                    fresh = self.from_store(site, now)
            except TlsgateError as exc:
                if self.file_errors.get(name) != str(exc):  # once per distinct error
                    log.error("site %s: keeping the current certificate: %s", name, exc)
                self.file_errors[name] = str(exc)
                continue
            self.file_errors.pop(name, None)
            current = self.current.get(name)
            if fresh is not None and (
                current is None or fresh.fullchain_pem != current.fullchain_pem
            ):
                self.current[name] = fresh
                changed.append(fresh)
        return changed

    @property
    def has_files(self) -> bool:
        return any(site.tls is not None for site in self.sites)

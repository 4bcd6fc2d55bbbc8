"""The certificates ``serve`` presents: issued by the internal CA or read from files, and renewed.

Embedded default: no configuration at all. If the state has no CA yet, one is created (so
``tlsgate ca export-root`` right after gives the root to trust); each site's certificate is
issued from it, stored with its key, reused on the next start while it is fresh, and renewed
when a third of its lifetime is left (half, for lifetimes under ten days), the rule Let's Encrypt
clients follow. A renewal that fails leaves the current certificate in place: the next attempt
comes later, and the site keeps serving.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509

from tlsgate.ca import CertificateAuthority, passphrase_from_env
from tlsgate.config import SiteConfig
from tlsgate.errors import ConfigError, NotInitialized, TlsgateError
from tlsgate.pki.keys import load_private_key, private_key_pem
from tlsgate.pki.names import parse_identities, with_loopback
from tlsgate.pki.pem import load_certificates
from tlsgate.store.base import ManagedCertificate, Store

__all__ = ["CertificateManager", "SiteCertificate", "renewal_time"]

log = logging.getLogger("tlsgate.certificates")

INTERNAL_LIFETIME = timedelta(days=90)
#: Waits after consecutive failed renewals (certmagic's table, capped at 6 hours): retrying at
#: once would hammer a CA that is down, waiting a day would let short-lived certificates expire.
#: How often certificate files are re-read: a renewal done outside tlsgate (certbot's deploy
#: hook, a secrets manager) is served within this, with no signal needed.
FILE_CHECK = timedelta(seconds=60)
BACKOFF = tuple(timedelta(minutes=m) for m in (1, 2, 2, 5, 10, 20, 30, 60, 120, 240, 360))


def renewal_time(not_before: datetime, not_after: datetime) -> datetime:
    """Renew with 1/3 of the lifetime left, or 1/2 when the lifetime is under ten days."""
    lifetime = not_after - not_before
    remaining = lifetime / 2 if lifetime < timedelta(days=10) else lifetime / 3
    return not_after - remaining


@dataclass(frozen=True)
class SiteCertificate:
    site: SiteConfig
    fullchain_pem: bytes
    key_pem: bytes
    leaf: x509.Certificate
    source: str  # "internal" or the certificate file's path

    @property
    def name(self) -> str:
        return self.site.hosts[0]

    @property
    def renew_at(self) -> datetime:
        return renewal_time(self.leaf.not_valid_before_utc, self.leaf.not_valid_after_utc)


class CertificateManager:
    def __init__(self, store: Store, sites: tuple[SiteConfig, ...]) -> None:
        self.store = store
        self.sites = sites
        self.current: dict[str, SiteCertificate] = {}
        self._ca: CertificateAuthority | None = None
        self.failures: dict[str, int] = {}
        self.retry_at: dict[str, datetime] = {}
        self.last_error: dict[str, str] = {}

    # -- the internal CA -----------------------------------------------------------------------
    def ca(self, now: datetime) -> CertificateAuthority:
        if self._ca is None:
            passphrase = passphrase_from_env()
            try:
                self._ca = CertificateAuthority.load(self.store, passphrase)
            except NotInitialized:
                log.warning("no certificate authority in %s: creating one", self.store.location)
                self._ca = CertificateAuthority.init(self.store, now=now, passphrase=passphrase)
        return self._ca

    # -- loading -------------------------------------------------------------------------------
    def _from_files(self, site: SiteConfig) -> SiteCertificate:
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
            raise ConfigError(
                f"site {site.hosts[0]}: {site.tls.key} is not the key of {site.tls.cert}"
            )
        return SiteCertificate(site, chain_pem, key_pem, certs[0], str(site.tls.cert))

    def _from_store(self, site: SiteConfig, now: datetime) -> SiteCertificate | None:
        stored = self.store.load_managed(site.hosts[0])
        if stored is None:
            return None
        try:
            leaf = load_certificates(stored.fullchain_pem, source="stored certificate")[0]
        except TlsgateError:
            return None
        want = set(parse_identities(with_loopback(site.hosts)))
        try:
            have = set(leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
        except x509.ExtensionNotFound:
            have = set()
        cert = SiteCertificate(site, stored.fullchain_pem, stored.key_pem, leaf, "internal")
        if have != want or now >= cert.renew_at:
            return None  # the site's names changed, or it is due: issue a new one
        return cert

    def _issue(self, site: SiteConfig, now: datetime) -> SiteCertificate:
        from tlsgate.pki.profiles import LeafProfile

        ca = self.ca(now)
        lifetime = min(
            INTERNAL_LIFETIME, ca.intermediate.not_valid_after_utc - now - timedelta(minutes=1)
        )
        issued = ca.issue(
            parse_identities(with_loopback(site.hosts)),
            now=now,
            profile=LeafProfile(lifetime=lifetime),
            requester="serve",
        )
        assert issued.private_key is not None
        key_pem = private_key_pem(issued.private_key)
        self.store.save_managed(
            ManagedCertificate(
                name=site.hosts[0],
                fullchain_pem=issued.fullchain_pem,
                key_pem=key_pem,
                not_after=issued.certificate.not_valid_after_utc,
                issuer="internal",
                updated_at=now,
            )
        )
        log.info(
            "issued certificate for %s (serial %s, until %s)",
            ", ".join(site.hosts),
            issued.info.serial_hex,
            issued.certificate.not_valid_after_utc.isoformat(),
        )
        return SiteCertificate(site, issued.fullchain_pem, key_pem, issued.certificate, "internal")

    def load_all(self, now: datetime) -> dict[str, SiteCertificate]:
        """Every site's certificate for start-up: fail loudly, since nothing can be served yet."""
        for site in self.sites:
            if site.tls is not None:
                cert = self._from_files(site)
            else:
                cert = self._from_store(site, now) or self._issue(site, now)
            self.current[cert.name] = cert
        return dict(self.current)

    def refresh(self, now: datetime) -> list[SiteCertificate]:
        """Renew what is due and re-read changed files; returns the certificates that changed.

        Never raises for one site's failure: the current certificate stays and the error is
        logged, so one broken site does not take the others down.
        """
        changed: list[SiteCertificate] = []
        for site in self.sites:
            name = site.hosts[0]
            current = self.current.get(name)
            if name in self.retry_at and now < self.retry_at[name]:
                continue
            try:
                if site.tls is not None:
                    fresh = self._from_files(site)
                    if current is not None and fresh.fullchain_pem == current.fullchain_pem:
                        continue
                elif current is None or now >= current.renew_at:
                    fresh = self._issue(site, now)
                else:
                    continue
            except TlsgateError as exc:
                count = self.failures.get(name, 0)
                self.failures[name] = count + 1
                self.retry_at[name] = now + BACKOFF[min(count, len(BACKOFF) - 1)]
                self.last_error[name] = str(exc)
                log.error(
                    "site %s: certificate not renewed, still serving the current one; "
                    "next attempt at %s: %s",
                    name,
                    self.retry_at[name].isoformat(timespec="seconds"),
                    exc,
                )
                continue
            self.failures.pop(name, None)
            self.retry_at.pop(name, None)
            self.last_error.pop(name, None)
            self.current[name] = fresh
            changed.append(fresh)
        return changed

    def next_check(self, now: datetime) -> datetime:
        dates = [
            max(c.renew_at, self.retry_at.get(name, c.renew_at))
            for name, c in self.current.items()
            if c.source == "internal"
        ]
        if any(c.source != "internal" for c in self.current.values()):
            dates.append(now + FILE_CHECK)
        soonest = min(dates, default=now + timedelta(hours=1))
        return max(now + timedelta(seconds=1), min(soonest, now + timedelta(hours=1)))

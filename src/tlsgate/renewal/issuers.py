"""Where a new certificate comes from: the internal CA, or any ACME CA (RFC 8555).

Both get a fresh key for every certificate (a renewal never reuses the old key) and return the
chain with that key; the caller stores and serves them. An :class:`AcmeIssuer` is shared by the
sites with the same settings, so they share one account and one connection pool to the CA.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from cryptography import x509

from tlsgate.acme.ari import cert_id
from tlsgate.acme.client.hooks import Dns01Hook
from tlsgate.acme.client.session import AcmeClient, AcmeClientError, Solver, stored_account_key
from tlsgate.acme.client.solvers import StoredAnswers
from tlsgate.ca import CertificateAuthority, passphrase_from_env
from tlsgate.config import AcmeSettings
from tlsgate.errors import AlreadyExists, NotInitialized, TlsgateError
from tlsgate.pki.keys import PrivateKey, generate_key, private_key_pem
from tlsgate.pki.names import parse_identities
from tlsgate.pki.pem import load_certificates
from tlsgate.pki.profiles import LeafProfile
from tlsgate.store.roles import CAStore, RenewalStore

__all__ = ["AcmeIssuer", "InternalIssuer", "Issued", "Issuer", "IssuerError"]

log = logging.getLogger("tlsgate.renewal")

INTERNAL_LIFETIME = timedelta(days=90)


class IssuerError(TlsgateError):
    """The issuer answered, but not with a certificate we can serve."""


@dataclass(frozen=True)
class Issued:
    fullchain_pem: bytes
    key_pem: bytes
    leaf: x509.Certificate


class Issuer(Protocol):
    #: "internal" or "acme:<directory>": recorded with each certificate and in `tlsgate status`
    name: str

    async def issue(self, names: tuple[str, ...], *, replaces: x509.Certificate | None) -> Issued:
        """A certificate for exactly ``names`` with a new key; raises TlsgateError."""
        ...

    async def renewal_window(self, cert: x509.Certificate) -> tuple[datetime, datetime] | None:
        """The issuer's suggested renewal window (ARI), or None; never raises."""
        ...

    async def close(self) -> None: ...


class InternalIssuer:
    """The local CA: no network, so the first certificate is there before the first handshake.

    ``client=True`` issues client certificates (``tlsgate tunnel``'s identities) instead of
    server ones. Its name differs ("internal-client"), so a stored server certificate is never
    taken for a client identity, nor the other way round.
    """

    name = "internal"

    def __init__(
        self, store: CAStore, *, lifetime: timedelta = INTERNAL_LIFETIME, client: bool = False
    ) -> None:
        self.store = store
        self.lifetime = lifetime
        self.client = client
        if client:
            self.name = "internal-client"
        self._ca: CertificateAuthority | None = None

    def ca(self, now: datetime) -> CertificateAuthority:
        """The CA in the store, created on first use (the embedded default needs no set-up)."""
        if self._ca is None:
            passphrase = passphrase_from_env()
            try:
                self._ca = CertificateAuthority.load(self.store, passphrase)
            except NotInitialized:
                log.warning("no certificate authority in %s: creating one", self.store.location)
                try:
                    self._ca = CertificateAuthority.init(self.store, now=now, passphrase=passphrase)
                except AlreadyExists:  # another node of a cluster created it a moment ago
                    self._ca = CertificateAuthority.load(self.store, passphrase)
        return self._ca

    def issue_now(self, names: tuple[str, ...], *, now: datetime) -> Issued:
        ca = self.ca(now)
        # Never past the intermediate's own end: a leaf outliving its issuer does not verify.
        lifetime = min(
            self.lifetime, ca.intermediate.not_valid_after_utc - now - timedelta(minutes=1)
        )
        profile = (
            LeafProfile(server=False, client=True, lifetime=lifetime)
            if self.client
            else LeafProfile(lifetime=lifetime)
        )
        issued = ca.issue(
            parse_identities(names),
            now=now,
            profile=profile,
            requester="client" if self.client else "serve",
        )
        assert issued.private_key is not None
        return Issued(issued.fullchain_pem, private_key_pem(issued.private_key), issued.certificate)

    async def issue(self, names: tuple[str, ...], *, replaces: x509.Certificate | None) -> Issued:
        return self.issue_now(names, now=datetime.now(UTC))

    async def renewal_window(self, cert: x509.Certificate) -> tuple[datetime, datetime] | None:
        return None

    async def close(self) -> None:
        pass


class AcmeIssuer:
    """Any ACME CA. The account key lives in the store (created once per directory URL)."""

    def __init__(self, settings: AcmeSettings, store: RenewalStore) -> None:
        self.settings = settings
        self.store = store
        self.name = f"acme:{settings.directory}"
        self._client: AcmeClient | None = None
        self._registered = False
        #: the CA answered ARI for one of our certificates: send ``replaces`` with renewals
        self._ari = False

    def _trust(self) -> ssl.SSLContext:
        """The system roots, or exactly the PEM roots given for a private CA. A missing or
        broken file is this site's error (reported like any failed renewal), not a crash."""
        if self.settings.ca is None:
            return ssl.create_default_context()
        try:
            return ssl.create_default_context(cafile=str(self.settings.ca))
        except FileNotFoundError:
            raise IssuerError(f"the ACME CA root {self.settings.ca} does not exist") from None
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise IssuerError(
                f"the ACME CA root {self.settings.ca} is not a PEM certificate: {exc}"
            ) from None

    async def _account(self) -> AcmeClient:
        if self._client is None:
            self._client = AcmeClient(
                self.settings.directory,
                stored_account_key(self.store, self.settings.directory),
                ssl_context=self._trust(),
                contact=self.settings.email,
            )
        if not self._registered:
            await self._client.register(eab=self.settings.eab)
            self._registered = True
        return self._client

    def _solvers(self) -> dict[str, Solver]:
        solvers: dict[str, Solver] = {}
        for kind in self.settings.challenges:  # in the configured order of preference
            if kind == "dns-01":
                assert self.settings.dns_hook is not None  # the config checks this
                solvers[kind] = Dns01Hook(self.settings.dns_hook, wait=self.settings.dns_wait)
            else:
                solvers[kind] = StoredAnswers(self.store, kind)
        return solvers

    async def issue(self, names: tuple[str, ...], *, replaces: x509.Certificate | None) -> Issued:
        key = generate_key()
        client = await self._account()
        # The CA speaks ARI: say which certificate this order replaces (RFC 9773 section 5).
        old = cert_id(replaces) if replaces is not None and self._ari else None
        try:
            chain = await client.obtain(
                names, key, self._solvers(), replaces=old, profile=self.settings.profile
            )
        except AcmeClientError as exc:
            if not exc.type.endswith(":accountDoesNotExist"):
                raise
            # The CA forgot the account (a test CA restarted, an account deactivated by an
            # admin): make a new one with the same key, once.
            log.warning("%s: the CA no longer knows our account; registering again", self.name)
            self._registered = False
            client = await self._account()
            chain = await client.obtain(names, key, self._solvers(), profile=self.settings.profile)
        return _checked(chain, key, names)

    async def renewal_window(self, cert: x509.Certificate) -> tuple[datetime, datetime] | None:
        try:
            client = await self._account()
            window = await client.renewal_window(cert)
        except TlsgateError as exc:
            log.info("%s: no renewal information (%s); using the lifetime rule", self.name, exc)
            return None
        self._ari = self._ari or window is not None
        return window

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
            self._registered = False


def _checked(chain: bytes, key: PrivateKey, names: tuple[str, ...]) -> Issued:
    """Refuse to serve what the CA sent unless it is for our key and covers every name."""
    certs = load_certificates(chain, source="the certificate the CA sent")
    leaf = certs[0]
    if leaf.public_key() != key.public_key():
        raise IssuerError("the CA sent a certificate for another key")
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise IssuerError("the CA sent a certificate without subjectAltName") from None
    missing = set(parse_identities(names)) - set(san)
    if missing:
        raise IssuerError(f"the CA's certificate does not cover {sorted(map(str, missing))}")
    return Issued(chain, private_key_pem(key), leaf)

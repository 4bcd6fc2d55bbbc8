"""Client certificates at the edge (mTLS): what a site's TLS context trusts and revokes.

The control plane's half, run per configuration change and per new CRL; the per-connection half
(who a verified certificate names, whether a request is admitted and with which XFCC header) is
the data plane's :mod:`tlsgate.proxy.client_identity`.

A site with ``[site.client_auth]`` gets a TLS context that asks for a client certificate
(``require``: the handshake fails without a valid one; ``optional``: it may come without) and
verifies it against the site's trust anchors (the internal CA by default, or PEM bundles) and,
when there is one, the issuer's CRL (OpenSSL's ``X509_V_FLAG_CRL_CHECK``: a revoked, expired,
foreign or missing certificate is refused with a TLS alert before any HTTP is read). Who may do
what once verified is :mod:`tlsgate.mtls.policy`, asked per request by
:mod:`tlsgate.proxy.client_identity`.

CRLs change, and OpenSSL keeps every CRL ever added to a store (preferring the first), so a
new CRL means a new context for the site; its *session id context* is derived from the trust
material, so sessions (and tickets) made before a revocation are not resumed after it, and
sessions from sites without client certificates never resume on this one.

The internal CA's CRL is signed with the intermediate's key, which only the master holds: the
master regenerates it when the revoked set changes (or it is half-way to its nextUpdate) and
writes it to ``<state>/crl/internal.pem``; workers read that file. It learns of a revocation
from the store watch (:mod:`tlsgate.serve.store_sync`, whoever revoked) and on SIGHUP.
"""

from __future__ import annotations

import hashlib
import logging
import ssl
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tlsgate.config import ClientAuth
from tlsgate.errors import ConfigError
from tlsgate.pki.pem import certificate_pem, load_certificates
from tlsgate.plural import count
from tlsgate.store.base import CertStatus
from tlsgate.store.files import PUBLIC, atomic_write
from tlsgate.store.roles import CAStore
from tlsgate.tls.libssl import set_session_id_context
from tlsgate.tls.tickets import disable_tickets

__all__ = [
    "InternalCrl",
    "TrustMaterial",
    "configure",
    "file_material",
    "internal_material",
]

log = logging.getLogger("tlsgate.mtls")

INTERNAL_CRL = Path("crl") / "internal.pem"


@dataclass(frozen=True)
class TrustMaterial:
    cadata: str  # PEM: the CA certificates client certificates must chain to
    crls: str  # PEM: CRLs to check the leaf against ("" = no revocation checking)

    @property
    def fingerprint(self) -> bytes:
        return hashlib.sha256(f"{self.cadata}\0{self.crls}".encode()).digest()


def configure(ctx: ssl.SSLContext, name: str, auth: ClientAuth, material: TrustMaterial) -> None:
    """Make ``ctx`` (a site's server context) verify client certificates as ``auth`` says."""
    # First, while the verify mode is still the one Python reports the same way as OpenSSL:
    # the ctypes lookup of the SSL_CTX checks it.
    sid = hashlib.sha256(b"tlsgate-mtls\0" + name.encode() + material.fingerprint).digest()
    try:
        set_session_id_context(ctx, sid)
    except RuntimeError as exc:  # no safe way to keep sessions apart: resume nothing here
        log.warning("site %s: session tickets off for client certificates (%s)", name, exc)
        disable_tickets(ctx)
    ctx.verify_mode = ssl.CERT_REQUIRED if auth.mode == "require" else ssl.CERT_OPTIONAL
    ctx.load_verify_locations(cadata=material.cadata)
    if material.crls:
        # ``cadata`` takes certificates only; OpenSSL's file loader also reads CRLs.
        with tempfile.TemporaryDirectory(prefix="tlsgate-crl-") as tmp:
            path = Path(tmp) / "crls.pem"
            path.write_text(material.crls)
            ctx.load_verify_locations(cafile=path)
        ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from None


def _crl_pem(path: Path) -> str:
    data = _read(path, "CRL")
    try:
        crl = (
            x509.load_pem_x509_crl(data) if b"-----BEGIN" in data else x509.load_der_x509_crl(data)
        )
    except ValueError:
        raise ConfigError(f"{path}: not a CRL (PEM or DER)") from None
    return crl.public_bytes(Encoding.PEM).decode()


def file_material(auth: ClientAuth) -> TrustMaterial:
    """Trust from the configured PEM bundles (each must hold at least one certificate)."""
    cadata = "".join(
        "".join(
            certificate_pem(cert).decode()
            for cert in load_certificates(_read(path, "trust bundle"), source=str(path))
        )
        for path in auth.trust
    )
    return TrustMaterial(cadata, "".join(_crl_pem(path) for path in auth.crl))


def internal_material(store: CAStore, state_dir: Path | None) -> TrustMaterial:
    """The internal CA's root and intermediate, and its CRL as the master last wrote it.

    The intermediate is trusted too, so a client that sends only its leaf (many do) verifies.
    """
    authority = store.active_authority()
    if authority is None:
        raise ConfigError("client_auth trusts the internal CA, but there is none yet")
    cadata = (authority.root_pem + authority.intermediate_pem).decode()
    crls = ""
    if state_dir is not None:
        try:
            crls = (state_dir / INTERNAL_CRL).read_text()
        except OSError:
            crls = ""
    return TrustMaterial(cadata, crls)


class InternalCrl:
    """The master's side: keeps ``<state>/crl/internal.pem`` current."""

    def __init__(self, store: CAStore, state_dir: Path) -> None:
        self.store = store
        self.path = state_dir / INTERNAL_CRL
        self._revoked: frozenset[int] | None = None
        self._next_update: datetime | None = None
        self._this_update: datetime | None = None

    def refresh(
        self, now: datetime, sign: Callable[[datetime], x509.CertificateRevocationList]
    ) -> bool:
        """Write a new CRL when the revoked set changed or the current one is half-way to its
        nextUpdate; True when the file changed. ``sign(now)`` returns a CRL (the CA's)."""
        revoked = frozenset(
            record.serial for record in self.store.list_certificates(status=CertStatus.REVOKED)
        )
        fresh = (
            self._this_update is not None
            and self._next_update is not None
            and now < self._this_update + (self._next_update - self._this_update) / 2
        )
        if revoked == self._revoked and fresh and self.path.exists():
            return False
        crl = sign(now)
        self.path.parent.mkdir(mode=0o755, exist_ok=True)
        atomic_write(self.path, crl.public_bytes(Encoding.PEM), mode=PUBLIC)
        self._revoked = revoked
        self._this_update = crl.last_update_utc
        self._next_update = crl.next_update_utc
        log.info("internal CRL written (%s)", count(len(revoked), "revoked certificate"))
        return True

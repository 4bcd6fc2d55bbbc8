"""Server TLS contexts: Mozilla "intermediate", SNI selection and certificate hot-swap.

One ``SSLContext`` per site. The listening context is the first site's, with an SNI callback that
moves each handshake to the site the client named. A renewed certificate is loaded into the
site's existing context (``load_cert_chain`` again): new handshakes get it at once, established
connections keep theirs, and no listener is ever re-created, so nothing is dropped.

Session tickets are encrypted with the listening context's keys (OpenSSL keeps the session
context across ``SSL_set_SSL_CTX``); the contexts are built before the workers fork, so every
worker holds the same ticket keys and a client resumes on whichever worker accepts it.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from collections.abc import Sequence
from pathlib import Path

from tlsgate import libssl
from tlsgate.errors import ConfigError

__all__ = [
    "MOZILLA_INTERMEDIATE_CIPHERS",
    "MOZILLA_INTERMEDIATE_GROUPS",
    "SiteContexts",
    "load_chain_into",
    "new_server_context",
    "set_mozilla_groups",
]

#: Mozilla server-side TLS "intermediate" (v5.7) TLS 1.2 suites; TLS 1.3 suites are OpenSSL's
#: defaults, which are exactly Mozilla's.
MOZILLA_INTERMEDIATE_CIPHERS = ":".join(
    [
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
    ]
)


#: Mozilla intermediate key-exchange groups (OpenSSL names), most preferred first. OpenSSL's
#: default list also has X448, secp521r1 and the ffdhe groups, which the profile leaves out.
MOZILLA_INTERMEDIATE_GROUPS = ("X25519", "prime256v1", "secp384r1")

#: The one group kept when OpenSSL cannot be reached through ctypes (see set_mozilla_groups).
_FALLBACK_GROUP = "prime256v1"


def set_mozilla_groups(ctx: ssl.SSLContext) -> None:
    """Offer exactly Mozilla intermediate's groups on ``ctx``, for TLS 1.2 and 1.3 alike.

    Python 3.11's ``ssl`` cannot set a list of groups, so this goes through
    :func:`tlsgate.libssl.set_groups` (``SSL_CTX_set1_groups_list``). Where OpenSSL cannot be
    reached through ctypes (another interpreter), ``ssl``'s own ``set_ecdh_curve`` keeps P-256
    alone: still inside the profile, which is what matters. An OpenSSL that refuses the list (a
    build without X25519, say) is a ``ConfigError``: serving other groups than the profile's
    would be a silent downgrade.
    """
    if not libssl.available():
        ctx.set_ecdh_curve(_FALLBACK_GROUP)
        return
    groups = ":".join(MOZILLA_INTERMEDIATE_GROUPS)
    if not libssl.set_groups(ctx, groups):
        raise ConfigError(
            f"{ssl.OPENSSL_VERSION} refused the TLS key-exchange groups {groups} "
            "(Mozilla intermediate); tlsgate needs an OpenSSL that supports all three"
        )


def new_server_context(alpn: Sequence[str] = ("http/1.1",)) -> ssl.SSLContext:
    """A server context with Mozilla's "intermediate" profile: every TLS listener tlsgate opens
    (``serve``'s sites and its tls-alpn-01 answers, ``ca serve``) is made here."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(MOZILLA_INTERMEDIATE_CIPHERS)
    set_mozilla_groups(ctx)
    # Mozilla intermediate: the client's order wins (it knows if it has AES hardware).
    ctx.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    ctx.set_alpn_protocols(list(alpn))
    return ctx


def load_chain_into(ctx: ssl.SSLContext, fullchain_pem: bytes, key_pem: bytes) -> None:
    """Load PEM bytes into ``ctx``. ``ssl`` only reads files, so they go through a private
    (0700 directory, 0600 file) temporary directory that is removed at once."""
    with tempfile.TemporaryDirectory(prefix="tlsgate-") as tmp:
        cert_path = Path(tmp) / "fullchain.pem"
        key_path = Path(tmp) / "key.pem"
        for path, data in ((cert_path, fullchain_pem), (key_path, key_pem)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        try:
            ctx.load_cert_chain(cert_path, key_path)
        except ssl.SSLError as exc:
            raise ConfigError(f"certificate and key do not load together: {exc.reason}") from None


class SiteContexts:
    """Host name -> the site's context, exact names before one-label wildcards."""

    def __init__(self) -> None:
        self._exact: dict[str, ssl.SSLContext] = {}
        self._wildcard: dict[str, ssl.SSLContext] = {}
        self.default: ssl.SSLContext | None = None

    def add(self, hosts: Sequence[str], ctx: ssl.SSLContext) -> None:
        for host in hosts:
            if host.startswith("*."):
                self._wildcard[host[2:]] = ctx
            else:
                self._exact[host] = ctx
        # On every context: a listener that picks the context before the handshake (the
        # peeking acceptor) still has the server name recorded for the HTTP layer.
        ctx.sni_callback = self._on_sni
        if self.default is None:
            self.default = ctx

    def replace(self, old: ssl.SSLContext, new: ssl.SSLContext) -> None:
        """Serve ``new`` wherever ``old`` was (a site whose trust changed gets a new context)."""
        for table in (self._exact, self._wildcard):
            for host, ctx in table.items():
                if ctx is old:
                    table[host] = new
        new.sni_callback = self._on_sni
        if self.default is old:
            self.default = new

    def lookup(self, name: str) -> ssl.SSLContext | None:
        name = name.lower().rstrip(".")
        ctx = self._exact.get(name)
        if ctx is None:
            ctx = self._wildcard.get(name.partition(".")[2])
        return ctx

    def _on_sni(
        self, ssl_obj: ssl.SSLObject, server_name: str | None, initial: ssl.SSLContext
    ) -> int | None:
        if server_name is None:
            return None  # IP-literal clients send no SNI: the default certificate
        # Remembered for the HTTP layer, which refuses a Host naming a different site (421).
        ssl_obj.tlsgate_sni = server_name  # type: ignore[attr-defined]
        ctx = self.lookup(server_name)
        if ctx is not None and ctx is not initial:
            ssl_obj.context = ctx
        # An unknown name still gets the default certificate (as nginx does); the client's own
        # hostname check then fails with a clear "wrong host" instead of an opaque alert.
        return None

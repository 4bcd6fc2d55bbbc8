"""Server TLS contexts with Mozilla's "intermediate" profile; certificates loaded from bytes.

Every TLS listener tlsgate opens (``serve``'s sites and its tls-alpn-01 answers, ``ca serve``) is
made by :func:`new_server_context`, so the profile (versions, TLS 1.2 suites, key-exchange groups,
no compression or renegotiation) is decided in one place. :func:`load_chain_into` is how a
certificate and key held as bytes (from the store, or renewed in memory) get into a context, for
servers and clients alike.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from collections.abc import Sequence
from pathlib import Path

from tlsgate.errors import ConfigError
from tlsgate.tls import libssl
from tlsgate.tls.direct_object import DirectSSLObject

__all__ = [
    "MOZILLA_INTERMEDIATE_CIPHERS",
    "MOZILLA_INTERMEDIATE_GROUPS",
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
    :func:`tlsgate.tls.libssl.set_groups` (``SSL_CTX_set1_groups_list``). Where OpenSSL cannot be
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
    # Connections wrapped by uvloop's and asyncio's TLS transports read and write records
    # through OpenSSL's C methods directly (see direct_object.py).
    ctx.sslobject_class = DirectSSLObject
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

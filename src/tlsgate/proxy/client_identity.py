"""Client certificates per connection and per request: who the client is, and may it pass.

The data plane's half of mTLS. By the time a connection is made OpenSSL has verified the
client's certificate against the site's trust anchors and CRLs (the context the control plane
built: :mod:`tlsgate.serve.client_trust`), so what is left here is cheap and needs no file, store
or CA: read the identity once per connection, and ask :mod:`tlsgate.mtls.policy` per request
whether this path admits it, and with which X-Forwarded-Client-Cert value.
"""

from __future__ import annotations

import ssl

from tlsgate.http import Request
from tlsgate.mtls.identity import ClientIdentity, IdentityError
from tlsgate.mtls.policy import Decision, authorize
from tlsgate.mtls.xfcc import outgoing
from tlsgate.proxy.headers import XFCC
from tlsgate.proxy.settings import ClientCertPolicy

__all__ = ["admit", "peer_identity"]


def peer_identity(ssl_object: ssl.SSLObject) -> ClientIdentity | None:
    """Who the verified client certificate names (None: the client sent none). OpenSSL has
    verified the chain, validity and CRL by now, or the handshake would have failed."""
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return None
    try:
        return ClientIdentity.from_der(der)
    except IdentityError:
        return None


def admit(
    auth: ClientCertPolicy, identity: ClientIdentity | None, request: Request
) -> tuple[Decision, bytes | None]:
    """May this request reach the upstream, and with which X-Forwarded-Client-Cert value."""
    path = request.target.partition(b"?")[0].decode("latin-1")
    decision = authorize(
        identity, path, auth.allow, auth.paths, certificate_required=auth.mode == "require"
    )
    if not decision.allowed:
        return decision, None
    incoming: list[bytes] = []
    if auth.forward in ("forward", "append_forward"):
        incoming = [value for name, value in request.headers if name == XFCC]
    return decision, outgoing(auth.forward, incoming, identity)

"""Mutual TLS, sans-IO: who a client certificate names, who may pass, and what the upstream hears.

:mod:`~tlsgate.mtls.identity` reads a verified leaf into plain values, :mod:`~tlsgate.mtls.policy`
decides per request from those values and the path, and :mod:`~tlsgate.mtls.xfcc` writes (and
reads) Envoy's ``x-forwarded-client-cert`` header. The TLS handshake that verifies the chain, and
the proxy that applies the decisions, live above this package (in :mod:`tlsgate.proxy`).
"""

from tlsgate.mtls.identity import ClientIdentity, IdentityError
from tlsgate.mtls.policy import (
    AllowList,
    Decision,
    PathRule,
    authorize,
    check_path_prefix,
    check_spiffe_pattern,
    match_spiffe,
    normalize_path,
)
from tlsgate.mtls.xfcc import FORWARD_MODES, XfccError

__all__ = [
    "FORWARD_MODES",
    "AllowList",
    "ClientIdentity",
    "Decision",
    "IdentityError",
    "PathRule",
    "XfccError",
    "authorize",
    "check_path_prefix",
    "check_spiffe_pattern",
    "match_spiffe",
    "normalize_path",
]

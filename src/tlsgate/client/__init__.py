"""The client side of mutual TLS: a service's identity, and connections that present it.

* :mod:`identity`: the service's client certificate (an X.509-SVID, or one DNS name) from the
  internal CA in a state directory, stored, reused and renewed by ``serve``'s renewal loop;
* :mod:`context`: verifying client ``SSLContext``\\ s (the server's chain, and its DNS name or
  SPIFFE ID) that present that certificate and follow its renewals
  (:class:`ReloadingIdentity`);
* :mod:`transports`: the same as httpx transports;
* :mod:`tunnel`: ``tlsgate tunnel``, for services that do not speak TLS themselves.

It sits above ``renewal`` (whose loop it reuses), reads HTTP with :mod:`tlsgate.http`'s sans-IO
parsers and loads certificates with :mod:`tlsgate.tls`; it imports nothing from the proxy, and
nothing in the server imports it.
"""

from tlsgate.client.context import (
    ClientContext,
    ReloadingIdentity,
    ServerIdentityError,
    check_server_spiffe,
    ssl_context,
)
from tlsgate.client.identity import DEFAULT_LIFETIME, ClientCertificate, current_certificate
from tlsgate.client.transports import (
    AsyncIdentityTransport,
    IdentityTransport,
    async_httpx_transport,
    httpx_transport,
)

__all__ = [
    "DEFAULT_LIFETIME",
    "AsyncIdentityTransport",
    "ClientCertificate",
    "ClientContext",
    "IdentityTransport",
    "ReloadingIdentity",
    "ServerIdentityError",
    "async_httpx_transport",
    "check_server_spiffe",
    "current_certificate",
    "httpx_transport",
    "ssl_context",
]

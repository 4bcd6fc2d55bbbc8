"""Each site's Strict-Transport-Security value, derived once from its configuration.

Which policy a site gets when its configuration says nothing is a configuration decision, so it
is made here, on the control plane's side; the data plane only looks the bytes up per response
(:attr:`tlsgate.proxy.edge.Edge.hsts`). The default: on for a site with at least one public name,
off for one that only has names a browser never reaches on the public internet (localhost, IP
addresses, ``.local``, ``.internal``, ``.test``...: :func:`tlsgate.proxy.routing.is_local_host`).
"""

from __future__ import annotations

from collections.abc import Iterable

from tlsgate.config import HstsPolicy, SiteConfig
from tlsgate.proxy.routing import is_local_host

__all__ = ["hsts_header", "hsts_headers"]


def hsts_header(site: SiteConfig) -> bytes | None:
    """The header value ``site`` sends with every response (None: no header)."""
    policy = site.hsts
    if policy is None and not site.hsts_explicit:
        public = [h for h in site.hosts if not is_local_host(h.removeprefix("*."))]
        policy = HstsPolicy() if public else None
    return policy.header_value() if policy is not None else None


def hsts_headers(sites: Iterable[SiteConfig]) -> dict[int, bytes]:
    """``id(site)`` -> its header value, for the sites that send one: what ``Edge.hsts`` takes
    (keyed like the routes the router built from the same site objects)."""
    return {id(site): value for site in sites if (value := hsts_header(site)) is not None}

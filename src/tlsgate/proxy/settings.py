"""What the data plane reads of the configuration: a site, an upstream, the timeouts, the
limits, a site's client-certificate policy, and where it reports what happened.

Read-only protocols naming only the fields the per-connection code reads, so that the data
plane never imports :mod:`tlsgate.config` (nor anything else of the control plane) and stays a
package with a narrow face. ``serve`` hands it config's frozen dataclasses (``SiteConfig``,
``Upstream``, ``Timeouts``, ``Limits``, ``ClientAuth``), which satisfy these structurally: mypy
checks it where ``serve`` builds the :class:`~tlsgate.proxy.routing.Router` and the
:class:`~tlsgate.proxy.edge.Edge`. Nothing is copied, and config need not know the data plane.

What the data plane needs but config does not hold as such (a site's Strict-Transport-Security
value, derived from its HSTS policy and its names) the control plane derives and passes in as a
plain value.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from tlsgate.mtls.policy import AllowList, PathRule

__all__ = [
    "ClientCertPolicy",
    "EdgeMetrics",
    "LimitSettings",
    "SiteSettings",
    "TimeoutSettings",
    "UpstreamAddress",
]


class UpstreamAddress(Protocol):
    """A service behind the edge. Hashable (the pool keeps idle connections per upstream); its
    ``str()`` is how the access log and the metrics name it."""

    @property
    def host(self) -> str: ...  # a name or an IP address; IPv6 without brackets

    @property
    def port(self) -> int: ...

    @property
    def h2c(self) -> bool: ...  # HTTP/2 in clear text (gRPC), else HTTP/1.1


class ClientCertPolicy(Protocol):
    """A site's client-certificate settings as each request is admitted: whether a certificate
    is required, who may reach which paths, and what reaches the upstream as XFCC."""

    @property
    def mode(self) -> str: ...  # "off" | "optional" | "require"

    @property
    def allow(self) -> AllowList: ...

    @property
    def paths(self) -> tuple[PathRule, ...]: ...

    @property
    def forward(self) -> str: ...  # an X-Forwarded-Client-Cert mode (tlsgate.mtls.xfcc)


class SiteSettings(Protocol):
    """A site as routing and the exchange see it."""

    @property
    def hosts(self) -> tuple[str, ...]: ...  # canonical names, wildcards allowed; [0] names it

    @property
    def upstreams(self) -> Sequence[UpstreamAddress]: ...

    @property
    def balance(self) -> str: ...  # "round_robin" | "least_conn"

    @property
    def via(self) -> bool: ...

    @property
    def mode(self) -> str: ...  # "http" | "tcp"

    @property
    def client_auth(self) -> ClientCertPolicy | None: ...


class TimeoutSettings(Protocol):
    """The deadlines a connection runs on, in seconds."""

    @property
    def header(self) -> float: ...

    @property
    def idle(self) -> float: ...

    @property
    def upstream_connect(self) -> float: ...

    @property
    def upstream_response(self) -> float: ...


class LimitSettings(Protocol):
    """How much of a request the parser accepts."""

    @property
    def max_header_bytes(self) -> int: ...

    @property
    def max_headers(self) -> int: ...

    @property
    def max_body_bytes(self) -> int | None: ...


class EdgeMetrics(Protocol):
    """Where a connection reports what happened (the control plane's metrics implement it)."""

    def observe(self, site: str, status: int, seconds: float) -> None:
        """A request answered (``site`` is ``"-"`` for one no site took)."""

    def connected(self) -> None:
        """A client connection completed its TLS handshake."""

    def upstream_failed(self, upstream: str, kind: str) -> None:
        """An upstream could not answer: ``kind`` is ``"unavailable"`` (502) or ``"timeout"``."""

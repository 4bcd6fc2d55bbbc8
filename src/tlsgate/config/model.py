"""What a loaded config is: frozen dataclasses that every later stage can trust.

Nothing here validates; the parsers in :mod:`tlsgate.config.parse` and
:mod:`tlsgate.config.flags` build these only from values that passed the checks, and the
defaults written here are the documented ones (the package docstring's example is tested
against them).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from tlsgate.mtls.policy import AllowList, PathRule

#: Mozilla recommends two years.
DEFAULT_HSTS_MAX_AGE = 63072000

#: The ACME challenge types tlsgate can answer, as RFC 8555 / RFC 8737 name them.
CHALLENGE_TYPES = ("http-01", "tls-alpn-01", "dns-01")

#: How a site asks for client certificates; "off" is a site without ``client_auth``.
CLIENT_AUTH_MODES = ("off", "optional", "require")


@dataclass(frozen=True)
class ListenAddress:
    host: str  # "0.0.0.0", "::", "127.0.0.1"
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Upstream:
    host: str  # a name or an IP address; IPv6 without brackets, ready for connect()
    port: int
    #: Speaks HTTP/2 in clear text (``h2c://``, prior knowledge): gRPC services.
    h2c: bool = False

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'h2c' if self.h2c else 'http'}://{host}:{self.port}"


@dataclass(frozen=True)
class Timeouts:
    handshake: float = 10.0
    header: float = 15.0
    idle: float = 75.0
    upstream_connect: float = 5.0
    upstream_response: float = 60.0
    drain: float = 30.0


@dataclass(frozen=True)
class Limits:
    max_header_bytes: int = 32 * 1024
    max_headers: int = 100
    max_body_bytes: int | None = None


@dataclass(frozen=True)
class HstsPolicy:
    max_age: int = DEFAULT_HSTS_MAX_AGE
    include_subdomains: bool = False
    preload: bool = False

    def header_value(self) -> bytes:
        value = f"max-age={self.max_age}"
        if self.include_subdomains:
            value += "; includeSubDomains"
        if self.preload:
            value += "; preload"
        return value.encode()


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path
    ocsp_stapling: bool = True  # when the certificate names an OCSP responder


@dataclass(frozen=True)
class AcmeSettings:
    """How a site gets its certificate from an ACME CA; the file's [acme] merged with [site.acme].

    Every value is resolved when the config is read (``challenges`` included), so the renewal
    loop never has to know which table, flag or default a setting came from.
    """

    directory: str  # https URL of the ACME directory
    email: tuple[str, ...] = ()  # contact addresses (without mailto:)
    eab: tuple[str, bytes] | None = None  # External Account Binding: key id, MAC key bytes
    challenges: tuple[str, ...] = ("http-01", "tls-alpn-01")  # preference order, never empty
    ca: Path | None = None  # PEM root(s) to trust for the directory's HTTPS (private CA)
    dns_hook: str | None = None  # command for dns-01: `CMD present|cleanup NAME VALUE`
    dns_wait: float = 0.0  # seconds to wait after `present` before answering
    profile: str | None = None  # ACME profile name to request (draft-aaron-acme-profiles)


@dataclass(frozen=True)
class ClientAuth:
    """Mutual TLS for a site: which CAs vouch for clients, and who of them may reach what.

    The policy types come from :mod:`tlsgate.mtls.policy`, which decides per request; this is
    only where a site's choice of them is kept.
    """

    mode: str = "off"  # "off" | "optional" | "require"
    trust: tuple[Path, ...] = ()  # PEM bundles of CA certificates; () = the internal CA's root
    #: extra PEM/DER CRL files for `trust` CAs; with trust = () the internal CA's CRL is used
    #: automatically
    crl: tuple[Path, ...] = ()
    crl_refresh: float = 300.0  # seconds between CRL reloads
    allow: AllowList = field(default_factory=AllowList)
    paths: tuple[PathRule, ...] = ()
    forward: str = "sanitize_set"  # x-forwarded-client-cert mode (tlsgate.mtls.xfcc)


@dataclass(frozen=True)
class SiteConfig:
    hosts: tuple[str, ...]  # canonical (lower-case A-label) names, wildcards allowed
    upstreams: tuple[Upstream, ...]
    balance: str = "round_robin"  # "round_robin" | "least_conn"
    #: None = the default (on for public names, off for localhost/IPs/.local/.internal/.test)
    hsts: HstsPolicy | None = None
    hsts_explicit: bool = False  # True when the config said hsts = ... (even false)
    via: bool = False
    #: Offer HTTP/2 (ALPN "h2", before "http/1.1") on this site's TLS handshakes.
    http2: bool = True
    #: "http": requests proxied to an HTTP upstream; "tcp": after TLS (and the client
    #: certificate check), bytes relayed to a TCP upstream, for protocols that are not HTTP.
    mode: str = "http"
    tls: TlsFiles | None = None  # None = certificates from the issuer below
    #: "internal" or "acme"; a site with tls keeps "internal" here, but its files win.
    issuer: str = "internal"
    acme: AcmeSettings | None = None  # set exactly when issuer == "acme"
    client_auth: ClientAuth | None = None  # None = off: no client certificates asked for


@dataclass(frozen=True)
class ServerConfig:
    listen: tuple[ListenAddress, ...] = (ListenAddress("0.0.0.0", 443),)
    http_listen: tuple[ListenAddress, ...] = (ListenAddress("0.0.0.0", 80),)
    admin_listen: ListenAddress | None = None
    workers: int = 0
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    access_log: str = "stdout"
    state: Path | None = None
    #: The state as a directory or a ``postgresql://`` URL (several nodes sharing one state);
    #: the alternative to ``state``. Local files then go to $TLSGATE_STATE or the XDG default.
    store: str | None = None
    #: Seconds per session-ticket key; None = no tickets ("off").
    ticket_rotation: float | None = 12 * 3600.0
    #: Seconds between looks at the store for certificates other nodes stored and revocations
    #: (PostgreSQL also notifies at once; with SQLite the look is all there is).
    store_poll: float = 5.0
    #: A worker that has accepted this many connections hands its listeners to a fresh worker
    #: and drains (glibc keeps the heap a connection churn fragments); 0 = never.
    max_connections_per_worker: int = 0
    timeouts: Timeouts = field(default_factory=Timeouts)
    limits: Limits = field(default_factory=Limits)


@dataclass(frozen=True)
class Config:
    server: ServerConfig
    sites: tuple[SiteConfig, ...]
    source: str = "<flags>"  # file name for messages

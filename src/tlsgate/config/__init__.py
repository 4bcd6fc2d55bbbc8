"""``tlsgate.toml``: frozen dataclasses, loaded with exact errors that point at the line.

One shape for both ways of starting the edge: the config file (``serve -c tlsgate.toml``) and the
zero-config flags (``serve --host NAME --to URL``) both produce a :class:`Config`, so every later
stage sees validated values only.

Example::

    [server]
    listen = "0.0.0.0:443"            # or a list; "[::]:443" for IPv6, ":443" = "0.0.0.0:443"
    http_listen = "0.0.0.0:80"        # plain HTTP: ACME http-01 + redirect to HTTPS; false = off
    admin_listen = "127.0.0.1:9100"   # /metrics; false or left out = off
    workers = 0                       # 0 = one per core
    trusted_proxies = ["10.0.0.0/8"]  # peers whose X-Forwarded-* / Forwarded we keep
    access_log = "stdout"             # "stdout", "off" or a file path (JSON lines)
    state = "/var/lib/tlsgate"        # the CA and certificate store
    # store = "postgresql://tlsgate@db/tlsgate"  # instead of state: one state for several nodes
    ticket_rotation = "12h"           # session-ticket key period ("30m", "1d", seconds); "off"
    store_poll = "5s"                 # how often the store is read for others' certificates
                                      # and revocations (PostgreSQL also notifies at once)
    max_connections_per_worker = 0    # recycle a worker after this many connections; 0 = never

    [server.timeouts]                 # seconds
    handshake = 10
    header = 15
    idle = 75
    upstream_connect = 5
    upstream_response = 60
    drain = 30

    [server.limits]
    max_header_bytes = 32768
    max_headers = 100
    max_body_bytes = 0                # 0 = unlimited

    [acme]                            # optional: every site's certificate from an ACME CA
    directory = "https://acme-v02.api.letsencrypt.org/directory"  # https:// only (RFC 8555)
    email = "ops@example.com"         # or a list; the CA's contact, without mailto:
    challenges = ["http-01", "tls-alpn-01"]  # preference order; the default (dns_hook: dns-01)
    dns_wait = 0                      # seconds after "dns_hook present" before answering
    # eab = "KEY_ID:BASE64URL_MAC"    # External Account Binding, when the CA wants one
    # ca = "acme-root.pem"            # trust this root for the directory (a private CA)
    # dns_hook = "/usr/local/bin/dns" # dns-01 (wildcards need it): CMD present|cleanup NAME VALUE
    # profile = "shortlived"          # the CA's certificate profile, if it offers several

    [[site]]
    hosts = ["example.com", "*.example.com"]
    upstream = ["http://127.0.0.1:8000", "http://127.0.0.1:8001"]
    balance = "round_robin"           # or "least_conn"
    hsts = true                       # true / false / a max-age in seconds
    via = false

    [site.tls]                        # optional: a file pair; then no issuer, not even [acme]
    cert = "/etc/ssl/example/fullchain.pem"
    key = "/etc/ssl/example/key.pem"
    ocsp_stapling = true              # staple when the certificate names a responder

    [[site]]
    hosts = "api.example.net"
    upstream = "[::1]:9000"           # "host:port" is short for "http://host:port"
    hsts = { max_age = 31536000, include_subdomains = true, preload = false }
    # issuer = "acme"                 # the default when [acme] or [site.acme] exists

    [site.acme]                       # optional: this site's own values over [acme]'s
    email = ["api@example.net", "ops@example.com"]

    [[site]]
    hosts = "intranet.example.net"
    upstream = "127.0.0.1:7000"
    issuer = "internal"               # tlsgate's own CA, even with [acme]

    [site.client_auth]                # optional: mutual TLS, clients show a certificate
    mode = "require"                  # "optional": anonymous clients too, where rules allow
    # trust = "clients-ca.pem"        # or a list; default: the internal CA
    # crl = "clients-ca.crl"          # CRLs for trust's CAs (the internal CA's is automatic)
    crl_refresh = "5m"                # how often CRLs are re-read (seconds or a duration)
    allow_spiffe = "spiffe://example.net/ns/prod/*"  # "*" one segment, a final "/**" any
    allow_dns = ["*.svc.example.net"] # or allow_cn, allow_ou; any entry of any list passes
    forward = "sanitize_set"          # x-forwarded-client-cert: ours only; "sanitize": none

    [[site.client_auth.path]]         # the longest matching prefix's lists replace the site's
    prefix = "/admin"                 # "/admin" and "/admin/...", not "/administrator"
    allow_cn = "ops"
    # require_certificate = false     # mode = "optional": anonymous clients may pass here

Relative paths (``state``, ``access_log``, ``cert``, ``key``, ``ca``, ``trust``, ``crl``) are
relative to the directory of the config file, not to wherever the server happens to be started,
and ``~`` means the home directory.
Whether the files exist is checked when the server starts, where the error can say what it was
trying to do. Port 0 in a listen address asks the kernel for any free port, which only tests want.

A site's certificate comes from its ``[site.tls]`` files, else from its ``issuer``: ``"acme"``
when ``[acme]`` or ``[site.acme]`` exists, else ``"internal"``. What ACME needs is checked here,
not at the first renewal: a wildcard needs dns-01 (so a ``dns_hook``), http-01 needs
``http_listen``, and ``challenges`` left out means what the server can answer.

``[site.client_auth]`` with no allow lists lets any certificate the trusted CAs issued pass;
keys that could change nothing are errors too: lists under ``mode = "off"``, ``crl`` without
``trust``, ``require_certificate = false`` under ``mode = "require"``.

Unknown keys are errors, never ignored: a misspelt ``trusted_proxy`` that silently kept the default
would trust nobody's ``X-Forwarded-For`` (or, misspelt the other way, everybody's).
"""

from __future__ import annotations

from tlsgate.config.flags import eab_key, from_flags, parse_duration, parse_listen
from tlsgate.config.model import (
    CHALLENGE_TYPES,
    CLIENT_AUTH_MODES,
    DEFAULT_HSTS_MAX_AGE,
    AcmeSettings,
    ClientAuth,
    Config,
    HstsPolicy,
    Limits,
    ListenAddress,
    ServerConfig,
    SiteConfig,
    Timeouts,
    TlsFiles,
    Upstream,
)
from tlsgate.config.parse import load, loads

__all__ = [
    "CHALLENGE_TYPES",
    "CLIENT_AUTH_MODES",
    "DEFAULT_HSTS_MAX_AGE",
    "AcmeSettings",
    "ClientAuth",
    "Config",
    "HstsPolicy",
    "Limits",
    "ListenAddress",
    "ServerConfig",
    "SiteConfig",
    "Timeouts",
    "TlsFiles",
    "Upstream",
    "eab_key",
    "from_flags",
    "load",
    "loads",
    "parse_duration",
    "parse_listen",
]

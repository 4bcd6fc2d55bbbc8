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
    ticket_rotation = "12h"           # session-ticket key period ("30m", "1d", seconds); "off"

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

    [[site]]
    hosts = ["example.com", "*.example.com"]
    upstream = ["http://127.0.0.1:8000", "http://127.0.0.1:8001"]
    balance = "round_robin"           # or "least_conn"
    hsts = true                       # true / false / a max-age in seconds
    via = false

    [site.tls]                        # optional: a file pair instead of the internal CA
    cert = "/etc/ssl/example/fullchain.pem"
    key = "/etc/ssl/example/key.pem"
    ocsp_stapling = true              # staple when the certificate names a responder

    [[site]]
    hosts = "api.example.net"
    upstream = "[::1]:9000"           # "host:port" is short for "http://host:port"
    hsts = { max_age = 31536000, include_subdomains = true, preload = false }

Relative paths (``state``, ``access_log``, ``cert``, ``key``) are relative to the directory of the
config file, not to wherever the server happens to be started, and ``~`` means the home directory.
Whether the files exist is checked when the server starts, where the error can say what it was
trying to do. Port 0 in a listen address asks the kernel for any free port, which only tests want.

Unknown keys are errors, never ignored: a misspelt ``trusted_proxy`` that silently kept the default
would trust nobody's ``X-Forwarded-For`` (or, misspelt the other way, everybody's).
"""

from __future__ import annotations

from tlsgate.config.flags import from_flags, parse_listen
from tlsgate.config.model import (
    DEFAULT_HSTS_MAX_AGE,
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
    "DEFAULT_HSTS_MAX_AGE",
    "Config",
    "HstsPolicy",
    "Limits",
    "ListenAddress",
    "ServerConfig",
    "SiteConfig",
    "Timeouts",
    "TlsFiles",
    "Upstream",
    "from_flags",
    "load",
    "loads",
    "parse_listen",
]

"""What ``tlsgate tunnel`` is told to do: the target URL, the name to verify, where to listen.

Parsed and checked before anything listens, so a typo fails with the option's name; the relay
(:mod:`tlsgate.client.tunnel`) only ever sees a valid :class:`TunnelConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from tlsgate.errors import ConfigError, InvalidIdentity
from tlsgate.pki.names import parse_host

__all__ = ["Target", "TunnelConfig", "parse_server_name", "parse_target"]


@dataclass(frozen=True)
class Target:
    """``--to https://HOST[:PORT]``: where requests are meant for."""

    host: str  # lower-case name or address literal (IPv6 without brackets)
    port: int
    authority: str  # the Host header: host[:port] as a client would write it

    def __str__(self) -> str:
        return self.authority if self.port != 443 else f"{self.authority}:443"


def _host(text: str, what: str) -> str:
    try:
        return parse_host(text)
    except InvalidIdentity as exc:
        raise ConfigError(f"{what}: {exc}") from None


def parse_server_name(text: str) -> str:
    """``--server-name``: a DNS name or an address literal, what the certificate must name."""
    return _host(text[1:-1] if text.startswith("[") and text.endswith("]") else text, text)


def parse_target(url: str) -> Target:
    """An ``https://`` URL with a host and optional port, nothing else (the tunnel forwards
    whatever path the local client asks for)."""
    try:
        parts = urlsplit(url)
        port = parts.port or 443
    except ValueError as exc:
        raise ConfigError(f"--to {url}: {exc}") from None
    if parts.scheme != "https":
        raise ConfigError(f"--to {url}: give https://HOST[:PORT] (the tunnel speaks TLS to it)")
    if not parts.hostname or parts.username is not None or parts.password is not None:
        raise ConfigError(f"--to {url}: give https://HOST[:PORT]")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(f"--to {url}: no path or query; local clients choose the path")
    host = _host(parts.hostname, "--to")
    shown = f"[{host}]" if ":" in host else host
    authority = shown if port == 443 else f"{shown}:{port}"
    return Target(host, port, authority)


@dataclass(frozen=True)
class TunnelConfig:
    listen_host: str
    listen_port: int
    target: Target
    #: where to dial (``--connect``); the target's host is still the name verified and sent
    connect_host: str
    connect_port: int
    #: SNI and the name checked on the server's certificate (``--server-name``; else the host)
    server_name: str
    tcp: bool = False
    connect_timeout: float = 10.0
    handshake_timeout: float = 10.0
    #: a local keep-alive connection waits this long for its next request
    idle_timeout: float = 120.0
    #: SIGTERM: connections in the middle of something get this long to finish
    drain_timeout: float = 5.0

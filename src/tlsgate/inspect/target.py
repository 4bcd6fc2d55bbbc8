"""What to check: ``HOST[:PORT]``, ``[v6]:PORT``, a pasted ``https://`` URL, or a file.

People paste whatever their browser showed them, so a URL is accepted and reduced to its host and
port; the name checked against the certificate (and sent as SNI) defaults to the host, and the
address connected to can be pinned separately (``connect``), like ``curl --resolve``, which is how
one server is checked under many names without DNS.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from tlsgate.errors import ConfigError, InvalidIdentity
from tlsgate.pki.names import parse_host

__all__ = ["DEFAULT_PORT", "Endpoint", "looks_like_file", "parse_endpoint"]

DEFAULT_PORT = 443
_PORT = re.compile(r"[0-9]{1,5}")


@dataclass(frozen=True)
class Endpoint:
    host: str  # a DNS name or an IP address literal, canonical
    port: int = DEFAULT_PORT
    servername: str | None = None  # SNI and the name verified; None: the host (if a DNS name)
    connect: tuple[str, int] | None = None  # dial this instead of host:port

    @property
    def display(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def dial(self) -> tuple[str, int]:
        return self.connect or (self.host, self.port)

    @property
    def name(self) -> str | None:
        """The name a browser would verify: SNI if given, else the host (an IP is verified too)."""
        return self.servername or self.host

    @property
    def sni(self) -> str | None:
        """SNI is never an IP address (RFC 6066 §3)."""
        name = self.name
        if name is None or _is_ip(name):
            return None
        return name


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _split(text: str) -> tuple[str, str | None]:
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ConfigError(f"{text!r}: missing ']' after the IPv6 address")
        rest = text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ConfigError(f"{text!r}: expected ':PORT' after ']'")
        return text[1:end], rest[1:] if rest else None
    if text.count(":") > 1:
        try:
            ipaddress.IPv6Address(text)
        except ValueError:
            raise ConfigError(
                f"{text!r}: an IPv6 address goes in brackets, like [::1]:443"
            ) from None
        return text, None
    host, colon, port = text.partition(":")
    return host, port if colon else None


def _host(text: str, original: str) -> str:
    try:
        return parse_host(text)
    except InvalidIdentity as exc:
        raise ConfigError(f"{original!r} is not a host name: {exc}") from None


def _port(text: str, original: str) -> int:
    if not _PORT.fullmatch(text) or not 0 < int(text) < 65536:
        raise ConfigError(f"{original!r}: port {text!r} is not a number from 1 to 65535")
    return int(text)


def parse_endpoint(
    text: str, *, servername: str | None = None, connect: str | None = None
) -> Endpoint:
    """Parse what a person typed; raises :class:`ConfigError` naming what is wrong."""
    original = text
    text = text.strip()
    if not text:
        raise ConfigError("no host given: expected HOST[:PORT]")
    default_port = DEFAULT_PORT
    if "://" in text:
        url = urlsplit(text)
        if url.scheme not in ("https", "http"):
            raise ConfigError(f"{original!r}: only https:// URLs can be checked")
        text = url.netloc.rpartition("@")[2]
    host_text, port_text = _split(text)
    host = _host(host_text, original)
    port = _port(port_text, original) if port_text is not None else default_port
    sni = None
    if servername is not None:
        sni = _host(servername, servername)
    dial = None
    if connect is not None:
        connect_host, connect_port = _split(connect.strip())
        dial = (
            _host(connect_host, connect),
            _port(connect_port, connect) if connect_port is not None else port,
        )
    return Endpoint(host, port, sni, dial)


def looks_like_file(text: str) -> bool:
    """``check cert.pem`` vs ``check example.com``: an existing path or a PEM/DER suffix wins."""
    if "://" in text:
        return False
    if text.endswith((".pem", ".crt", ".cer", ".der")) or "/" in text:
        return True
    return Path(text).is_file()

"""Where the ACME validator connects: ``--resolve`` rules first, then DNS.

A test or lab setup has names like ``a.example.test`` that no public DNS knows, so the operator
pins them (``*.example.test=127.0.0.1``, exactly like Pebble's and curl's ``--resolve``); any
other name is looked up through the configured DNS server, the same one dns-01 asks for TXT
records, so that one stub server can drive every challenge type in an end-to-end test.

The rules are pure data (:func:`parse_resolve_rule`, :meth:`Resolver.match`) so they can be
checked when the configuration is read; only :meth:`Resolver.addresses` and :meth:`Resolver.txt`
do I/O, each bounded by a timeout. A name that resolves nowhere, or only to addresses nobody can
connect to (``0.0.0.0``, multicast), raises :class:`ResolveError`, which the validator reports as
the RFC 8555 ``dns`` error: validation must never fall back to "try something anyway".
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver

from tlsgate.errors import ConfigError, InvalidIdentity, TlsgateError
from tlsgate.pki.names import parse_dns_name

__all__ = [
    "DnsServer",
    "ResolveError",
    "ResolveRule",
    "Resolver",
    "parse_dns_server",
    "parse_resolve_rule",
    "parse_resolve_rules",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class ResolveError(TlsgateError):
    """A name has no address (or TXT record) we may use; the message says what DNS answered."""


@dataclass(frozen=True)
class ResolveRule:
    """``pattern=address``: ``a.example.test`` (exactly), ``*.example.test`` (every name below
    it, at any depth, not the name itself) or ``*`` (every name)."""

    pattern: str
    address: IPAddress

    def matches(self, name: str) -> bool:
        if self.pattern == "*":
            return True
        if self.pattern.startswith("*."):
            return name.endswith(self.pattern[1:])
        return name == self.pattern

    def __str__(self) -> str:
        return f"{self.pattern}={self.address}"


@dataclass(frozen=True)
class DnsServer:
    """The DNS server the validator asks (``--dns-resolver HOST:PORT``)."""

    host: str
    port: int = 53

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def _usable(address: IPAddress) -> bool:
    """False for addresses a connection can never reach a challenge server at."""
    if address.is_unspecified or address.is_multicast:
        return False
    return address != ipaddress.IPv4Address("255.255.255.255")


def _address(text: str) -> IPAddress:
    """An IP literal (IPv6 with or without brackets); raises ValueError with the reason."""
    bare = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        address = ipaddress.ip_address(bare)
    except ValueError:
        raise ValueError(f"{text!r} is not an IPv4 or IPv6 address") from None
    if not _usable(address):
        raise ValueError(f"{address} cannot be connected to (unspecified or multicast)")
    return address


def parse_resolve_rule(text: str) -> ResolveRule:
    """``PATTERN=ADDR`` as written on the command line; ConfigError says what is wrong."""
    pattern, equals, address = text.strip().partition("=")
    usage = "expected PATTERN=ADDRESS, like *.example.test=127.0.0.1 or a.example.test=::1"
    if not equals or not pattern.strip() or not address.strip():
        raise ConfigError(f"resolve rule {text!r}: {usage}")
    try:
        parsed = _address(address.strip())
    except ValueError as exc:
        raise ConfigError(f"resolve rule {text!r}: {exc}") from None
    pattern = pattern.strip()
    if pattern != "*":
        try:
            pattern = parse_dns_name(pattern, allow_wildcard=True)
        except InvalidIdentity as exc:
            raise ConfigError(f"resolve rule {text!r}: {exc}") from None
    return ResolveRule(pattern, parsed)


def parse_resolve_rules(texts: Iterable[str]) -> tuple[ResolveRule, ...]:
    return tuple(parse_resolve_rule(t) for t in texts)


def parse_dns_server(text: str) -> DnsServer:
    """``HOST:PORT``, ``[v6]:PORT`` or a bare address (port 53); HOST must be an IP literal,
    because the validator must not need DNS to find its DNS server."""
    value = text.strip()
    if value.startswith("["):
        host, bracket, rest = value[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ("" if bracket and not rest else None)
    elif value.count(":") == 1:
        host, _, port = value.partition(":")
    else:
        host, port = value, ""
    if port is None or (port and not port.isdigit()) or not 0 < int(port or 53) < 65536:
        raise ConfigError(f"DNS resolver {text!r}: expected HOST:PORT, like 127.0.0.1:8053")
    try:
        address = _address(host)
    except ValueError as exc:
        raise ConfigError(f"DNS resolver {text!r}: {exc}") from None
    return DnsServer(str(address), int(port or 53))


class Resolver:
    """Identifier -> addresses (rules, then A/AAAA), and TXT lookups, with bounded timeouts.

    Without a configured :class:`DnsServer` the system's resolver configuration is used. No
    answers are cached: a retry after the client fixed its DNS must see the fix.
    """

    def __init__(
        self,
        rules: Sequence[ResolveRule] = (),
        dns_server: DnsServer | None = None,
        *,
        timeout: float = 5.0,
    ) -> None:
        self.rules = tuple(rules)
        self.dns_server = dns_server
        self.timeout = timeout

    def match(self, name: str) -> IPAddress | None:
        """The address of the first rule that covers ``name`` (canonical form), if any."""
        for rule in self.rules:
            if rule.matches(name):
                return rule.address
        return None

    def _server_name(self) -> str:
        return f"DNS server {self.dns_server}" if self.dns_server else "the system DNS resolver"

    def _dns(self) -> dns.asyncresolver.Resolver:
        if self.dns_server is None:
            try:
                resolver = dns.asyncresolver.Resolver(configure=True)
            except dns.exception.DNSException as exc:
                raise ResolveError(f"no DNS resolver is configured ({exc})") from None
        else:
            resolver = dns.asyncresolver.Resolver(configure=False)
            resolver.nameservers = [self.dns_server.host]
            resolver.port = self.dns_server.port
        resolver.timeout = self.timeout
        resolver.lifetime = self.timeout
        return resolver

    async def _query(self, name: str, rdtype: str) -> list[str]:
        """Texts of the answer's records; ResolveError worded as "what DNS answered"."""
        qname = dns.name.from_text(name)
        resolver = self._dns()
        try:
            async with asyncio.timeout(self.timeout + 1.0):  # belt and braces over `lifetime`
                answer = await resolver.resolve(qname, rdtype, search=False)
        except dns.resolver.NXDOMAIN:
            raise ResolveError(
                f"{name} does not exist (NXDOMAIN from {self._server_name()})"
            ) from None
        except dns.resolver.NoAnswer:
            return []
        except (dns.exception.Timeout, TimeoutError):
            raise ResolveError(
                f"{self._server_name()} did not answer the {rdtype} query for {name} "
                f"within {self.timeout:g} s"
            ) from None
        except dns.resolver.NoNameservers:
            raise ResolveError(
                f"{self._server_name()} failed the {rdtype} query for {name} (SERVFAIL or REFUSED)"
            ) from None
        except dns.exception.DNSException as exc:
            raise ResolveError(f"{rdtype} query for {name} failed: {exc}") from None
        if rdtype == "TXT":
            return [b"".join(r.strings).decode("utf-8", "replace") for r in answer]
        return [r.to_text() for r in answer]

    async def addresses(self, identifier: str) -> tuple[str, ...]:
        """Addresses to try for ``identifier``, IPv6 first (like Boulder), never empty.

        An IP literal (an RFC 8738 identifier) is its own address.
        """
        try:
            literal = ipaddress.ip_address(identifier)
        except ValueError:
            pass
        else:
            if not _usable(literal):
                raise ResolveError(f"{literal} cannot be connected to (unspecified or multicast)")
            return (str(literal),)
        try:
            name = parse_dns_name(identifier, allow_wildcard=False)
        except InvalidIdentity as exc:
            raise ResolveError(f"cannot resolve {identifier!r}: {exc}") from None
        pinned = self.match(name)
        if pinned is not None:
            return (str(pinned),)
        results = await asyncio.gather(
            self._query(name, "AAAA"), self._query(name, "A"), return_exceptions=True
        )
        found: list[IPAddress] = []
        errors: list[BaseException] = []
        for result in results:
            if isinstance(result, BaseException):
                errors.append(result)
            else:
                found.extend(ipaddress.ip_address(text) for text in result)
        if not found:
            for error in errors:
                if not isinstance(error, ResolveError):
                    raise error
            if errors:
                raise errors[0]
            raise ResolveError(f"{name} has no A or AAAA records ({self._server_name()})")
        usable = [a for a in found if _usable(a)]
        if not usable:
            shown = ", ".join(str(a) for a in found)
            raise ResolveError(f"{name} resolves only to addresses nobody can reach ({shown})")
        return tuple(str(a) for a in usable)

    async def txt(self, name: str) -> list[str]:
        """TXT values of ``name`` (each record's strings joined, as RFC 7208 and Boulder do)."""
        return await self._query(name, "TXT")

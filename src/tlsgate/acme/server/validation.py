"""Challenge validation for the ACME server: http-01, tls-alpn-01 and dns-01.

The ACME server proves that an account controls a name by connecting to that name (or asking DNS
about it) and comparing what it finds with the key authorization. :func:`validate` does one
challenge and returns a :class:`ValidationResult` instead of raising, because a failed
validation is an ordinary outcome that becomes the challenge's ``error`` object; its
:class:`ErrorType` is the RFC 8555 problem type and its detail says in plain words what was seen,
since that text is all the client's operator gets to debug their setup with.

Failures are retried (``attempts``, ``retry_pause``) because clients often publish the response
a moment after telling the server to look; every network step has its own timeout and the whole
validation has an overall one. Which error type is used for what:

* ``dns``: the name (or ``_acme-challenge`` name) does not resolve, DNS timed out, or dns-01 TXT
  records are missing or wrong;
* ``connection``: TCP connect failed, or the peer did not answer within the timeout;
* ``tls``: a TLS handshake failed, or the tls-alpn-01 peer did not negotiate ``acme-tls/1`` or
  presented a certificate that is not the RFC 8737 challenge certificate;
* ``unauthorized``: the HTTP status was not 200, a redirect was refused, or the challenge type
  cannot validate this kind of identifier (http-01 for a wildcard);
* ``incorrectResponse``: the http-01 body is not the key authorization (or is far too large).
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from tlsgate.acme.jose import dns01_txt_value
from tlsgate.acme.server.resolve import (
    DnsServer,
    ResolveError,
    Resolver,
    ResolveRule,
    parse_dns_server,
    parse_resolve_rules,
)
from tlsgate.acme.tls_alpn import (
    ACME_IDENTIFIER_OID,
    ACME_TLS_ALPN,
    ChallengeCertificateError,
    alpn_challenge_certificate,
    challenge_client_context,
    check_challenge_certificate,
    ip_literal,
)
from tlsgate.errors import InvalidIdentity, TlsgateError
from tlsgate.pki.names import parse_dns_name

__all__ = [
    "ACME_IDENTIFIER_OID",
    "ACME_TLS_ALPN",
    "ChallengeType",
    "ErrorType",
    "UnsupportedChallenge",
    "ValidationConfig",
    "ValidationResult",
    "alpn_challenge_certificate",
    "validate",
]

_USER_AGENT = "tlsgate-acme-validator"
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


class ChallengeType(StrEnum):
    HTTP_01 = "http-01"
    TLS_ALPN_01 = "tls-alpn-01"
    DNS_01 = "dns-01"


class ErrorType(StrEnum):
    """The RFC 8555 section 6.7 problem types a validation can end with (short names)."""

    CONNECTION = "connection"
    DNS = "dns"
    TLS = "tls"
    INCORRECT_RESPONSE = "incorrectResponse"
    UNAUTHORIZED = "unauthorized"

    @property
    def urn(self) -> str:
        return f"urn:ietf:params:acme:error:{self.value}"


class UnsupportedChallenge(TlsgateError):
    """The caller asked for a challenge type this server does not offer (a bug upstream)."""


@dataclass(frozen=True)
class ValidationConfig:
    """The ``tlsgate ca serve`` options that steer validation (Pebble's, plus timeouts).

    ``http_01_port``/``tls_alpn_01_port`` replace 80/443 for test setups; redirects of http-01
    are followed to http on 80 or ``http_01_port`` and to https on 443 or ``tls_alpn_01_port``.
    """

    http_01_port: int = 80
    tls_alpn_01_port: int = 443
    resolve: tuple[ResolveRule, ...] = ()
    dns_resolver: DnsServer | None = None
    attempts: int = 3
    retry_pause: float = 2.0
    attempt_timeout: float = 10.0
    dns_timeout: float = 5.0
    timeout: float = 60.0
    max_redirects: int = 10
    body_limit: int = 8192

    @classmethod
    def from_options(
        cls,
        *,
        http_01_port: int = 80,
        tls_alpn_01_port: int = 443,
        resolve: Iterable[str] = (),
        dns_resolver: str | None = None,
    ) -> ValidationConfig:
        """Build from the command-line strings; ConfigError names the bad rule or address.

        Timeouts and retries keep their defaults (tests change them with dataclasses.replace).
        """
        return cls(
            http_01_port=http_01_port,
            tls_alpn_01_port=tls_alpn_01_port,
            resolve=parse_resolve_rules(resolve),
            dns_resolver=parse_dns_server(dns_resolver) if dns_resolver else None,
        )

    def resolver(self) -> Resolver:
        return Resolver(self.resolve, self.dns_resolver, timeout=self.dns_timeout)


@dataclass(frozen=True)
class ValidationResult:
    """``error is None`` means valid; otherwise ``detail`` says what the server saw."""

    error: ErrorType | None
    detail: str
    attempts: int = field(default=1)

    @property
    def valid(self) -> bool:
        return self.error is None

    @property
    def status(self) -> str:
        """The challenge status this result leads to (RFC 8555 section 7.1.6)."""
        return "valid" if self.error is None else "invalid"

    @property
    def problem_type(self) -> str | None:
        return None if self.error is None else self.error.urn


class _Failure(TlsgateError):
    """One attempt's failure; ``retry=False`` when trying again cannot change the answer."""

    def __init__(self, error: ErrorType, detail: str, *, retry: bool = True) -> None:
        super().__init__(detail)
        self.error = error
        self.detail = detail
        self.retry = retry


def _reason(error: OSError) -> str:
    """Say "Connection refused", not asyncio's "Connect call failed ('127.0.0.1', 80)"."""
    return os.strerror(error.errno) if error.errno else (error.strerror or str(error))


async def _addresses(resolver: Resolver, host: str) -> tuple[str, ...]:
    try:
        return await resolver.addresses(host)
    except ResolveError as exc:
        raise _Failure(ErrorType.DNS, str(exc)) from None


# --- http-01 -------------------------------------------------------------------------------


class _PinnedResolver(AbstractResolver):
    """Hands aiohttp the addresses :class:`Resolver` already found, so a DNS failure is reported
    as ``dns`` (not as a connection error) and aiohttp itself never touches DNS."""

    def __init__(self) -> None:
        self.pinned: dict[str, tuple[str, ...]] = {}

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host not in self.pinned:
            raise OSError(f"{host} was not resolved by the validator")
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in self.pinned[host]
        ]

    async def close(self) -> None:
        return None


def _redirect_tls_context() -> ssl.SSLContext:
    """TLS for an http-01 redirect to https: no certificate verification, as Boulder does.

    The challenge began in plain HTTP, so whoever answered there could already send any body;
    authenticating the server that plain-HTTP answer pointed to cannot add assurance. What
    proves control is the body alone.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _redirect_target(current: URL, location: str | None, config: ValidationConfig) -> URL:
    """Where a redirect goes, if validation may follow it there (http/https, allowed ports)."""
    refuse = f"{current} redirected to {location!r}, which"
    if not location:
        raise _Failure(ErrorType.UNAUTHORIZED, f"{current} redirected without a Location")
    try:
        target = current.join(URL(location))
    except ValueError:
        raise _Failure(ErrorType.UNAUTHORIZED, f"{refuse} is not a URL") from None
    ports = {"http": {80, config.http_01_port}, "https": {443, config.tls_alpn_01_port}}
    if target.scheme not in ports:
        raise _Failure(ErrorType.UNAUTHORIZED, f"{refuse} is neither http nor https")
    if not target.host:
        raise _Failure(ErrorType.UNAUTHORIZED, f"{refuse} names no host")
    try:
        ipaddress.ip_address(target.host)
    except ValueError:
        pass
    else:
        raise _Failure(ErrorType.UNAUTHORIZED, f"{refuse} is an IP address, not a name")
    if target.port not in ports[target.scheme]:
        allowed = " or ".join(str(p) for p in sorted(ports[target.scheme]))
        raise _Failure(ErrorType.UNAUTHORIZED, f"{refuse} is not on port {allowed}")
    return target


async def _read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes | None:
    """The body, or None once it exceeds ``limit`` (never reads more than ``limit + 1``)."""
    if response.content_length is not None and response.content_length > limit:
        return None
    data = bytearray()
    while len(data) <= limit:
        chunk = await response.content.read(limit + 1 - len(data))
        if not chunk:
            return bytes(data)
        data += chunk
    return None


def _shown(body: bytes) -> str:
    text = body[:80].decode("utf-8", "replace")
    return repr(text) + ("..." if len(body) > 80 else "")


async def _http01(
    name: str, token: str, key_authorization: str, config: ValidationConfig, resolver: Resolver
) -> str:
    if name.startswith("*."):
        detail = "http-01 cannot validate a wildcard name (RFC 8555 section 7.1.3); use dns-01"
        raise _Failure(ErrorType.UNAUTHORIZED, detail, retry=False)
    url = URL.build(
        scheme="http",
        host=name,
        port=config.http_01_port,
        path=f"/.well-known/acme-challenge/{token}",
    )
    first = url
    pins = _PinnedResolver()
    connector = aiohttp.TCPConnector(resolver=pins, use_dns_cache=False, force_close=True)
    timeout = aiohttp.ClientTimeout(total=config.attempt_timeout)
    headers = {"User-Agent": _USER_AGENT, "Accept": "*/*"}
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, headers=headers, auto_decompress=False
    ) as session:
        for _ in range(config.max_redirects + 1):
            assert url.host is not None  # URL.build and _redirect_target guarantee it
            pins.pinned[url.host] = await _addresses(resolver, url.host)
            where = f"{url} ({', '.join(pins.pinned[url.host])})"
            tls = _redirect_tls_context() if url.scheme == "https" else None
            try:
                async with session.get(url, allow_redirects=False, ssl=tls or True) as response:
                    if response.status in _REDIRECTS:
                        url = _redirect_target(url, response.headers.get("Location"), config)
                        continue
                    if response.status != 200:
                        raise _Failure(ErrorType.UNAUTHORIZED, f"{url} answered {response.status}")
                    body = await _read_capped(response, config.body_limit)
            except aiohttp.ClientSSLError as exc:
                raise _Failure(ErrorType.TLS, f"TLS with {where} failed: {exc}") from None
            except aiohttp.ClientConnectorError as exc:
                reason = _reason(exc.os_error)
                raise _Failure(
                    ErrorType.CONNECTION, f"cannot connect to {where}: {reason}"
                ) from None
            except TimeoutError:
                raise _Failure(
                    ErrorType.CONNECTION,
                    f"{where} did not answer within {config.attempt_timeout:g} s",
                ) from None
            except aiohttp.ClientError as exc:
                raise _Failure(ErrorType.CONNECTION, f"{where}: {exc}") from None
            if body is None:
                raise _Failure(
                    ErrorType.INCORRECT_RESPONSE,
                    f"{url} answered with more than {config.body_limit} bytes; "
                    "a key authorization is under 200",
                )
            if body.rstrip() != key_authorization.encode("utf-8"):
                raise _Failure(
                    ErrorType.INCORRECT_RESPONSE,
                    f"{url} answered {_shown(body)}, not the key authorization "
                    f"{key_authorization!r}",
                )
            via = "" if url == first else f" (redirected from {first})"
            return f"{url}{via} answered the key authorization"
    raise _Failure(
        ErrorType.UNAUTHORIZED, f"{first} redirected more than {config.max_redirects} times"
    )


# --- tls-alpn-01 ---------------------------------------------------------------------------


async def _alpn_handshake(address: str, port: int, name: str, timeout: float) -> tuple[str, bytes]:
    """(negotiated ALPN or "", peer certificate DER) of one bounded handshake.

    SNI is the name; for an IP identifier, its reverse-DNS name (RFC 8738 section 6).
    """
    where = f"{name} at {address}:{port}"
    literal = ip_literal(name)
    sni = literal.reverse_pointer if literal is not None else name
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(
                address,
                port,
                ssl=challenge_client_context(),
                server_hostname=sni,
                ssl_handshake_timeout=timeout,
            )
    except TimeoutError:
        detail = f"{where} did not complete a TLS handshake within {timeout:g} s"
        raise _Failure(ErrorType.CONNECTION, detail) from None
    except ssl.SSLError as exc:
        raise _Failure(ErrorType.TLS, f"TLS handshake with {where} failed: {exc}") from None
    except OSError as exc:
        reason = _reason(exc)
        raise _Failure(ErrorType.CONNECTION, f"cannot connect to {where}: {reason}") from None
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        alpn = ssl_object.selected_alpn_protocol() or ""
        der = ssl_object.getpeercert(binary_form=True) or b""
    finally:
        writer.close()
        try:
            async with asyncio.timeout(1.0):
                await writer.wait_closed()
        except (OSError, TimeoutError):
            writer.transport.abort()
    return alpn, der


async def _tls_alpn01(
    name: str, token: str, key_authorization: str, config: ValidationConfig, resolver: Resolver
) -> str:
    if name.startswith("*."):
        detail = "tls-alpn-01 cannot validate a wildcard name (RFC 8737 section 3); use dns-01"
        raise _Failure(ErrorType.UNAUTHORIZED, detail, retry=False)
    addresses = await _addresses(resolver, name)
    port = config.tls_alpn_01_port
    for index, address in enumerate(addresses):
        try:
            alpn, der = await _alpn_handshake(address, port, name, config.attempt_timeout)
            break
        except _Failure as failure:  # like Boulder: try the next address if this one is down
            if failure.error is not ErrorType.CONNECTION or index == len(addresses) - 1:
                raise
    where = f"{name} at {address}:{port}"
    if alpn != ACME_TLS_ALPN:
        shown = repr(alpn) if alpn else "no protocol"
        raise _Failure(ErrorType.TLS, f"{where} negotiated {shown}, not {ACME_TLS_ALPN!r}")
    if not der:
        raise _Failure(ErrorType.TLS, f"{where} presented no certificate")
    try:
        check_challenge_certificate(der, name, key_authorization)
    except ChallengeCertificateError as exc:
        raise _Failure(ErrorType.TLS, f"{where}: {exc}") from None
    return f"{where} presented the acme-tls/1 challenge certificate"


# --- dns-01 --------------------------------------------------------------------------------


async def _dns01(
    name: str, token: str, key_authorization: str, config: ValidationConfig, resolver: Resolver
) -> str:
    if ip_literal(name) is not None:
        detail = "dns-01 cannot validate an IP address (RFC 8738 section 7); use http-01"
        raise _Failure(ErrorType.UNAUTHORIZED, detail, retry=False)
    record = "_acme-challenge." + name.removeprefix("*.")
    expected = dns01_txt_value(key_authorization)
    try:
        values = await resolver.txt(record)
    except ResolveError as exc:
        raise _Failure(ErrorType.DNS, str(exc)) from None
    if expected in values:
        return f"TXT {record} holds {expected}"
    if not values:
        raise _Failure(ErrorType.DNS, f"{record} has no TXT records")
    shown = ", ".join(repr(v[:80]) for v in values[:5])
    raise _Failure(ErrorType.DNS, f"TXT records of {record} are {shown}; none is {expected!r}")


_Check = Callable[[str, str, str, ValidationConfig, Resolver], Awaitable[str]]
_CHECKS: dict[ChallengeType, _Check] = {
    ChallengeType.HTTP_01: _http01,
    ChallengeType.TLS_ALPN_01: _tls_alpn01,
    ChallengeType.DNS_01: _dns01,
}


async def validate(
    challenge_type: str,
    identifier: str,
    token: str,
    key_authorization: str,
    config: ValidationConfig,
) -> ValidationResult:
    """Check one challenge, with retries and an overall timeout.

    ``identifier`` is a DNS name (``*.x`` for a wildcard, dns-01 only) or an IP address (RFC
    8738; http-01 and tls-alpn-01 only); the caller's identifier policy has already vetted it.

    Never raises for anything the client's side did; :class:`UnsupportedChallenge` only for a
    ``challenge_type`` other than http-01, tls-alpn-01 and dns-01.
    """
    try:
        check = _CHECKS[ChallengeType(challenge_type)]
    except ValueError:
        raise UnsupportedChallenge(f"unknown challenge type {challenge_type!r}") from None
    literal = ip_literal(identifier)
    try:
        name = str(literal) if literal else parse_dns_name(identifier, allow_wildcard=True)
    except InvalidIdentity as exc:
        return ValidationResult(ErrorType.UNAUTHORIZED, f"cannot validate {identifier!r}: {exc}")
    resolver = config.resolver()
    last: _Failure | None = None
    attempt = 0
    try:
        async with asyncio.timeout(config.timeout):
            while attempt < max(1, config.attempts):
                if attempt:
                    await asyncio.sleep(config.retry_pause)
                attempt += 1
                try:
                    detail = await check(name, token, key_authorization, config, resolver)
                except _Failure as failure:
                    last = failure
                    if not failure.retry:
                        break
                else:
                    return ValidationResult(None, detail, attempt)
    except TimeoutError:
        if last is None:
            last = _Failure(
                ErrorType.CONNECTION,
                f"{challenge_type} validation of {identifier} did not finish within "
                f"{config.timeout:g} s",
            )
    assert last is not None
    return ValidationResult(last.error, last.detail, attempt)

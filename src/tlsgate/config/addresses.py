"""Address checks: listen addresses, upstream URLs, host names and trusted networks.

Shared by the file and the flags, so ``--to`` and ``upstream =`` accept exactly the same forms
and fail with the same words; listen addresses are also checked against each other (and against
the defaults), because a clash would otherwise surface at bind time, far from its line.
"""

from __future__ import annotations

import ipaddress
import re

from tlsgate.config.messages import At, show
from tlsgate.config.model import ListenAddress, ServerConfig, Upstream
from tlsgate.config.values import _items
from tlsgate.errors import InvalidIdentity
from tlsgate.pki.names import parse_dns_name

_PORT = re.compile(r"[0-9]+")


def _split_host_port(text: str) -> tuple[str, bool, str | None]:
    """``host:port`` / ``[v6]:port`` / ``host`` -> (host, bracketed, port or None).

    Raises ValueError with the reason, worded for the person who wrote the address.
    """
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError("missing ']' after the IPv6 address")
        rest = text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError("expected ':PORT' after ']'")
        return text[1:end], True, rest[1:] if rest else None
    if text.count(":") > 1:
        raise ValueError("an IPv6 address goes in brackets, like [::1]:8443")
    host, colon, port = text.partition(":")
    return host, False, port if colon else None


def _host(host: str, bracketed: bool) -> str:
    """An address literal or a DNS name in canonical form; raises ValueError with the reason."""
    if bracketed:
        try:
            return str(ipaddress.IPv6Address(host))
        except ValueError:
            raise ValueError(f"{host!r} in brackets is not an IPv6 address") from None
    try:
        return str(ipaddress.IPv4Address(host))
    except ValueError:
        pass
    try:
        return parse_dns_name(host, allow_wildcard=False)
    except InvalidIdentity as exc:
        raise ValueError(str(exc)) from None


def _port(text: str, *, allow_zero: bool) -> int:
    if not _PORT.fullmatch(text):
        raise ValueError(f"port {text!r} is not a number")
    digits = text.lstrip("0") or "0"
    port = int(digits) if len(digits) <= 5 else 65536  # no 4000-digit int() for a typo
    if port > 65535 or (port == 0 and not allow_zero):
        allowed = "0-65535 (0 = any free port)" if allow_zero else "1-65535"
        raise ValueError(f"port {digits} is out of range {allowed}")
    return port


def listen_value(value: object, at: At) -> ListenAddress:
    if not isinstance(value, str):
        raise at.error(f'expected a "HOST:PORT" string, got {show(value)}')
    try:
        host, bracketed, port = _split_host_port(value)
        if port is None:
            raise ValueError("a listen address needs a port: HOST:PORT, [IPv6]:PORT or :PORT")
        number = _port(port, allow_zero=True)
        canonical = "0.0.0.0" if not host and not bracketed else _host(host, bracketed)
    except ValueError as exc:
        raise at.error(f"{show(value)}: {exc}") from None
    return ListenAddress(canonical, number)


def _listens(
    items: list[tuple[object, At]], at: At, *, required: bool
) -> list[tuple[ListenAddress, At]]:
    if required and not items:
        raise at.error("at least one address is required")
    return [(listen_value(value, item_at), item_at) for value, item_at in items]


def _listen_option(value: object, at: At, *, can_disable: bool) -> list[tuple[ListenAddress, At]]:
    if can_disable and value is False:
        return []
    expected = '"HOST:PORT" or a list of them'
    if can_disable:
        expected += " (or false to turn it off)"
    return _listens(_items(value, at, expected), at, required=not can_disable)


def _check_listen_conflicts(
    addresses: list[tuple[ListenAddress, At]], defaults: list[tuple[ListenAddress, At]]
) -> None:
    """Two sockets on one address would fail at bind time, far from the line that caused it.

    Defaults are checked first so that a clash is always reported at the address someone wrote,
    naming the default it collides with, rather than at a line that does not mention it.
    """
    seen: dict[ListenAddress, tuple[At, bool]] = {}
    for address, at, is_default in [(a, w, True) for a, w in defaults] + [
        (a, w, False) for a, w in addresses
    ]:
        if address.port == 0:
            continue  # every port-0 socket gets its own port
        if address in seen:
            first, first_is_default = seen[address]
            if first_is_default:
                raise at.error(
                    f"{address} is already the default of {first.label}; "
                    f"give {first.label} a different value"
                )
            where = f" (line {first.line})" if first.line is not None else ""
            raise at.error(f"{address} is already used by {first.label}{where}")
        seen[address] = (at, is_default)


def _listeners(
    listen: list[tuple[ListenAddress, At]] | None,
    listen_at: At,
    http_listen: list[tuple[ListenAddress, At]] | None,
    http_at: At,
    admin: tuple[ListenAddress, At] | None,
) -> tuple[tuple[ListenAddress, ...], tuple[ListenAddress, ...]]:
    """Fill in the defaults for what was not given (None) and refuse clashes, for both forms."""
    defaults = ServerConfig()
    unset: list[tuple[ListenAddress, At]] = []
    if listen is None:
        unset += [(address, listen_at) for address in defaults.listen]
    if http_listen is None:
        unset += [(address, http_at) for address in defaults.http_listen]
    given = (listen or []) + (http_listen or []) + ([admin] if admin else [])
    _check_listen_conflicts(given, unset)
    return (
        defaults.listen if listen is None else tuple(address for address, _ in listen),
        defaults.http_listen if http_listen is None else tuple(a for a, _ in http_listen),
    )


def _network(value: object, at: At) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    if not isinstance(value, str):
        raise at.error(f"expected an address or CIDR range as a string, got {show(value)}")
    try:
        return ipaddress.ip_network(value, strict=True)
    except ValueError:
        pass
    try:
        loose = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise at.error(
            f"{show(value)} is not an IP address or a CIDR range like 10.0.0.0/8"
        ) from None
    # strict: "10.0.0.1/8" is more likely a typo for one address than a wish for the whole /8.
    raise at.error(f"{show(value)} has host bits set (did you mean {loose}?)")


def _a(scheme: str) -> str:
    """The article for "http..." or "tcp..." ("" gives "an " before a quoted http URL)."""
    if not scheme:
        return "an "
    return f"an {scheme}" if scheme == "http" else f"a {scheme}"


def _upstream(value: object, at: At, scheme: str = "http") -> Upstream:
    """``scheme://host:port`` or ``host:port``; ``scheme`` is the site's: "http" or "tcp"."""
    if not isinstance(value, str):
        raise at.error(f'expected {_a("")}"{scheme}://HOST:PORT" string, got {show(value)}')
    shown = show(value)
    given, sep, rest = value.partition("://")
    h2c = bool(sep) and given.lower() == "h2c" and scheme == "http"
    if h2c:
        given = "http"  # (the same address rules; the connection speaks HTTP/2)
    if sep:
        if given.lower() == "https" and scheme == "http":
            raise at.error(
                f"{shown}: https:// upstreams are not supported yet; "
                "point tlsgate at the backend's plain http:// port"
            )
        if given.lower() != scheme:
            tcp = scheme == "http" and given.lower() == "tcp"
            other = ' (set mode = "tcp" on the site to relay to one)' if tcp else ""
            raise at.error(f"{shown} is not {_a(scheme)}://host:port URL{other}")
    else:
        if value.isdigit():
            raise at.error(
                f"{shown} is not an http://host:port URL (a local port is 127.0.0.1:{value})"
            )
        rest = value
    cut = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, tail = rest[:cut], rest[cut:]
    if tail not in ("", "/"):
        raise at.error(
            f"{shown}: an upstream is only http://host:port, without a path, query or fragment "
            "(requests keep their own path)"
        )
    if "@" in authority:
        raise at.error(f"{shown}: an upstream URL cannot carry a user name or password")
    try:
        host, bracketed, port = _split_host_port(authority)
        if not host:
            raise ValueError("the host is missing")
        canonical = _host(host, bracketed)
        if port is None and scheme == "tcp":
            raise ValueError("a tcp upstream needs its port")
        number = 80 if port is None else _port(port, allow_zero=False)
    except ValueError as exc:
        raise at.error(f"{shown} is not {_a(scheme)}://host:port URL ({exc})") from None
    return Upstream(canonical, number, h2c)


def _upstreams(
    items: list[tuple[object, At]], at: At, *, scheme: str = "http"
) -> tuple[Upstream, ...]:
    if not items:
        raise at.error(f'at least one upstream is required, like "{scheme}://127.0.0.1:8000"')
    out: list[Upstream] = []
    for value, item_at in items:
        upstream = _upstream(value, item_at, scheme)
        if upstream in out:
            raise item_at.error(f"{upstream} is listed twice")
        out.append(upstream)
    if len({u.h2c for u in out}) > 1:
        raise at.error(
            "a site's upstreams all speak one protocol: all http:// or all h2c:// "
            "(make two sites for two kinds of service)"
        )
    return tuple(out)


def _hosts(items: list[tuple[object, At]], at: At) -> list[tuple[str, str, At]]:
    """Canonical names with what was written and where, for the duplicate-site message."""
    if not items:
        raise at.error('at least one host name is required, like "example.com"')
    out: list[tuple[str, str, At]] = []
    for value, item_at in items:
        if not isinstance(value, str):
            raise item_at.error(f"expected a host name as a string, got {show(value)}")
        try:
            ipaddress.ip_address(value.strip().strip("[]"))
        except ValueError:
            pass
        else:
            raise item_at.error(
                f"{show(value)} is an IP address; hosts are DNS names "
                "(TLS clients do not send IP addresses as the server name)"
            )
        try:
            name = parse_dns_name(value)
        except InvalidIdentity as exc:
            raise item_at.error(str(exc)) from None
        if all(name != seen for seen, _, _ in out):
            out.append((name, value, item_at))
    return out

"""The request target's forms (RFC 9112 3.2), reduced to the one a reverse proxy forwards.

A request names its resource in one of four forms: origin-form (``/path?query``, what browsers
send to a server), absolute-form (``http://host/path``, what clients send to a forward proxy,
and what a server must accept), authority-form (``host:port``, for ``CONNECT`` only) and
asterisk-form (``*``, for ``OPTIONS`` only).

The edge forwards origin-form only. RFC 9112 3.2.2 says that for an absolute-form target the
server MUST ignore ``Host`` and use the target's authority, and a proxy forwarding it replaces
``Host`` with that authority: otherwise the upstream gets two authorities that disagree (the
target's and Host's), and whichever one it believes, the edge routed (and checked client
certificates and path rules) by the other. So an absolute-form target is split here into the
origin-form to forward and the authority to route by. Everything else about it is refused
rather than guessed: a scheme other than http/https, userinfo (RFC 9110 4.2.4 says to treat it
as an error), an empty or malformed host, a malformed port, a fragment.

``CONNECT`` (authority-form) is refused before this is reached (501: the edge tunnels to no
authority). ``*`` is accepted for ``OPTIONS`` only and forwarded as it is: the upstream answers
for itself. An ``OPTIONS`` whose absolute-form target has an empty path and no query is
forwarded as ``OPTIONS *`` (RFC 9112 3.2.4).
"""

from __future__ import annotations

import ipaddress
import re

from tlsgate.http.events import RemoteProtocolError

__all__ = ["split_target"]

_ABSOLUTE = re.compile(rb"([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)(.*)", re.DOTALL)
# A host as a DNS name or IPv4 literal (letters, digits, '-', '.', '_'), or a bracketed IPv6
# literal; then an optional port. Percent-encoding and other reg-name characters a site name
# never has are refused: what is routed by, and sent upstream as Host, stays a plain name.
_AUTHORITY = re.compile(rb"(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9._-]+))(?::([0-9]{1,5}))?")
_SCHEMES = frozenset({b"http", b"https"})


def split_target(method: bytes, target: bytes) -> tuple[bytes, bytes | None]:
    """``(target to forward, authority)`` for a target that is not plain origin-form.

    ``authority`` is the absolute-form target's ``host[:port]`` as sent (None for ``*``). Raises
    :class:`RemoteProtocolError` (400) for anything else; the message never echoes the input.
    """
    if target == b"*":
        if method != b"OPTIONS":
            raise RemoteProtocolError("asterisk-form target on a method other than options")
        return target, None
    match = _ABSOLUTE.fullmatch(target)
    if match is None:
        raise RemoteProtocolError("invalid request target")
    scheme, authority, rest = match.groups()
    if scheme.lower() not in _SCHEMES:
        raise RemoteProtocolError("request target scheme is not http or https")
    if b"@" in authority:
        raise RemoteProtocolError("userinfo in the request target")
    host = _AUTHORITY.fullmatch(authority)
    if host is None:
        raise RemoteProtocolError("invalid host in the request target")
    literal, _, port = host.groups()
    if literal is not None:
        try:
            ipaddress.IPv6Address(literal.decode("ascii"))
        except ValueError:
            raise RemoteProtocolError("invalid host in the request target") from None
    if port is not None and not 0 < int(port) <= 65535:
        raise RemoteProtocolError("invalid port in the request target")
    if b"#" in rest:
        raise RemoteProtocolError("fragment in the request target")
    if not rest:
        return (b"*" if method == b"OPTIONS" else b"/"), authority
    return (rest if rest[0] == 47 else b"/" + rest), authority  # 47: "/"; else rest is "?..."

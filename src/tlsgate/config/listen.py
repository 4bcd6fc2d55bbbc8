"""Opening listening sockets, and the one way a failed bind is told to the user.

``serve``, ``ca serve`` and ``tunnel`` all bind before they write anything (a refused command
must not have issued certificates first), and all say the same words when they cannot: a busy
port names the fix, and a privileged port says what to do instead, since "Permission denied" on
:443 alone leaves a new user guessing.
"""

from __future__ import annotations

import errno
import socket
from pathlib import Path

from tlsgate.config.model import ListenAddress
from tlsgate.errors import ConfigError

__all__ = ["bind_listeners", "listen_error", "unprivileged_port_start"]

#: Where Linux says from which port on anyone may listen (1024 unless changed).
_UNPRIVILEGED = Path("/proc/sys/net/ipv4/ip_unprivileged_port_start")


def unprivileged_port_start() -> int:
    try:
        return int(_UNPRIVILEGED.read_text().strip())
    except (OSError, ValueError):
        return 1024


def listen_error(address: str, exc: OSError) -> ConfigError:
    """The error for a failed bind of ``address`` (``HOST:PORT``), with the way out."""
    if exc.errno == errno.EADDRINUSE:
        return ConfigError(
            f"cannot listen on {address}: it is already in use by another process "
            "(stop that one, or choose another port)"
        )
    if exc.errno in (errno.EACCES, errno.EPERM):
        low = unprivileged_port_start()
        return ConfigError(
            f"cannot listen on {address}: permission denied, ports below {low} need "
            f"privileges: use a port of {low} or more, or grant the right to bind them "
            "(setcap cap_net_bind_service=+ep on the Python interpreter, authbind, or "
            "AmbientCapabilities=CAP_NET_BIND_SERVICE in a systemd unit) or run as root"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return ConfigError(f"cannot listen on {address}: no network interface has that address")
    return ConfigError(f"cannot listen on {address}: {exc.strerror or exc}")


def bind_listeners(host: str, port: int, *, backlog: int = 1024) -> list[socket.socket]:
    """Listening sockets on every address ``host`` resolves to (as asyncio's ``start_server``
    would open them), non-blocking, for a server to take over with ``sock=``.

    Raises :class:`ConfigError` (see :func:`listen_error`) and leaves nothing open on failure.
    """
    shown = str(ListenAddress(host, port))
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise ConfigError(f"cannot listen on {shown}: {exc.strerror}") from None
    sockets: list[socket.socket] = []
    seen: set[tuple[int, object]] = set()
    try:
        for family, kind, proto, _, address in infos:
            if (family, address) in seen:
                continue
            seen.add((family, address))
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is fine
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                raise listen_error(shown, exc) from None
            sock.listen(backlog)
            sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets

"""What ``serve`` checks before it writes anything: ports it can have, files it can read.

A refused start must leave the state as it was. ``serve`` creates the state, the internal CA
and the sites' certificates as it starts, so every input that can refuse the start is checked
before that: the listening ports (a probe bind), the client-CA bundles and CRLs, the sites'
certificate and key files, and the ACME CA root. ``serve --client-ca missing.pem`` used to
create a CA and issue a certificate, then fail on the missing file.
"""

from __future__ import annotations

import socket
from pathlib import Path

from tlsgate.config import Config, ListenAddress
from tlsgate.config.listen import listen_error
from tlsgate.errors import ConfigError
from tlsgate.pki.pem import load_certificates
from tlsgate.serve.certificates import read_site_files
from tlsgate.serve.client_trust import file_material
from tlsgate.serve.sites import client_auth_of

__all__ = ["check_free", "preflight"]


def check_free(addresses: tuple[ListenAddress, ...]) -> None:
    """Refuse to start on a port something else listens on, or that this process may not have.

    The listeners use ``SO_REUSEPORT`` (so the workers share them), and Linux lets any other
    ``SO_REUSEPORT`` socket of the same user bind the same port too: a second ``tlsgate serve``
    (or an nginx with ``reuseport``) would silently get half the connections. A probe bind
    without the option fails if anything is bound there.
    """
    for address in addresses:
        if address.port == 0:
            continue
        family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is fine
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                probe.bind((address.host, address.port))
            except OSError as exc:
                raise listen_error(str(address), exc) from None


def _check_pem_roots(path: Path, what: str) -> None:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from None
    load_certificates(data, source=str(path))


def preflight(config: Config) -> None:
    """Everything that can refuse ``serve``'s start, checked without writing anything."""
    server = config.server
    admin = (server.admin_listen,) if server.admin_listen is not None else ()
    check_free((*server.listen, *server.http_listen, *admin))
    for site in config.sites:
        auth = client_auth_of(site)
        if auth is not None and auth.trust:
            file_material(auth)  # reads and parses every bundle and CRL
        if site.tls is not None:
            read_site_files(site)
        if site.acme is not None and site.acme.ca is not None:
            _check_pem_roots(site.acme.ca, "ACME CA root")

"""``tlsgate tunnel``: a local plain port that reaches a service over mutual TLS.

The identity's certificate comes from the internal CA in the state (``--state``), is renewed in
the background, and every new upstream connection presents the newest one. The server is
verified against the internal CA's root (or ``--ca``) and its DNS name (the URL's host, or
``--server-name``) or, with ``--expect-spiffe``, its SPIFFE ID. See
:mod:`tlsgate.client.tunnel` for what is forwarded and how.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tlsgate.cli.state import add_state_options, existing_state
from tlsgate.config import parse_duration, parse_listen
from tlsgate.errors import ConfigError

if TYPE_CHECKING:
    from tlsgate.client.tunnel_config import TunnelConfig

__all__ = ["register"]

log = logging.getLogger("tlsgate.tunnel")


def _logging(quiet: bool) -> None:
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO, format="tlsgate: %(message)s"
    )


def _config(args: argparse.Namespace) -> TunnelConfig:
    from tlsgate.client.tunnel_config import TunnelConfig, parse_server_name, parse_target

    listen = parse_listen(args.listen, "--listen")
    target = parse_target(args.to)
    connect_host, connect_port = target.host, target.port
    if args.connect:
        connect = parse_listen(args.connect, "--connect")
        if connect.port == 0 or args.connect.startswith(":"):
            raise ConfigError(f"--connect {args.connect}: give HOST:PORT to dial")
        connect_host, connect_port = connect.host, connect.port
    server_name = parse_server_name(args.server_name) if args.server_name else target.host
    return TunnelConfig(
        listen_host=listen.host,
        listen_port=listen.port,
        target=target,
        connect_host=connect_host,
        connect_port=connect_port,
        server_name=server_name,
        tcp=args.tcp,
    )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cmd_tunnel(args: argparse.Namespace) -> int:
    from tlsgate.client.context import ReloadingIdentity
    from tlsgate.client.identity import DEFAULT_LIFETIME, canonical_identity, check_lifetime
    from tlsgate.client.tunnel import run_tunnel
    from tlsgate.config.listen import bind_listeners

    _logging(args.quiet)
    config = _config(args)
    lifetime = DEFAULT_LIFETIME
    if args.lifetime is not None:
        lifetime = timedelta(seconds=parse_duration(args.lifetime, "--lifetime"))
    canonical_identity(args.identity)  # input errors first, then the state, then the port
    check_lifetime(lifetime)
    state = existing_state(args)  # identities come from a CA made before: never create one
    # The port before the identity: a refused start issues no certificate.
    listeners = bind_listeners(config.listen_host, config.listen_port)
    try:
        identity = ReloadingIdentity(
            args.identity,
            state=state,
            trust=Path(args.ca) if args.ca else None,
            lifetime=lifetime,
            expect_spiffe=args.expect_spiffe,
            alpn=None if config.tcp else ["http/1.1"],
        )
    except BaseException:
        for sock in listeners:
            sock.close()
        raise
    checked = args.expect_spiffe or config.server_name
    if not _loopback(config.listen_host):
        log.warning(
            "tunnel: listening on %s, not loopback: whoever reaches it talks as %s",
            config.listen_host,
            identity.identity,
        )

    def ready(port: int) -> None:
        log.info(
            "tunnel: %s on %s:%d -> %s as %s (certificate %X until %s), verifying %s",
            "TCP" if config.tcp else "HTTP",
            config.listen_host,
            port,
            args.to,
            identity.identity,
            identity.serial,
            identity.current.not_after.strftime("%Y-%m-%d %H:%M:%S UTC"),
            checked,
        )

    try:
        return run_tunnel(config, identity, ready, listeners)
    finally:
        identity.close()
        for sock in listeners:
            sock.close()


def register(commands: Any) -> None:
    p = commands.add_parser(
        "tunnel", help="a local plain port to a service over mutual TLS, with a renewed identity"
    )
    p.add_argument(
        "--listen", required=True, metavar="ADDR:PORT", help="local plain listener (loopback!)"
    )
    p.add_argument("--to", required=True, metavar="URL", help="the service: https://HOST[:PORT]")
    p.add_argument(
        "--identity",
        required=True,
        metavar="ID",
        help="who we are: a SPIFFE ID (spiffe://...) or a DNS name",
    )
    p.add_argument(
        "--server-name",
        metavar="NAME",
        help="SNI and the name the server's certificate must have (default: the URL's host)",
    )
    p.add_argument(
        "--expect-spiffe",
        metavar="ID",
        help="the server's certificate must be an SVID for this SPIFFE ID (instead of the name)",
    )
    p.add_argument(
        "--ca", metavar="FILE", help="trust this PEM bundle for the server (default: internal CA)"
    )
    p.add_argument("--tcp", action="store_true", help="a byte pipe instead of HTTP")
    p.add_argument(
        "--connect",
        metavar="HOST:PORT",
        help="dial here instead of the URL's host and port (which are still verified)",
    )
    p.add_argument(
        "--lifetime",
        metavar="DURATION",
        help="client certificate lifetime, e.g. 24h, 30m, 1m (default 24h)",
    )
    add_state_options(p)
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    p.set_defaults(handler=cmd_tunnel)

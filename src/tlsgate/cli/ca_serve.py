"""``tlsgate ca serve``: the CA as an ACME server (RFC 8555), for certbot, lego or `serve`.

Options follow Pebble's for private networks and tests: which ports the validator connects to
(``--http-01-port``, ``--tls-alpn-01-port``), how names resolve without public DNS
(``--resolve PATTERN=ADDR``) and which DNS server answers dns-01 (``--dns-resolver``).

Several nodes may serve one PostgreSQL store (``--store postgresql://...``): every record is in
the store, and so are the anti-replay nonces then (``--nonces auto``), because a client takes a
nonce from one node and may send its next request to another. A directory store keeps them in
memory: one process serves it, and a write per answer on SQLite (``synchronous=FULL``) would cost
more than it buys. The new-order rate limit follows the same rule (``--rate-limits auto``): in
the store for PostgreSQL, so N nodes allow the configured rate and not N times it.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from tlsgate.ca.authority import CertificateAuthority, passphrase_from_env
from tlsgate.cli.state import open_existing_store
from tlsgate.config import eab_key, parse_duration, parse_listen
from tlsgate.errors import ConfigError
from tlsgate.pki.profiles import MIN_LEAF_LIFETIME
from tlsgate.store import is_database_url

__all__ = ["add_parser"]


def _eab(values: list[str]) -> dict[str, bytes]:
    keys = dict(eab_key(value) for value in values)
    for kid, key in keys.items():
        if len(key) < 16:  # the server's own keys: a short one is guessable
            raise ConfigError(f"--eab: the MAC key for key id {kid!r} must be at least 16 bytes")
    return keys


def _allow(values: list[str]) -> tuple[tuple[str, ...], tuple[Any, ...]]:
    dns: list[str] = []
    ips: list[Any] = []
    for value in values:
        try:
            ips.append(ipaddress.ip_network(value, strict=False))
        except ValueError:
            dns.append(value.lower().rstrip("."))
    return tuple(dns), tuple(ips)


def _public_url(value: str | None, hostname: str) -> str | None:
    """The load balancer's URL; its host must be the one the server's certificate names, since
    TLS goes through a TCP balancer to the node."""
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname or parts.path not in ("", "/"):
        raise ConfigError(f"--public-url {value!r}: expected https://HOST[:PORT]")
    if parts.hostname.lower() != hostname.strip("[]").lower():
        raise ConfigError(f"--public-url {value!r}: its host must be --hostname ({hostname})")
    return value.rstrip("/")


def cmd_serve(args: argparse.Namespace) -> int:
    from tlsgate.acme.server.app import AcmeServerSettings
    from tlsgate.acme.server.policy import IdentifierPolicy
    from tlsgate.acme.server.service import serve_acme
    from tlsgate.acme.server.validation import ValidationConfig

    listen = parse_listen(args.listen, "--listen")
    public_url = _public_url(args.public_url, args.hostname)
    store = open_existing_store(args)
    ca = CertificateAuthority.load(store, passphrase_from_env())
    allow_dns, allow_ip = _allow(args.allow)
    validation = ValidationConfig.from_options(
        http_01_port=args.http_01_port,
        tls_alpn_01_port=args.tls_alpn_01_port,
        resolve=args.resolve,
        dns_resolver=args.dns_resolver,
    )
    profiles = dict(AcmeServerSettings().profiles)
    if args.lifetime is not None:
        lifetime = timedelta(seconds=parse_duration(args.lifetime, "--lifetime"))
        if lifetime < MIN_LEAF_LIFETIME:
            raise ConfigError(f"--lifetime {args.lifetime}: certificates live at least 1 minute")
        profiles["default"] = lifetime
    settings = AcmeServerSettings(
        policy=IdentifierPolicy(ca.constraints, allow_dns=allow_dns, allow_ip=allow_ip),
        profiles=profiles,
        validation=validation,
        eab_keys=_eab(args.eab),
        eab_required=args.require_eab,
        order_rate=args.order_rate,
        order_burst=args.order_burst,
    )

    def ready(directory: str) -> None:
        print(f"tlsgate: ACME directory at {directory}", file=sys.stderr, flush=True)

    nonces = None
    if args.nonces == "store" or (args.nonces == "auto" and is_database_url(store.location)):
        from tlsgate.acme.server.nonces import StoreNonces

        nonces = StoreNonces(store)

    limiter = None
    shared = is_database_url(store.location)
    if args.rate_limits == "store" or (args.rate_limits == "auto" and shared):
        from tlsgate.acme.server.policy import StoreRateLimiter

        limiter = StoreRateLimiter(store, args.order_rate, args.order_burst)

    import uvloop

    from tlsgate.config.listen import bind_listeners

    # The port before the server's certificate: a refused start issues nothing.
    sockets = bind_listeners(listen.host, listen.port)
    try:
        return uvloop.run(
            serve_acme(
                ca,
                store,
                sockets=sockets,
                hostname=args.hostname,
                settings=settings,
                nonces=nonces,
                limiter=limiter,
                public_url=public_url,
                ready=ready,
            )
        )
    finally:
        for sock in sockets:
            sock.close()


def add_parser(sub: Any, common: Any) -> None:
    p = sub.add_parser("serve", help="serve ACME (RFC 8555) for certbot, lego, tlsgate serve")
    p.add_argument(
        "--listen",
        default="0.0.0.0:14000",
        metavar="HOST:PORT",
        help="HTTPS listener (default 0.0.0.0:14000)",
    )
    p.add_argument(
        "--hostname",
        default="localhost",
        help="name in the directory URLs and the server's certificate",
    )
    p.add_argument(
        "--public-url",
        metavar="https://HOST[:PORT]",
        help="where clients reach the server, if not https://HOSTNAME:PORT of --listen (several"
        " nodes behind one load balancer all give its URL; HOST must be --hostname)",
    )
    p.add_argument(
        "--http-01-port",
        type=int,
        default=80,
        metavar="N",
        help="port the http-01 validator connects to (default 80)",
    )
    p.add_argument(
        "--tls-alpn-01-port",
        type=int,
        default=443,
        metavar="N",
        help="port the tls-alpn-01 validator connects to (default 443)",
    )
    p.add_argument(
        "--resolve",
        action="append",
        default=[],
        metavar="PATTERN=ADDR",
        help="resolve without DNS, e.g. '*.example.test=127.0.0.1' (repeatable)",
    )
    p.add_argument(
        "--dns-resolver",
        metavar="HOST:PORT",
        help="DNS server for dns-01 TXT lookups (and names --resolve misses)",
    )
    p.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="NAME|NETWORK",
        help="issue only for these DNS suffixes / IP networks (repeatable)",
    )
    p.add_argument(
        "--eab",
        action="append",
        default=[],
        metavar="KID:KEY",
        help="an External Account Binding key id and base64url MAC key",
    )
    p.add_argument(
        "--lifetime",
        metavar="DURATION",
        help="lifetime of certificates in the default profile, e.g. 90d, 24h, 5m (default 90d)",
    )
    p.add_argument(
        "--require-eab",
        action="store_true",
        help="refuse new accounts without External Account Binding",
    )
    p.add_argument(
        "--order-rate",
        type=float,
        default=10.0,
        metavar="PER_SECOND",
        help="new orders per second per account after the burst (default 10)",
    )
    p.add_argument(
        "--order-burst",
        type=int,
        default=300,
        metavar="N",
        help="new orders an account may place at once (default 300)",
    )
    p.add_argument(
        "--nonces",
        choices=("auto", "memory", "store"),
        default="auto",
        help="where anti-replay nonces live: 'store' lets several nodes on one database accept"
        " each other's; auto: the store for postgresql://, memory for a directory (default auto)",
    )
    p.add_argument(
        "--rate-limits",
        choices=("auto", "memory", "store"),
        default="auto",
        help="where --order-rate budgets live: 'store' makes several nodes on one database share"
        " one; auto: the store for postgresql://, memory for a directory (default auto)",
    )
    common(p, json_output=False)
    p.set_defaults(handler=cmd_serve)

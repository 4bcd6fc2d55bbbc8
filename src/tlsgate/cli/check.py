"""``tlsgate check``: why would a browser refuse this site (or this certificate file)?

Exit status follows the Nagios convention monitoring scripts already speak: 0 OK, 1 WARNING
(expires within ``--warn-days``), 2 CRITICAL (a browser refuses it, or it cannot be reached).
Bad input of our own (an unreadable ``--ca``) is also 2, as for every tlsgate command.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tlsgate.cli.output import console, print_json
from tlsgate.errors import ConfigError

if TYPE_CHECKING:  # the network stack loads when a check runs, not for every tlsgate command
    from tlsgate.inspect import CheckOptions, Report

__all__ = ["register"]


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "check",
        help="explain a TLS endpoint or certificate file: what a browser sees and its verdict",
        description="Connect like a browser (or read a certificate file) and explain, step by "
        "step, what was offered, chosen and presented, and the verdict with the exact reason a "
        "browser would refuse. Exit status: 0 OK, 1 WARNING, 2 CRITICAL.",
    )
    parser.add_argument(
        "targets",
        nargs="+",
        metavar="TARGET",
        help="HOST[:PORT] (default port 443), [IPv6]:PORT, an https:// URL, or a PEM/DER file",
    )
    parser.add_argument("--servername", metavar="NAME", help="SNI and the name to verify")
    parser.add_argument(
        "--connect",
        metavar="HOST[:PORT]",
        help="dial this address instead of the target's (like curl --resolve)",
    )
    parser.add_argument(
        "--ca", type=Path, metavar="FILE", help="trust these roots instead of the system store"
    )
    parser.add_argument("--client-cert", type=Path, metavar="FILE", help="for mTLS endpoints")
    parser.add_argument("--client-key", type=Path, metavar="FILE")
    parser.add_argument(
        "--warn-days",
        type=float,
        default=21.0,
        metavar="N",
        help="WARNING when a certificate expires within N days (default 21)",
    )
    parser.add_argument(
        "--critical-days",
        type=float,
        default=7.0,
        metavar="N",
        help="CRITICAL within N days (default 7)",
    )
    parser.add_argument(
        "--timeout", type=float, default=10.0, metavar="SECONDS", help="per connection (10)"
    )
    parser.add_argument(
        "--http", action="store_true", help="also check HSTS and the http:// -> https:// redirect"
    )
    parser.add_argument(
        "--http-port",
        type=int,
        default=80,
        metavar="PORT",
        help="with --http: the plain-HTTP port expected to redirect (80)",
    )
    parser.add_argument("--no-revocation", action="store_true", help="skip the OCSP/CRL lookup")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(handler=run)


def _options(args: argparse.Namespace) -> CheckOptions:
    from tlsgate.inspect import CheckOptions, load_trust

    if args.timeout <= 0:
        raise ConfigError("--timeout must be a positive number of seconds")
    if not 0 < args.http_port < 65536:
        raise ConfigError("--http-port must be a port number (1-65535)")
    if args.warn_days < args.critical_days:
        raise ConfigError("--warn-days must not be smaller than --critical-days")
    if (args.client_cert is None) != (args.client_key is None):
        raise ConfigError("--client-cert and --client-key go together")
    return CheckOptions(
        trust=load_trust(args.ca),
        warn_days=args.warn_days,
        critical_days=args.critical_days,
        timeout=args.timeout,
        http=args.http,
        http_port=args.http_port,
        revocation=not args.no_revocation,
        client_cert=args.client_cert,
        client_key=args.client_key,
    )


async def _check_all(args: argparse.Namespace, options: CheckOptions) -> list[Report]:
    from tlsgate.inspect import check_endpoint, check_file, looks_like_file, parse_endpoint

    reports = []
    for target in args.targets:
        if looks_like_file(target):
            reports.append(check_file(Path(target), options, name=args.servername))
        else:
            endpoint = parse_endpoint(target, servername=args.servername, connect=args.connect)
            reports.append(await check_endpoint(endpoint, options))
    return reports


def run(args: argparse.Namespace) -> int:
    from tlsgate.inspect import looks_like_file, parse_endpoint
    from tlsgate.inspect.explain import explain

    options = _options(args)
    for target in args.targets:  # every target is parsed before any is dialled
        if not looks_like_file(target):
            parse_endpoint(target, servername=args.servername, connect=args.connect)
    reports = asyncio.run(_check_all(args, options))
    if args.json:
        data = [r.to_json() for r in reports]
        print_json(data[0] if len(data) == 1 else data)
    else:
        for index, report in enumerate(reports):
            if index:
                console.print()
            explain(report, console)
    return max(r.exit_code for r in reports)

"""``tlsgate cert``: certificates from any ACME CA for hosts that are not behind `serve`.

``renew`` is for cron or a systemd timer: it renews what ``acme/client/schedule.py`` says is
due (exit 0 when nothing was, or everything renewed; 1 when a renewal failed, the current files
kept).

``obtain`` answers http-01 itself on ``--http-01-port`` (so port 80 must be free, as with
certbot's standalone mode), writes ``key.pem`` (0600), ``cert.pem``, ``chain.pem`` and
``fullchain.pem`` atomically, and runs ``--deploy-hook`` with ``TLSGATE_CERT_DIR`` (and certbot's
``RENEWED_LINEAGE``/``RENEWED_DOMAINS``) set.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tlsgate.cli.output import console
from tlsgate.cli.state import add_state_options, store_location
from tlsgate.config import eab_key
from tlsgate.pki.keys import parse_key_type
from tlsgate.store import is_database_url, resolve_state_dir, resolve_store

__all__ = ["register"]


def _where(args: argparse.Namespace) -> tuple[Path, str | None]:
    """The local directory for the renewal records, and the database holding the account
    keys (shared with `serve`) if the state is one; a directory store holds both."""
    location = store_location(args)
    store = resolve_store(location)
    return resolve_state_dir(location), store if is_database_url(store) else None


def cmd_obtain(args: argparse.Namespace) -> int:
    from tlsgate.acme.client.standalone import ObtainRequest, obtain_certificate

    names = tuple(n.lower().rstrip(".") for n in args.names)
    state, store = _where(args)
    request = ObtainRequest(
        directory=args.directory,
        names=names,
        out=Path(args.out or names[0].replace("*", "_")),
        state=state,
        store=store,
        http_01_address=args.http_01_address,
        http_01_port=args.http_01_port,
        ca_root=Path(args.ca_root) if args.ca_root else None,
        contact=tuple(args.email),
        eab=eab_key(args.eab) if args.eab is not None else None,
        key_type=parse_key_type(args.key_type),
        deploy_hook=args.deploy_hook,
        dns_01_hook=args.dns_01_hook,
        dns_01_wait=args.dns_01_wait,
    )
    certs = obtain_certificate(request)
    leaf = certs[0]
    console.print(
        f"[green]Certificate for {', '.join(names)}[/] (serial {leaf.serial_number:X}, until "
        f"{leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC) in {request.out}/: "
        "key.pem (0600), cert.pem, chain.pem, fullchain.pem"
    )
    return 0


def cmd_renew(args: argparse.Namespace) -> int:
    from tlsgate.acme.client.standalone import renew_all

    state, store = _where(args)
    outcomes = renew_all(
        state,
        store=store,
        now=datetime.now(UTC),
        force=args.force,
        pre_hook=args.pre_hook,
        post_hook=args.post_hook,
    )
    if not outcomes:
        console.print("no certificates recorded (tlsgate cert obtain records them)")
    style = {"renewed": "green", "not-due": "dim", "failed": "red"}
    for outcome in outcomes:
        console.print(
            f"[{style[outcome.status]}]{outcome.status}[/] {', '.join(outcome.names)} "
            f"({outcome.out}): {outcome.detail}"
        )
    # cron/systemd friendly: 0 when every certificate is fine (renewed or not due), 1 otherwise
    return 1 if any(o.status == "failed" for o in outcomes) else 0


def register(commands: Any) -> None:
    cert = commands.add_parser(
        "cert", help="certificates from any ACME CA, for hosts not behind serve"
    )
    sub = cert.add_subparsers(dest="cert_command", metavar="COMMAND")
    sub.required = True
    p = sub.add_parser("obtain", help="order a certificate for NAMES and write it to --out")
    p.add_argument("names", nargs="+", metavar="NAME")
    p.add_argument("--directory", required=True, metavar="URL", help="the CA's ACME directory")
    p.add_argument("--ca-root", metavar="FILE", help="trust this root for the CA (private CAs)")
    p.add_argument("--email", action="append", default=[], metavar="ADDR", help="contact")
    p.add_argument("--eab", metavar="KID:KEY", help="External Account Binding key id and key")
    p.add_argument("--http-01-port", type=int, default=80, metavar="N", help="default 80")
    p.add_argument("--http-01-address", default="0.0.0.0", metavar="ADDR")
    p.add_argument("--key-type", default="ecdsa-p256", metavar="TYPE", help="default ecdsa-p256")
    p.add_argument("--out", metavar="DIR", help="where to write the files (default ./NAME)")
    p.add_argument("--deploy-hook", metavar="CMD", help="run after the files are written")
    p.add_argument(
        "--dns-01-hook",
        metavar="CMD",
        help="prove names with dns-01: CMD present|cleanup _acme-challenge.NAME VALUE",
    )
    p.add_argument(
        "--dns-01-wait", type=float, default=0.0, metavar="SECONDS",
        help="wait after the hook for the record to propagate",
    )  # fmt: skip
    add_state_options(p)
    p.set_defaults(handler=cmd_obtain)

    p = sub.add_parser("renew", help="renew every recorded certificate that is due")
    p.add_argument("--all", action="store_true", help="(the default: every recorded certificate)")
    p.add_argument("--force", action="store_true", help="renew even what is not due")
    p.add_argument("--pre-hook", metavar="CMD", help="run once before the first renewal")
    p.add_argument("--post-hook", metavar="CMD", help="run once after renewals, if any ran")
    add_state_options(p)
    p.set_defaults(handler=cmd_renew)

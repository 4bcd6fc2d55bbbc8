"""``tlsgate ca ...``: run the internal certificate authority by hand.

Every subcommand validates all of its input before it changes anything, so a refused command
leaves the state and the output directory exactly as they were.
"""

from __future__ import annotations

import argparse
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tlsgate.ca import CertificateAuthority, passphrase_from_env
from tlsgate.cli import ca_serve
from tlsgate.cli.output import (
    RECORD_COLUMNS,
    cert_table,
    console,
    print_json,
    record_json,
    record_status,
    records_rows,
)
from tlsgate.cli.state import add_state_options, open_existing_store, store_location
from tlsgate.cli.tables import print_table
from tlsgate.errors import (
    AlreadyExists,
    ConfigError,
    CSRError,
    InvalidIdentity,
    StorageError,
)
from tlsgate.pki.csr import load_and_check_csr, same_names
from tlsgate.pki.info import CertInfo
from tlsgate.pki.keys import parse_key_type, private_key_pem
from tlsgate.pki.names import NameConstraints, parse_identities, parse_spiffe_id
from tlsgate.pki.pem import certificate_pem, load_certificate
from tlsgate.pki.profiles import LeafProfile
from tlsgate.pki.revocation import REASONS, parse_reason
from tlsgate.pki.serial import format_serial, parse_serial
from tlsgate.plural import count
from tlsgate.store import open_store
from tlsgate.store.base import CertStatus, Store
from tlsgate.store.files import PRIVATE, PUBLIC, atomic_write

__all__ = ["register"]


def _now() -> datetime:
    return datetime.now(UTC)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def _common(parser: argparse.ArgumentParser, *, json_output: bool = True) -> None:
    add_state_options(parser)
    if json_output:
        parser.add_argument("--json", action="store_true", help="print JSON for scripts")


def _store(args: argparse.Namespace) -> Store:
    return open_store(store_location(args))


def _ca(args: argparse.Namespace) -> CertificateAuthority:
    # Every command that needs the CA reads state made before: never create it.
    return CertificateAuthority.load(open_existing_store(args), passphrase_from_env())


def _read_file(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from None


# -- init ----------------------------------------------------------------------------------------
def cmd_init(args: argparse.Namespace) -> int:
    key_type = parse_key_type(args.key_type)
    constraints = NameConstraints.build(
        args.permit_dns, args.exclude_dns, args.permit_ip, args.exclude_ip
    )
    if args.crl_url is not None and not re.match(r"^https?://[^\s]+$", args.crl_url):
        raise ConfigError(f"--crl-url must be an http:// or https:// URL, got {args.crl_url!r}")
    ca = CertificateAuthority.init(
        _store(args),
        now=_now(),
        name=args.name,
        key_type=key_type,
        constraints=constraints,
        root_lifetime=timedelta(days=args.root_days),
        intermediate_lifetime=timedelta(days=args.int_days),
        crl_url=args.crl_url,
        passphrase=passphrase_from_env(),
        force=args.force,
    )
    if args.json:
        print_json(ca.describe())
        return 0
    _print_ca(ca)
    console.print(
        "\nClients trust the [bold]root[/]: [cyan]tlsgate ca export-root --out root.pem[/]"
        "\nIssue a certificate:       [cyan]tlsgate ca issue localhost 127.0.0.1[/]"
    )
    return 0


def _print_ca(ca: CertificateAuthority) -> None:
    now = _now()
    console.print(f"[bold]Certificate authority[/] {ca.record.name!r} in {ca.store.location}")
    console.print("\n[bold underline]root[/] (trusted by definition; signs only the intermediate)")
    console.print(cert_table(CertInfo.of(ca.root), now))
    constraints = ca.constraints.describe()
    extra = [("constraints", "; ".join(constraints))] if constraints else []
    console.print("\n[bold underline]intermediate[/] (signs every certificate)")
    console.print(cert_table(CertInfo.of(ca.intermediate), now, extra))


def cmd_info(args: argparse.Namespace) -> int:
    ca = _ca(args)
    if args.json:
        print_json(ca.describe())
    else:
        _print_ca(ca)
    return 0


# -- issue ---------------------------------------------------------------------------------------
def _lifetime(args: argparse.Namespace) -> timedelta:
    if args.minutes is not None:
        return timedelta(minutes=args.minutes)
    if args.hours is not None:
        return timedelta(hours=args.hours)
    return timedelta(days=args.days if args.days is not None else 90)


def _default_out_dir(first_name: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", first_name.replace("*", "wildcard"))
    return Path(safe.strip(".") or "certificate")


def _spiffe_option(text: str) -> str:
    try:
        return parse_spiffe_id(text)
    except InvalidIdentity as exc:
        raise InvalidIdentity(
            f"--spiffe {exc} (expected spiffe://TRUST-DOMAIN/PATH, e.g. "
            "spiffe://prod.example/ns/web/sa/api)"
        ) from None


def cmd_issue(args: argparse.Namespace) -> int:
    # 1. Validate everything before touching the store or the disk.
    # --spiffe is a SPIFFE ID or nothing: through parse_identities "notauri" would become a DNS
    # name and "spife://x" another URI, each issued as if it were an SVID.
    spiffe_id = _spiffe_option(args.spiffe) if args.spiffe is not None else None
    texts = list(args.names) + ([spiffe_id] if spiffe_id else [])
    csr = None
    if args.csr:
        csr = load_and_check_csr(_read_file(args.csr, "CSR"), source=args.csr)
        if texts and not same_names(csr.names, texts):
            raise CSRError(
                "the CSR asks for other names than the command line "
                f"({', '.join(str(n.value) for n in csr.names)}); give no names or the same names"
            )
        names = list(csr.names)
    else:
        names = parse_identities(texts)
    spiffe = any(
        isinstance(n, x509.UniformResourceIdentifier) and n.value.startswith("spiffe://")
        for n in names
    )
    # An X.509-SVID is used in both directions, so it carries both usages.
    server = args.server or not args.client or spiffe
    client = args.client or spiffe
    profile = LeafProfile(server=server, client=client, lifetime=_lifetime(args))
    key_type = parse_key_type(args.key_type)
    out = Path(args.out) if args.out else _default_out_dir(str(names[0].value))
    files = ["cert.pem", "chain.pem", "fullchain.pem"] + ([] if csr else ["key.pem"])
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a directory")
    if not args.force:
        taken = [f for f in files if (out / f).exists()]
        if taken:
            raise AlreadyExists(f"{out / taken[0]} already exists (use --force to replace it)")
    ca = _ca(args)
    ca.intermediate_key  # noqa: B018 - unlock (passphrase) before signing, not half-way
    # 2. Sign and record; 3. hand out.
    issued = ca.issue(names, now=_now(), profile=profile, key_type=key_type, csr=csr)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create {out}: {exc.strerror}") from None
    if issued.private_key is not None:
        atomic_write(out / "key.pem", private_key_pem(issued.private_key), mode=PRIVATE)
    atomic_write(out / "cert.pem", issued.cert_pem, mode=PUBLIC)
    atomic_write(out / "chain.pem", issued.chain_pem, mode=PUBLIC)
    atomic_write(out / "fullchain.pem", issued.fullchain_pem, mode=PUBLIC)
    info = issued.info
    if args.json:
        data = info.to_json(_now())
        data["files"] = {f.removesuffix(".pem"): str(out / f) for f in files}
        print_json(data)
        return 0
    console.print(f"[green]Issued[/] {', '.join(info.names)}")
    console.print(cert_table(info, _now()))
    console.print(f"\nWrote {', '.join(str(out / f) for f in sorted(files))}")
    if issued.private_key is not None:
        console.print(f"[dim]{out / 'key.pem'} is the private key (mode 0600): keep it secret.[/]")
    return 0


# -- list / show ---------------------------------------------------------------------------------
def cmd_list(args: argparse.Namespace) -> int:
    store = open_existing_store(args)
    now = _now()
    if args.expiring_within is not None:
        records = store.list_certificates(
            status=CertStatus.VALID,
            not_after_after=now,
            not_after_before=now + timedelta(days=args.expiring_within),
        )
    else:
        records = store.list_certificates()
        if args.status != "all":
            records = [r for r in records if record_status(r, now) == args.status]
    if args.json:
        print_json([record_json(r, now) for r in records])
        return 0
    if not records:
        console.print("No certificates match.")
        return 0
    print_table(console, RECORD_COLUMNS, records_rows(records, now))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    serial = parse_serial(args.serial)
    record = open_existing_store(args).get_certificate(serial)
    now = _now()
    if args.pem:
        sys.stdout.write(record.pem.decode())
        return 0
    cert = load_certificate(record.pem, source="stored certificate")
    info = CertInfo.of(cert)
    if args.json:
        data = info.to_json(now) | record_json(record, now)
        data["pem"] = record.pem.decode()
        print_json(data)
        return 0
    extra = [("status", record_status(record, now)), ("requested by", record.requester)]
    if record.order_id is not None:
        extra.append(("ACME order", record.order_id))
    if record.revoked_at is not None:
        by = f", by {record.revoked_by}" if record.revoked_by else ""
        extra.append(
            ("revoked", f"{record.revoked_at:%Y-%m-%d %H:%M} UTC ({record.revocation_reason}{by})")
        )
    console.print(cert_table(info, now, extra))
    return 0


# -- revoke / crl --------------------------------------------------------------------------------
def cmd_revoke(args: argparse.Namespace) -> int:
    serial = parse_serial(args.serial)
    reason = parse_reason(args.reason)
    ca = _ca(args)
    record = ca.revoke(serial, now=_now(), reason=reason)
    if args.json:
        print_json(record_json(record, _now()))
        return 0
    console.print(
        f"[magenta]Revoked[/] {format_serial(serial)} ({', '.join(record.names)}), "
        f"reason {record.revocation_reason}. Publish the new CRL: [cyan]tlsgate ca crl[/]"
    )
    return 0


def cmd_crl(args: argparse.Namespace) -> int:
    ca = _ca(args)
    now = _now()
    crl = ca.root_crl(now=now) if args.root else ca.crl(now=now)
    data = crl.public_bytes(serialization.Encoding.DER if args.der else serialization.Encoding.PEM)
    if args.out:
        atomic_write(Path(args.out), data, mode=PUBLIC)
        sys.stderr.write(f"wrote CRL with {count(len(crl), 'entry', 'entries')} to {args.out}\n")
    elif args.der:
        sys.stdout.buffer.write(data)
    else:
        sys.stdout.write(data.decode())
    return 0


def cmd_export_root(args: argparse.Namespace) -> int:
    ca = _ca(args)
    data = certificate_pem(ca.root)
    if args.intermediate:
        data += certificate_pem(ca.intermediate)
    if args.out:
        atomic_write(Path(args.out), data, mode=PUBLIC)
        sys.stderr.write(
            f"wrote {'root and intermediate' if args.intermediate else 'root'} "
            f"certificate to {args.out}\n"
        )
    else:
        sys.stdout.write(data.decode())
    return 0


# -- wiring --------------------------------------------------------------------------------------
def register(commands: Any) -> None:
    ca = commands.add_parser("ca", help="run the internal certificate authority")
    sub = ca.add_subparsers(dest="ca_command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("init", help="create the root and intermediate CA")
    p.add_argument(
        "--name", default="tlsgate", help="organisation name of the CA (default tlsgate)"
    )
    p.add_argument(
        "--key-type",
        default="ecdsa-p256",
        help="ecdsa-p256 (default), ecdsa-p384, ed25519, rsa-2048, rsa-3072, rsa-4096",
    )
    p.add_argument(
        "--permit-dns",
        action="append",
        default=[],
        metavar="SUFFIX",
        help="only issue names at or under SUFFIX (repeatable; a name constraint)",
    )
    p.add_argument(
        "--exclude-dns",
        action="append",
        default=[],
        metavar="SUFFIX",
        help="never issue names at or under SUFFIX (repeatable)",
    )
    p.add_argument(
        "--permit-ip",
        action="append",
        default=[],
        metavar="CIDR",
        help="only issue IP addresses in CIDR (repeatable)",
    )
    p.add_argument(
        "--exclude-ip",
        action="append",
        default=[],
        metavar="CIDR",
        help="never issue IP addresses in CIDR (repeatable)",
    )
    p.add_argument(
        "--root-days",
        type=_positive_int,
        default=3650,
        metavar="N",
        help="root lifetime in days (default 3650)",
    )
    p.add_argument(
        "--int-days",
        type=_positive_int,
        default=1095,
        metavar="N",
        help="intermediate lifetime in days (default 1095)",
    )
    p.add_argument(
        "--crl-url", metavar="URL", help="CRL distribution point written into every certificate"
    )
    p.add_argument("--force", action="store_true", help="replace an existing CA")
    _common(p)
    p.set_defaults(handler=cmd_init)

    p = sub.add_parser("info", help="show the CA's root and intermediate")
    _common(p)
    p.set_defaults(handler=cmd_info)

    p = sub.add_parser("issue", help="issue a certificate for NAMES (or for a CSR)")
    p.add_argument(
        "names", nargs="*", metavar="NAME", help="DNS name, *.wildcard, IP address, URI or e-mail"
    )
    p.add_argument("--server", action="store_true", help="for TLS servers (default)")
    p.add_argument("--client", action="store_true", help="for TLS clients (mTLS)")
    p.add_argument(
        "--spiffe", metavar="URI", help="SPIFFE ID spiffe://trust-domain/path (an X.509-SVID)"
    )
    life = p.add_mutually_exclusive_group()
    life.add_argument("--days", type=_positive_int, help="lifetime in days (default 90)")
    life.add_argument("--hours", type=_positive_int, help="lifetime in hours")
    life.add_argument("--minutes", type=_positive_int, help="lifetime in minutes")
    p.add_argument("--key-type", default="ecdsa-p256", help="key to generate (default ecdsa-p256)")
    p.add_argument("--csr", metavar="FILE", help="sign this CSR instead of generating a key")
    p.add_argument("--out", metavar="DIR", help="output directory (default ./FIRST-NAME)")
    p.add_argument("--force", action="store_true", help="overwrite files in --out")
    _common(p)
    p.set_defaults(handler=cmd_issue)

    p = sub.add_parser("list", help="list issued certificates")
    p.add_argument(
        "--expiring-within",
        type=_positive_int,
        metavar="DAYS",
        help="only valid certificates that expire within DAYS",
    )
    p.add_argument("--status", choices=["all", "valid", "expired", "revoked"], default="all")
    _common(p)
    p.set_defaults(handler=cmd_list)

    p = sub.add_parser("show", help="show one certificate")
    p.add_argument("serial", metavar="SERIAL", help="hex, with or without colons")
    p.add_argument("--pem", action="store_true", help="print the certificate as PEM")
    _common(p)
    p.set_defaults(handler=cmd_show)

    p = sub.add_parser("revoke", help="revoke a certificate")
    p.add_argument("serial", metavar="SERIAL", help="hex, with or without colons")
    p.add_argument("--reason", default="unspecified", help=f"one of: {', '.join(REASONS)}")
    _common(p)
    p.set_defaults(handler=cmd_revoke)

    p = sub.add_parser("crl", help="write a fresh CRL signed by the intermediate")
    p.add_argument("--out", metavar="FILE", help="write to FILE instead of stdout")
    p.add_argument("--der", action="store_true", help="DER instead of PEM")
    p.add_argument(
        "--root", action="store_true", help="the root's CRL (for verifiers that check every link)"
    )
    _common(p, json_output=False)
    p.set_defaults(handler=cmd_crl)

    ca_serve.add_parser(sub, _common)

    p = sub.add_parser("export-root", help="print the root certificate clients must trust")
    p.add_argument("--out", metavar="FILE", help="write to FILE instead of stdout")
    p.add_argument("--intermediate", action="store_true", help="append the intermediate too")
    _common(p, json_output=False)
    p.set_defaults(handler=cmd_export_root)

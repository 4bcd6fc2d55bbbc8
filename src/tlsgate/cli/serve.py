"""``tlsgate serve`` and ``tlsgate demo``: the edge in front of plain-HTTP services."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import socket
import ssl
import threading
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.panel import Panel

from tlsgate.cli.output import console
from tlsgate.cli.state import add_state_options, store_location
from tlsgate.config import Config, TlsFiles, from_flags, load
from tlsgate.errors import ConfigError
from tlsgate.pki.pem import certificate_pem
from tlsgate.store import is_database_url, local_state_dir, open_store
from tlsgate.store.files import PUBLIC, atomic_write

__all__ = ["register"]


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="tlsgate: %(message)s",
    )


def _config(args: argparse.Namespace) -> Config:
    acme_flags = {
        "--acme": args.acme,
        "--acme-ca": args.acme_ca,
        "--email": args.email,
        "--eab": args.eab,
        "--challenge": args.challenges,
        "--dns-hook": args.dns_hook,
    }
    client_auth_flags = {
        "--client-auth": args.client_auth,
        "--client-ca": args.client_ca,
        "--allow-spiffe": args.allow_spiffe,
        "--allow-dns": args.allow_dns,
        "--allow-cn": args.allow_cn,
        "--allow-ou": args.allow_ou,
    }
    if args.config:
        if args.hosts or args.to:
            raise ConfigError("use either -c FILE or --host/--to, not both")
        # Ignoring them would serve certificates from somewhere the command line did not say.
        for flag, value in acme_flags.items():
            if value:
                raise ConfigError(f"{flag}: with -c FILE, ACME settings go in the file's [acme]")
        for flag, value in client_auth_flags.items():
            if value:
                raise ConfigError(
                    f"{flag}: with -c FILE, client certificate settings go in the file's "
                    "[site.client_auth]"
                )
        config = load(Path(args.config))
        if args.state:
            server = replace(config.server, state=Path(args.state), store=None)
            config = replace(config, server=server)
        if args.store:
            config = replace(config, server=replace(config.server, store=args.store, state=None))
        return _recycling(config, args)
    if not args.hosts or not args.to:
        raise ConfigError("give -c tlsgate.toml, or --host NAME and --to http://HOST:PORT")
    config = from_flags(
        args.hosts,
        args.to,
        listen=args.listen or None,
        http_listen=[] if args.no_http else (args.http_listen or None),
        admin_listen=args.admin_listen,
        workers=args.workers,
        state=args.state,
        acme=args.acme,
        acme_ca=args.acme_ca,
        email=args.email or None,
        eab=args.eab,
        challenges=args.challenges or None,
        dns_hook=args.dns_hook,
        client_auth=args.client_auth,
        client_ca=args.client_ca or None,
        allow_spiffe=args.allow_spiffe or None,
        allow_dns=args.allow_dns or None,
        allow_cn=args.allow_cn or None,
        allow_ou=args.allow_ou or None,
    )
    if args.store:
        config = replace(config, server=replace(config.server, store=args.store))
    if bool(args.cert) != bool(args.key):
        raise ConfigError("--cert and --key go together")
    if args.cert and args.acme:
        raise ConfigError(
            "--cert: a site gets its certificate from files or from an issuer, not both "
            "(drop --cert/--key or --acme)"
        )
    if args.cert:
        site = replace(config.sites[0], tls=TlsFiles(Path(args.cert), Path(args.key)))
        config = replace(config, sites=(site,))
    if args.access_log:
        config = replace(config, server=replace(config.server, access_log=args.access_log))
    return _recycling(config, args)


def _recycling(config: Config, args: argparse.Namespace) -> Config:
    """``--max-connections-per-worker`` over the file's value (both forms take it)."""
    if args.max_connections_per_worker is None:
        return config
    server = replace(config.server, max_connections_per_worker=args.max_connections_per_worker)
    return replace(config, server=server)


def _connection_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative; 0 means never")
    return value


def cmd_serve(args: argparse.Namespace) -> int:
    _logging(not args.quiet)
    config = _config(args)
    from tlsgate.serve.preflight import preflight
    from tlsgate.serve.server import EdgeServer

    # Ports and files first: a refused start must not have created the state, a CA or a
    # certificate (the store is created on opening, the CA and certificates as serve starts).
    preflight(config)
    store = open_store(config.server.store or config.server.state)

    return EdgeServer(config, store).run()


# -- demo ----------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_echo_thread() -> int:
    from tlsgate.demo.echo import start_echo

    ready = threading.Event()
    port_box: list[int] = []

    def run() -> None:
        loop = asyncio.new_event_loop()
        server = loop.run_until_complete(start_echo())
        assert isinstance(server, asyncio.Server)
        port_box.append(server.sockets[0].getsockname()[1])
        ready.set()
        loop.run_forever()

    threading.Thread(target=run, name="echo-upstream", daemon=True).start()
    ready.wait(10)
    return port_box[0]


def _self_check(root: Path, port: int) -> dict[str, Any]:
    """Fetch a page the way a user would: verifying the certificate against our root only."""
    context = ssl.create_default_context(cafile=str(root))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(
                b"GET /hello?from=demo HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
            )
            data = b""
            while chunk := tls.recv(65536):
                data += chunk
            version, cipher = tls.version(), tls.cipher()
    head, _, body = data.partition(b"\r\n\r\n")
    result: dict[str, Any] = json.loads(body)
    result["_tls"] = f"{version}, {cipher[0] if cipher else '?'}"
    result["_hsts"] = b"strict-transport-security" in head.lower()
    return result


def cmd_demo(args: argparse.Namespace) -> int:
    _logging(False)
    store = open_store(store_location(args))
    # root.pem is for the curl line on this machine: next to the state, or (a database store)
    # in the local directory serve uses for its own files.
    state = local_state_dir(store)
    port = args.port or 8443
    http_port = args.http_port or 8080
    upstream_port = _start_echo_thread()
    config = from_flags(
        ["localhost"],
        [f"http://127.0.0.1:{upstream_port}"],
        listen=[f"127.0.0.1:{port}"],
        http_listen=[f"127.0.0.1:{http_port}"],
        workers=1,
        state=str(state),
    )
    server_config = replace(config.server, access_log="off")
    if is_database_url(store.location):
        server_config = replace(server_config, store=store.location)
    config = replace(config, server=server_config)
    from tlsgate.serve.server import EdgeServer

    server = EdgeServer(config, store)
    root = state / "root.pem"

    def ready() -> None:
        ca = server.manager.ca(datetime.now(UTC))
        atomic_write(root, certificate_pem(ca.root), mode=PUBLIC)
        threading.Thread(target=explain, daemon=True).start()

    def explain() -> None:
        try:
            seen = _self_check(root, port)
        except Exception as exc:  # the demo must say what went wrong, not hang
            console.print(f"[red]self-check failed:[/] {exc}")
            os.kill(os.getpid(), signal.SIGTERM)
            return
        headers = seen["headers"]
        text = (
            f"[bold]You[/] ──https (TLS {seen['_tls']})──▶ [bold]tlsgate[/] 127.0.0.1:{port}"
            f" ──plain http──▶ [bold]your app[/] 127.0.0.1:{upstream_port}\n\n"
            "The certificate for localhost comes from tlsgate's own CA; the client trusted only "
            f"its root: [cyan]{root}[/]\n\n"
            f"What the app saw (it never touches TLS):\n"
            f"  scheme on its socket:   [yellow]{seen['scheme_seen_by_app']}[/]   "
            f"(TLS ended at the edge: this is TLS termination)\n"
            f"  peer on its socket:     {seen['peer_seen_by_app']}   (that is tlsgate, not you)\n"
            f"  X-Forwarded-Proto:      [green]{headers.get('x-forwarded-proto')}[/]   "
            f"(how the app learns you came over https)\n"
            f"  X-Forwarded-For:        {headers.get('x-forwarded-for')}   (your address)\n"
            f"  X-Forwarded-Host/Port:  {headers.get('x-forwarded-host')}:"
            f"{headers.get('x-forwarded-port')}\n"
            f"  Forwarded (RFC 7239):   {headers.get('forwarded')}"
        )
        console.print(Panel(text, title="tlsgate demo", expand=False))
        # Outside the panel, each on a line of its own that is never wrapped (a long state path
        # would break it across the panel's border): copied from any terminal width, it runs.
        console.print("Try it yourself:")
        for line in (
            f"curl --cacert {root} https://localhost:{port}/hello",
            f"curl -i http://localhost:{http_port}/hello   # a 308 redirect to https",
        ):
            console.print(line, markup=False, highlight=False, soft_wrap=True)
        if args.once:
            os.kill(os.getpid(), signal.SIGTERM)
        else:
            console.print("Serving until Ctrl-C.")

    server.on_ready = ready
    return server.run()


def register(commands: Any) -> None:
    p = commands.add_parser("serve", help="terminate TLS in front of plain-HTTP services")
    p.add_argument("-c", "--config", metavar="FILE", help="tlsgate.toml")
    p.add_argument(
        "--host",
        dest="hosts",
        action="append",
        default=[],
        metavar="NAME",
        help="host name to serve (repeatable; wildcards like *.example.com)",
    )
    p.add_argument(
        "--to",
        action="append",
        default=[],
        metavar="URL",
        help="upstream http://HOST:PORT (repeatable: balanced)",
    )
    p.add_argument(
        "--listen",
        action="append",
        default=[],
        metavar="ADDR:PORT",
        help="HTTPS listener (default 0.0.0.0:443)",
    )
    p.add_argument(
        "--http-listen",
        action="append",
        default=[],
        metavar="ADDR:PORT",
        help="plain-HTTP listener that redirects to HTTPS (default 0.0.0.0:80)",
    )
    p.add_argument("--no-http", action="store_true", help="no plain-HTTP listener")
    p.add_argument("--workers", type=int, default=0, metavar="N", help="processes (default: cores)")
    p.add_argument(
        "--max-connections-per-worker",
        type=_connection_count,
        metavar="N",
        help="replace a worker, gracefully, after N connections (0: never)",
    )
    p.add_argument(
        "--cert", metavar="FILE", help="serve this fullchain PEM instead of the internal CA"
    )
    p.add_argument("--key", metavar="FILE", help="the private key for --cert")
    p.add_argument(
        "--acme",
        metavar="DIRECTORY_URL",
        help="certificates from this ACME CA instead of the internal one",
    )
    p.add_argument("--acme-ca", metavar="FILE", help="trust this PEM root for --acme (private CA)")
    p.add_argument(
        "--email",
        action="append",
        default=[],
        metavar="ADDR",
        help="ACME account contact (repeatable)",
    )
    p.add_argument("--eab", metavar="KID:KEY", help="External Account Binding key id and key")
    p.add_argument(
        "--challenge",
        dest="challenges",
        action="append",
        default=[],
        metavar="TYPE",
        help="http-01, tls-alpn-01 or dns-01 (repeatable, in order of preference)",
    )
    p.add_argument(
        "--dns-hook",
        metavar="CMD",
        help="answer dns-01 with CMD present|cleanup _acme-challenge.NAME VALUE",
    )
    p.add_argument(
        "--client-auth",
        metavar="optional|require",
        help="ask clients for a certificate (mTLS); require refuses clients without one",
    )
    p.add_argument(
        "--client-ca",
        action="append",
        default=[],
        metavar="FILE",
        help="PEM bundle of the CAs that issue client certificates (repeatable; default: the "
        "internal CA)",
    )
    for flag, metavar, what, note in (
        (
            "--allow-spiffe",
            "PATTERN",
            "SPIFFE ID (spiffe://example.org/ns/prod/sa/*)",
            "; any entry of any --allow-* list lets a client in, no list any verified certificate",
        ),
        ("--allow-dns", "NAME", "DNS name (*.svc.internal: one label)", ""),
        ("--allow-cn", "CN", "subject common name", ""),
        ("--allow-ou", "OU", "subject organizational unit", ""),
    ):
        p.add_argument(
            flag,
            action="append",
            default=[],
            metavar=metavar,
            help=f"let in clients whose certificate has this {what} (repeatable){note}",
        )
    p.add_argument(
        "--admin-listen",
        metavar="ADDR:PORT",
        help="serve Prometheus /metrics and /healthz here (default: off)",
    )
    p.add_argument(
        "--access-log", metavar="stdout|off|FILE", help="JSON access log (default stdout)"
    )
    add_state_options(p)
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    p.set_defaults(handler=cmd_serve)

    p = commands.add_parser("demo", help="run the edge in front of a tiny echo app and explain it")
    p.add_argument("--port", type=int, default=0, metavar="N", help="HTTPS port (default 8443)")
    p.add_argument("--http-port", type=int, default=0, metavar="N", help="HTTP port (default 8080)")
    add_state_options(p)
    p.add_argument("--once", action="store_true", help="exit after the self-check")
    p.set_defaults(handler=cmd_demo)

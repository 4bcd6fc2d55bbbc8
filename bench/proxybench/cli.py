"""Options, checks of the machine, and the run: bench/proxy.py's main."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import resource
import shutil
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from proxybench.caddy import CADDY_PLACEHOLDER
from proxybench.common import (
    CLIENT_SPIFFE,
    H2_STREAMS,
    NGINX_PLACEHOLDER,
    OTHER_CPU_LIMIT,
    REPO,
    UPSTREAM_IDLE,
    WARMUP_SECONDS,
    BenchError,
    loud,
    progress,
)
from proxybench.modes import Context, run_compare, run_idle, run_scaling
from proxybench.nginx import start_upstream
from proxybench.proxies import ProxySpec
from proxybench.report import environment, render_json, render_text
from proxybench.results import Result
from proxybench.services import check_content, client_context, make_certs, small_body
from proxybench.wrk import H2_TEST, Tools, make_tests

#: `LABEL=` before a template: a name, no spaces, braces or slashes (a template's first word
#: is a path or a placeholder, so it never looks like one).
LABEL_PREFIX = re.compile(r"([A-Za-z0-9][A-Za-z0-9_.+()-]*)=(.*)", re.DOTALL)


def proxy_specs(values: Sequence[str], label: str | None, *, caddy: bool) -> list[ProxySpec]:
    """The reference nginx, then each --proxy-cmd (``[LABEL=]TEMPLATE``, ``nginx``, ``caddy``),
    then Caddy for --caddy. Labels must be unique: the table's rows are keyed by them."""
    specs = [ProxySpec("nginx", None)]
    for value in values:
        if value in ("", "none"):
            continue
        match = LABEL_PREFIX.fullmatch(value)
        name, template = (match.group(1), match.group(2)) if match else (None, value)
        if template == NGINX_PLACEHOLDER:
            specs.append(ProxySpec(name or label or "nginx (B)", None))
        elif template == CADDY_PLACEHOLDER:
            specs.append(ProxySpec(name or "caddy", None, "caddy"))
        else:
            specs.append(ProxySpec(name or label or "proxy", template, "command"))
    if caddy and not any(s.kind == "caddy" for s in specs):
        specs.append(ProxySpec("caddy", None, "caddy"))
    labels = [s.label for s in specs]
    if duplicated := sorted({x for x in labels if labels.count(x) > 1}):
        raise ValueError(
            f"--proxy-cmd: the label(s) {', '.join(duplicated)} name more than one proxy:"
            " give each LABEL=TEMPLATE a label of its own"
        )
    return specs


def select_tests(spec: str | None, *, originated: bool) -> list[str]:
    """--tests: the keys asked for, or all. HAProxy (``originated``: --haproxy, --client-cert)
    speaks HTTP/1.1 to the proxies, so the HTTP/2 test runs only on the direct path: it is left
    out of the default there, and refused when asked for."""
    known = [t.key for t in make_tests(1, 1)]
    if not spec:
        return [k for k in known if not (originated and k == H2_TEST)]
    keys = [t.strip() for t in spec.split(",") if t.strip()]
    if unknown := set(keys) - set(known):
        raise ValueError(f"--tests: unknown {sorted(unknown)}; known: {', '.join(known)}")
    if originated and H2_TEST in keys:
        raise ValueError(f"--tests {H2_TEST}: not with --haproxy or --client-cert")
    return keys


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="A TLS-terminating proxy under test next to nginx: work per proxy CPU-second.",
        epilog="--proxy-cmd placeholders: {port} {upstream_port} {cert} {key} {ca} (root CA PEM)"
        " {client_ca} (the CA of the client certificate: the same root) {client_spiffe} (its"
        " SPIFFE ID) {root} (repository root, also the working directory) {state} (an empty"
        " directory for the proxy) {workers} {access_log} (a file in {state}: where the proxy's"
        " access log goes with --access-log). The template is split into words like a shell"
        " would, but no shell runs. Exit status: 0, 1 if a run was flagged, 2 on a set-up error.",
    )
    parser.add_argument(
        "--proxy-cmd",
        action="append",
        default=[],
        metavar="[LABEL=]TEMPLATE",
        help="a proxy under test, run back to back with the reference nginx; may be given"
        " several times. TEMPLATE is a command template, 'nginx' (a second reference nginx) or"
        " 'caddy' (the built-in Caddy); LABEL= names it in the table (default: --label)",
    )
    parser.add_argument(
        "--caddy",
        action="store_true",
        help="also run Caddy (Debian's), configured like the reference nginx: the same as"
        " --proxy-cmd caddy=caddy",
    )
    parser.add_argument(
        "--access-log",
        action="store_true",
        help="nginx and Caddy log every request as a JSON line to a file; templates get"
        " {access_log}, a file in the proxy's {state} directory, to log to",
    )
    parser.add_argument(
        "--label",
        default=None,
        help="the name of a --proxy-cmd given without LABEL= (default: proxy)",
    )
    parser.add_argument(
        "--duration", type=positive_int, default=10, help="seconds per measured run (default 10)"
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=WARMUP_SECONDS,
        help=f"seconds of warm-up before each run (default {WARMUP_SECONDS})",
    )
    parser.add_argument(
        "--repeat", type=positive_int, default=3, help="runs per cell; tables show the median"
    )
    parser.add_argument(
        "--conns",
        type=positive_int,
        default=50,
        help="connections for tests 1-3 and the HTTP/2 test (default 50)",
    )
    parser.add_argument(
        "--bulk-conns", type=positive_int, default=10, help="connections for test 4 (default 10)"
    )
    parser.add_argument(
        "--h2-streams",
        type=positive_int,
        default=H2_STREAMS,
        help=f"concurrent streams per connection in the HTTP/2 test, h2load -m (default"
        f" {H2_STREAMS})",
    )
    parser.add_argument(
        "--key-type",
        default="ecdsa-p256",
        choices=("ecdsa-p256", "ecdsa-p384", "rsa-2048", "rsa-3072"),
        help="the server certificate's key (default ecdsa-p256; rsa-2048: the handshake most"
        " sites still pay for)",
    )
    parser.add_argument(
        "--tests",
        default=None,
        help="comma-separated subset of: keepalive-100b, full-handshake, resumed-handshake,"
        f" keepalive-1m, {H2_TEST} (HTTP/2 with h2load) (default: all; with --haproxy or"
        f" --client-cert all but {H2_TEST})",
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=60.0,
        help="before each run, wait at most this many seconds for other processes to leave"
        f" the machine idle (< {OTHER_CPU_LIMIT} cores); 0: don't wait (default 60)",
    )
    parser.add_argument(
        "--noise-retries",
        type=int,
        default=2,
        help="measure a run again (at most this many times) when other processes used more"
        f" than {OTHER_CPU_LIMIT} cores during it (default 2)",
    )
    parser.add_argument(
        "--start-timeout",
        type=float,
        default=20.0,
        help="seconds a proxy has to accept a TLS handshake (default 20)",
    )
    path = parser.add_mutually_exclusive_group()
    path.add_argument(
        "--client-cert",
        action="store_true",
        help="mTLS: wrk -> haproxy (core 1) -> TLS 1.3 with a client certificate"
        f" ({CLIENT_SPIFFE}) -> the proxy; the reference nginx verifies it (ssl_verify_client)",
    )
    path.add_argument(
        "--haproxy",
        action="store_true",
        help="the same path through haproxy, without a client certificate (the baseline for"
        " --client-cert)",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--workers-scaling",
        action="store_true",
        help="1 vs 2 workers ({workers}) on both cores, keep-alive test",
    )
    mode.add_argument(
        "--idle-conns",
        type=positive_int,
        default=None,
        metavar="N",
        help="hold N idle keep-alive TLS connections and report RSS per connection",
    )
    parser.add_argument(
        "--idle-wait", type=float, default=5.0, help="seconds to hold them idle (default 5)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--json-out", type=Path, default=None, metavar="FILE", help="also write the JSON to FILE"
    )
    parser.add_argument(
        "--tlsgate",
        default=str(REPO / ".venv" / "bin" / "tlsgate"),
        help="the tlsgate CLI that makes the certificates (default: %(default)s)",
    )
    return parser


def _terminate(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def raise_nofile() -> None:
    """Soft open-file limit up to the hard one; every process started later inherits it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    originated = args.haproxy or args.client_cert
    try:
        args.test_keys = select_tests(args.tests, originated=originated)
    except ValueError as exc:
        parser.error(str(exc))
    if originated and (args.workers_scaling or args.idle_conns):
        parser.error("--haproxy and --client-cert go with the comparison mode only")
    # Only the comparison mode runs the tests; the others use HTTP/1.1 alone.
    http2 = H2_TEST in args.test_keys and not (args.workers_scaling or args.idle_conns)
    tools_needed = ("nginx", "wrk", "taskset", "gcc") + (("haproxy",) if originated else ())
    for tool in tools_needed + (("h2load",) if http2 else ()):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is not on PATH (scripts/install.sh --bench installs it)")
    if (os.cpu_count() or 1) < 2:
        parser.error("needs 2 cores: one for the proxy, one for wrk and the upstream")
    try:
        specs = proxy_specs(args.proxy_cmd, args.label, caddy=args.caddy)
    except ValueError as exc:
        parser.error(str(exc))
    args.specs = specs
    if any(s.template is None and s.kind == "caddy" for s in specs) and not shutil.which("caddy"):
        parser.error("caddy is not on PATH (scripts/install.sh --bench installs it)")
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    raise_nofile()
    env = environment(haproxy=originated, caddy=any(s.kind == "caddy" for s in specs), h2load=http2)
    env["key_type"] = args.key_type
    result: Result
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tlsgate-proxy-")))
        progress(f"working in {tmp}")
        certs = make_certs(tmp, args.tlsgate, client=args.client_cert, key_type=args.key_type)
        tools = Tools(tmp)
        upstream = start_upstream(tmp, args.start_timeout)
        stack.callback(upstream.stop)
        check_content("upstream", upstream.port, None, small_body())
        tls = client_context(certs.root_ca, certs.client)
        # With HTTP/2 a proxy has connections x streams requests in flight to the upstream.
        idle = max(UPSTREAM_IDLE, args.conns * args.h2_streams) if http2 else UPSTREAM_IDLE
        args.upstream_idle = idle
        ctx = Context(tmp, certs, tls, upstream, tools, stack, args, http2, idle)
        if args.workers_scaling:
            result = run_scaling(ctx, specs)
        elif args.idle_conns:
            result = run_idle(ctx, specs)
        else:
            result = run_compare(ctx, specs)
    print(render_json(result, env, args) if args.json else render_text(result, env, args))
    if args.json_out:
        args.json_out.write_text(render_json(result, env, args) + "\n")
    if result.flagged:
        loud("some runs were flagged: see above")
        return 1
    return 0


def run() -> int:
    """main() with the exit status of an error or an interruption (bench/proxy.py calls it)."""
    try:
        return main()
    except BenchError as error:
        print(f"proxy.py: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # every process and the temporary directory are already gone
        return 130

"""Full ACME flows per second: ``tlsgate ca serve`` next to Debian's ``pebble``, on this machine.

A flow is one new client getting one certificate (bench/acme_client.py): directory, newNonce,
newAccount (new key), newOrder for one name (``f<N>.example.test``, never the same twice),
the authorization, http-01 (answered by this process on one port both servers validate
against), authorization polls every 50 ms, finalize with a fresh P-256 CSR, order polls,
download. The same client code drives both servers, one server at a time, ``--flows`` flows
per run with ``--concurrency`` flows in flight.

Validation delays are off on both sides: pebble runs with ``PEBBLE_VA_NOSLEEP=1`` (no 0-15 s
sleep before validating), ``PEBBLE_WFE_NONCEREJECT=0`` (no deliberate badNonce) and
``PEBBLE_AUTHZREUSE=0``; tlsgate has no artificial delay. Names resolve to 127.0.0.1 through
``--resolve`` (tlsgate) and ``pebble-challtestsrv``'s DNS (pebble).

The servers run on core 0 (``taskset -c 0``); this client, its http-01 responder and
pebble-challtestsrv on core 1. The figures: flows/s (wall clock) and flows per server
CPU-second (utime+stime of the server's process tree from /proc, before and after each run).
Every flow must end with a certificate whose SAN is exactly the ordered name and whose key is
the CSR's; a run with any failed flow, or that hit ``--run-timeout``, is flagged (exit 1).

    .venv/bin/python bench/acme.py --flows 200 --concurrency 10,1 --repeat 3
    .venv/bin/python bench/acme.py --flows 20 --concurrency 4 --repeat 1     # smoke run

Exit codes: 0 all runs clean, 1 some run flagged, 2 set-up error (a tool missing, a server
did not start), 130 interrupted. Everything lives in one temporary directory; every process
started here runs in its own session and is stopped at the end, also on an error or Ctrl-C.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import shlex
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import aiohttp
import uvloop

from acme_client import FlowResult, Http01Responder, new_session, run_flow
from procfs import cpu_model, free_port, tool_version
from service import Service, start

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
#: The ACME servers run here, one at a time under load.
SERVER_CPUS = "0"
#: The client (this process), its http-01 responder and pebble-challtestsrv.
CLIENT_CPUS = "1"
SERVERS = ("tlsgate", "pebble")
#: A process using at least this much of its core is the bottleneck of its run.
SATURATED = 0.90
PEBBLE_ENV = {"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0", "PEBBLE_AUTHZREUSE": "0"}


def progress(message: str) -> None:
    print(f"[acme-bench] {message}", file=sys.stderr, flush=True)


class BenchError(Exception):
    """A set-up step failed: the run cannot go on (exit 2)."""


def self_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -- processes -----------------------------------------------------------------------------------


def spawn(name: str, argv: Sequence[str], log: Path, env: dict[str, str] | None = None) -> Service:
    progress(f"starting {name}: {shlex.join(argv)}")
    return start(name, argv, log, cwd=log.parent, env=env)


def wait_for(service: Service, ready: str | None, port: int, tls: ssl.SSLContext | None,
             timeout: float) -> None:  # fmt: skip
    """Until ``ready`` is in the log (if given) and the port takes a (TLS) connection."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if not service.alive():
            raise BenchError(
                f"{service.name} exited with {service.popen.returncode} while starting:\n"
                f"{service.log_tail()}"
            )
        if ready is None or ready in service.log_text():
            try:
                with socket.create_connection((HOST, port), timeout=2.0) as sock:
                    if tls is not None:
                        with tls.wrap_socket(sock, server_hostname="localhost"):
                            pass
                return
            except (OSError, ssl.SSLError) as exc:
                last = str(exc)
        time.sleep(0.1)
    raise BenchError(
        f"{service.name} did not start within {timeout:g} s ({last}):\n{service.log_tail()}"
    )


def run_tool(argv: Sequence[str], env: dict[str, str]) -> None:
    try:
        subprocess.run(list(argv), env=env, check=True, capture_output=True, timeout=120)
    except subprocess.CalledProcessError as exc:
        raise BenchError(
            f"{shlex.join(argv)} failed ({exc.returncode}): {exc.stderr.decode(errors='replace')}"
        ) from exc
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BenchError(f"{shlex.join(argv)}: {exc}") from exc


@dataclass
class Setup:
    tmp: Path
    tls: ssl.SSLContext
    http01_port: int
    servers: dict[str, Service] = field(default_factory=dict)
    directories: dict[str, str] = field(default_factory=dict)
    dns: Service | None = None


def start_servers(tmp: Path, args: argparse.Namespace, stack: contextlib.ExitStack) -> Setup:
    env = {**os.environ, "TLSGATE_STATE": str(tmp / "state")}
    env.pop("TLSGATE_CA_PASSPHRASE", None)
    tlsgate = [args.tlsgate]
    root = tmp / "root.pem"
    run_tool([*tlsgate, "ca", "init"], env)
    run_tool([*tlsgate, "ca", "export-root", "--out", str(root)], env)
    tls = ssl.create_default_context(cafile=str(root))
    setup = Setup(tmp, tls, free_port())
    taskset = ["taskset", "-c", SERVER_CPUS]
    if "tlsgate" in args.servers:
        port = free_port()
        service = spawn(
            "tlsgate",
            [
                *taskset, *tlsgate, "ca", "serve", "--listen", f"{HOST}:{port}",
                "--http-01-port", str(setup.http01_port),
                "--resolve", "*.example.test=127.0.0.1",
            ],
            tmp / "tlsgate.log",
            env,
        )  # fmt: skip
        stack.callback(service.stop)
        wait_for(service, "ACME directory at", port, tls, args.start_timeout)
        setup.servers["tlsgate"] = service
        setup.directories["tlsgate"] = f"https://localhost:{port}/directory"
    if "pebble" in args.servers:
        run_tool([*tlsgate, "ca", "issue", "localhost", "127.0.0.1", "--out", str(tmp / "pc")], env)
        dns_port = free_port()
        dns = spawn(
            "pebble-challtestsrv",
            [
                "taskset", "-c", CLIENT_CPUS, args.challtestsrv,
                "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
                "-dns01", f"{HOST}:{dns_port}", "-http01", "", "-https01", "", "-tlsalpn01", "",
                "-management", f"{HOST}:{free_port()}",
            ],
            tmp / "challtestsrv.log",
        )  # fmt: skip
        stack.callback(dns.stop)
        wait_for(dns, None, dns_port, None, args.start_timeout)  # its TCP DNS listener
        setup.dns = dns
        port = free_port()
        config = {
            "pebble": {
                "listenAddress": f"{HOST}:{port}",
                "managementListenAddress": f"{HOST}:{free_port()}",
                "certificate": str(tmp / "pc" / "fullchain.pem"),
                "privateKey": str(tmp / "pc" / "key.pem"),
                "httpPort": setup.http01_port,
                "tlsPort": free_port(),
                "ocspResponderURL": "",
                "externalAccountBindingRequired": False,
            }
        }
        (tmp / "pebble.json").write_text(json.dumps(config, indent=2))
        service = spawn(
            "pebble",
            [
                *taskset, args.pebble, "-config", str(tmp / "pebble.json"),
                "-dnsserver", f"{HOST}:{dns_port}",
            ],
            tmp / "pebble.log",
            {**os.environ, **PEBBLE_ENV},
        )  # fmt: skip
        stack.callback(service.stop)
        wait_for(service, None, port, tls, args.start_timeout)
        setup.servers["pebble"] = service
        setup.directories["pebble"] = f"https://localhost:{port}/dir"
    return setup


# -- runs ----------------------------------------------------------------------------------------


@dataclass
class Sample:
    server: str
    concurrency: int
    flows: int
    ok: int
    wall: float
    server_cpu: float
    client_cpu: float
    dns_cpu: float
    latencies: list[float]
    steps: dict[str, float]  # median seconds per step over the ok flows
    requests_per_flow: float
    validation_gets_per_flow: float
    bad_nonces: int
    responder_misses: int
    errors: list[str]
    timed_out: bool

    @property
    def flows_per_second(self) -> float:
        return self.ok / self.wall if self.wall > 0 else 0.0

    @property
    def flows_per_cpu_second(self) -> float | None:
        return self.ok / self.server_cpu if self.server_cpu > 0 else None

    @property
    def flagged(self) -> str | None:
        if self.timed_out:
            return f"hit the run timeout: {self.ok}/{self.flows} flows finished"
        if self.errors:
            return f"{len(self.errors)} failed flows (first: {self.errors[0]})"
        return None


class Counter:
    def __init__(self) -> None:
        self.n = 0

    def next(self) -> int:
        self.n += 1
        return self.n


async def one_run(
    setup: Setup,
    server: str,
    concurrency: int,
    flows: int,
    responder: Http01Responder,
    names: Counter,
    run_timeout: float,
    fresh_connections: bool = False,
) -> Sample:
    service = setup.servers[server]
    directory = setup.directories[server]
    results: list[FlowResult] = []
    todo = iter(range(flows))

    async def worker(session: aiohttp.ClientSession | None) -> None:
        for _ in todo:
            name = f"f{names.next()}.example.test"
            results.append(await run_flow(directory, setup.tls, responder, name, session))

    misses0 = responder.misses
    cpu0, client0 = service.cpu_seconds(), self_cpu_seconds()
    dns0 = setup.dns.cpu_seconds() if setup.dns and server == "pebble" else 0.0
    start = time.perf_counter()
    timed_out = False
    try:
        async with contextlib.AsyncExitStack() as stack, asyncio.timeout(run_timeout):
            shared = None
            if not fresh_connections:
                shared = await stack.enter_async_context(new_session(setup.tls, concurrency))
            await asyncio.gather(*(worker(shared) for _ in range(concurrency)))
    except TimeoutError:
        timed_out = True
    wall = time.perf_counter() - start
    cpu1, client1 = service.cpu_seconds(), self_cpu_seconds()
    dns1 = setup.dns.cpu_seconds() if setup.dns and server == "pebble" else 0.0
    if not service.alive():
        raise BenchError(f"{server} exited during a run:\n{service.log_tail()}")
    good = [r for r in results if r.error is None]
    errors = [f"{r.name}: {r.error}" for r in results if r.error is not None]
    step_names = sorted({s for r in good for s in r.stats.steps})
    steps = {s: statistics.median(r.stats.steps.get(s, 0.0) for r in good) for s in step_names}
    per = max(len(good), 1)
    return Sample(
        server=server,
        concurrency=concurrency,
        flows=flows,
        ok=len(good),
        wall=wall,
        server_cpu=cpu1 - cpu0,
        client_cpu=client1 - client0,
        dns_cpu=dns1 - dns0,
        latencies=sorted(r.seconds for r in good),
        steps=steps,
        requests_per_flow=sum(r.stats.requests for r in good) / per,
        validation_gets_per_flow=sum(r.stats.validation_gets for r in good) / per,
        bad_nonces=sum(r.stats.bad_nonces for r in results),
        responder_misses=responder.misses - misses0,
        errors=errors,
        timed_out=timed_out,
    )


async def run_all(setup: Setup, args: argparse.Namespace) -> list[Sample]:
    responder = Http01Responder(setup.http01_port)
    await responder.start()
    names = Counter()
    samples: list[Sample] = []
    servers = [s for s in SERVERS if s in setup.servers]
    try:
        for server in servers:
            if args.warmup:
                progress(f"warm-up: {args.warmup} flows against {server}")
                warm = await one_run(
                    setup, server, min(args.warmup, 4), args.warmup, responder, names,
                    args.run_timeout, args.fresh_connections,
                )  # fmt: skip
                if warm.flagged:
                    raise BenchError(f"warm-up against {server}: {warm.flagged}")
        for rep in range(args.repeat):
            for concurrency in args.concurrency:
                # Alternate which server goes first, so a drift over time hits both alike.
                order = servers if rep % 2 == 0 else servers[::-1]
                for server in order:
                    await asyncio.sleep(0.5)
                    sample = await one_run(
                        setup, server, concurrency, args.flows, responder, names,
                        args.run_timeout, args.fresh_connections,
                    )  # fmt: skip
                    progress(
                        f"run {rep + 1}/{args.repeat} {server} c={concurrency}: "
                        f"{sample.ok}/{sample.flows} ok in {sample.wall:.2f} s = "
                        f"{sample.flows_per_second:.1f} flows/s, server CPU "
                        f"{sample.server_cpu:.2f} s"
                        + (f"  !!! {sample.flagged}" if sample.flagged else "")
                    )
                    samples.append(sample)
    finally:
        await responder.stop()
    return samples


# -- output --------------------------------------------------------------------------------------


def med(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def spread(values: Sequence[float], fmt: str = "{:.1f}") -> str:
    if not values:
        return "-"
    text = fmt.format(med(values))
    if len(values) > 1:
        text += f" ({fmt.format(min(values))}-{fmt.format(max(values))})"
    return text


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def environment() -> dict[str, object]:
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu_model() or platform.processor(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "pebble": tool_version(["dpkg-query", "-W", "-f", "${Version}", "pebble"]),
        "tlsgate_commit": tool_version(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]),
    }


def summarize(samples: Sequence[Sample]) -> dict[str, object]:
    lat = [x for s in samples for x in s.latencies]
    cpu_rates = [r for s in samples if (r := s.flows_per_cpu_second) is not None]
    return {
        "flows_per_second": med([s.flows_per_second for s in samples]),
        "flows_per_cpu_second": med(cpu_rates),
        "server_cores": med([s.server_cpu / s.wall for s in samples]),
        "client_cores": med([s.client_cpu / s.wall for s in samples]),
        "latency_p50_ms": 1000 * percentile(lat, 0.5),
        "latency_p95_ms": 1000 * percentile(lat, 0.95),
    }


def render_text(samples: Sequence[Sample], env: dict[str, object], args: argparse.Namespace) -> str:
    lines = [
        "Full ACME flows (account -> order -> http-01 -> finalize -> download), one client",
        f"{env['cpus']} CPUs ({env['cpu']}), kernel {env['kernel']}; Python {env['python']};"
        f" pebble {env['pebble']}; tlsgate {env['tlsgate_commit']}",
        f"servers on core {SERVER_CPUS}, client on core {CLIENT_CPUS}; {args.flows} flows per run,"
        f" {args.repeat} run(s) each; median (min-max over runs)",
        "",
    ]
    header = (
        f"{'server':<8} {'conc':>4} {'flows/s':>20} {'flows/CPU-s':>20} {'srv cores':>9}"
        f" {'cli cores':>9} {'p50 ms':>7} {'p95 ms':>7} {'req/flow':>8} {'GETs/val':>8}"
        f" {'errors':>6}"
    )
    flagged: list[str] = []
    for concurrency in args.concurrency:
        lines.append(header)
        rates: dict[str, tuple[float, float]] = {}
        for server in SERVERS:
            group = [s for s in samples if s.server == server and s.concurrency == concurrency]
            if not group:
                continue
            summary = summarize(group)
            cpu_rates = [r for s in group if (r := s.flows_per_cpu_second) is not None]
            errors = sum(s.flows - s.ok for s in group)
            lines.append(
                f"{server:<8} {concurrency:>4} {spread([s.flows_per_second for s in group]):>20}"
                f" {spread(cpu_rates):>20} {summary['server_cores']:>9.2f}"
                f" {summary['client_cores']:>9.2f} {summary['latency_p50_ms']:>7.0f}"
                f" {summary['latency_p95_ms']:>7.0f}"
                f" {med([s.requests_per_flow for s in group]):>8.1f}"
                f" {med([s.validation_gets_per_flow for s in group]):>8.1f}"
                f" {errors:>6}{'  !!!' if errors else ''}"
            )  # fmt: skip
            rates[server] = (
                float(summary["flows_per_second"]),  # type: ignore[arg-type]
                float(summary["flows_per_cpu_second"]),  # type: ignore[arg-type]
            )
            for s in group:
                if s.flagged:
                    flagged.append(f"{server} c={concurrency}: {s.flagged}")
        if "tlsgate" in rates and "pebble" in rates and rates["pebble"][0] and rates["pebble"][1]:
            lines.append(
                f"ratio tlsgate/pebble at concurrency {concurrency}: "
                f"flows/s {rates['tlsgate'][0] / rates['pebble'][0]:.2f}x, "
                f"flows per server CPU-s {rates['tlsgate'][1] / rates['pebble'][1]:.2f}x"
            )
        lines.append("")
    lines += [
        "flows/s: finished flows / wall time. flows/CPU-s: per CPU-second of the server's process",
        "tree (utime+stime, /proc). srv/cli cores: CPU of the server / this client during the run",
        f"(1.00 = a whole core; >= {SATURATED:.2f} means that side was the bottleneck). p50/p95:",
        "one flow's duration. req/flow: HTTP requests to the server. GETs/val: http-01 GETs the",
        "server made per validation (pebble validates from several concurrent requests).",
    ]
    pebble = [s for s in samples if s.server == "pebble"]
    if pebble:
        lines.append(
            f"pebble-challtestsrv (DNS for pebble, core {CLIENT_CPUS}, not in pebble's CPU):"
            f" {med([s.dns_cpu for s in pebble]):.2f} CPU-s per run (median)"
        )
    if flagged:
        lines += ["", "!!! FLAGGED: the figures of these runs are not trustworthy:"]
        lines += [f"!!!   {f}" for f in flagged]
    return "\n".join(lines)


def render_json(samples: Sequence[Sample], env: dict[str, object], args: argparse.Namespace) -> str:
    def sample_json(s: Sample) -> dict[str, object]:
        return {
            "server": s.server,
            "concurrency": s.concurrency,
            "flows": s.flows,
            "ok": s.ok,
            "wall_s": round(s.wall, 4),
            "server_cpu_s": round(s.server_cpu, 3),
            "client_cpu_s": round(s.client_cpu, 3),
            "dns_cpu_s": round(s.dns_cpu, 3),
            "flows_per_s": round(s.flows_per_second, 3),
            "flows_per_cpu_s": (
                round(s.flows_per_cpu_second, 3) if s.flows_per_cpu_second is not None else None
            ),
            "latency_p50_ms": round(1000 * percentile(s.latencies, 0.5), 1),
            "latency_p95_ms": round(1000 * percentile(s.latencies, 0.95), 1),
            "step_median_ms": {k: round(1000 * v, 1) for k, v in s.steps.items()},
            "requests_per_flow": round(s.requests_per_flow, 2),
            "validation_gets_per_flow": round(s.validation_gets_per_flow, 2),
            "bad_nonces": s.bad_nonces,
            "responder_misses": s.responder_misses,
            "errors": s.errors[:20],
            "error_count": len(s.errors) + (s.flows - s.ok - len(s.errors)),
            "timed_out": s.timed_out,
            "flagged": s.flagged,
        }

    ratios: dict[str, object] = {}
    for concurrency in args.concurrency:
        by = {}
        for server in SERVERS:
            group = [s for s in samples if s.server == server and s.concurrency == concurrency]
            if group:
                by[server] = summarize(group)
        if "tlsgate" in by and "pebble" in by:
            t, p = by["tlsgate"], by["pebble"]
            ratios[str(concurrency)] = {
                key: round(float(t[key]) / float(p[key]), 3) if float(p[key]) else None  # type: ignore[arg-type]
                for key in ("flows_per_second", "flows_per_cpu_second")
            }
    return json.dumps(
        {
            "parameters": {
                "flows": args.flows,
                "concurrency": args.concurrency,
                "repeat": args.repeat,
                "warmup": args.warmup,
                "run_timeout": args.run_timeout,
                "servers": args.servers,
                "fresh_connections": args.fresh_connections,
                "pebble_env": PEBBLE_ENV,
                "server_cpus": SERVER_CPUS,
                "client_cpus": CLIENT_CPUS,
            },
            "environment": env,
            "ratios_tlsgate_over_pebble": ratios,
            "samples": [sample_json(s) for s in samples],
        },
        indent=2,
    )


# -- command line --------------------------------------------------------------------------------


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def int_list(text: str) -> list[int]:
    try:
        values = [positive_int(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of integers: {text}") from exc
    if not values:
        raise argparse.ArgumentTypeError("empty list")
    return values


def server_list(text: str) -> list[str]:
    values = [part.strip() for part in text.split(",") if part.strip()]
    if not values or set(values) - set(SERVERS):
        raise argparse.ArgumentTypeError(f"a comma-separated subset of {','.join(SERVERS)}")
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Full ACME flows per second: tlsgate ca serve vs pebble (see bench/README.md)"
    )
    parser.add_argument("--flows", type=positive_int, default=200, help="flows per run (200)")
    parser.add_argument(
        "--concurrency", type=int_list, default=[10, 1],
        help="flows in flight; a comma-separated list runs each (default 10,1)",
    )  # fmt: skip
    parser.add_argument("--repeat", type=positive_int, default=3, help="runs per row (3)")
    parser.add_argument(
        "--warmup", type=int, default=10, help="unmeasured flows per server first (10)"
    )
    parser.add_argument(
        "--run-timeout", type=float, default=120.0,
        help="hard limit per run in seconds; a run that hits it is flagged (120)",
    )  # fmt: skip
    parser.add_argument("--start-timeout", type=float, default=30.0, help="server start (30 s)")
    parser.add_argument(
        "--servers", type=server_list, default=list(SERVERS), help="tlsgate,pebble (both)"
    )
    parser.add_argument(
        "--tlsgate", default=str(REPO / ".venv" / "bin" / "tlsgate"), help="the tlsgate command"
    )
    parser.add_argument("--pebble", default="pebble", help="the pebble binary")
    parser.add_argument(
        "--challtestsrv", default="pebble-challtestsrv", help="the pebble-challtestsrv binary"
    )
    parser.add_argument(
        "--fresh-connections", action="store_true",
        help="a new session (new TLS connections) per flow instead of one keep-alive pool per run",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    parser.add_argument("--json-out", type=Path, help="also write the JSON to this file")
    return parser


def _terminate(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def check_tools(args: argparse.Namespace) -> None:
    needed = ["taskset", args.tlsgate]
    if "pebble" in args.servers:
        needed += [args.pebble, args.challtestsrv]
    for tool in needed:
        if shutil.which(tool) is None:
            raise BenchError(f"{tool} not found (pebble: apt-get install pebble)")
    if (os.cpu_count() or 1) < 2:
        raise BenchError("needs 2 cores: one for the server, one for the client")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    check_tools(args)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    os.sched_setaffinity(0, {int(CLIENT_CPUS)})  # this client; the servers get taskset
    env = environment()
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tlsgate-acme-")))
        progress(f"working in {tmp}")
        setup = start_servers(tmp, args, stack)
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            samples = runner.run(run_all(setup, args))
    text = render_json(samples, env, args) if args.json else render_text(samples, env, args)
    print(text)
    if args.json_out:
        args.json_out.write_text(render_json(samples, env, args) + "\n")
    if any(s.flagged for s in samples):
        progress("!!! some runs were flagged: see above")
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as error:
        print(f"acme.py: error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:  # every process and the temporary directory are already gone
        sys.exit(130)

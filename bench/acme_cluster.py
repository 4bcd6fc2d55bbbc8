"""ACME issuance with one or two ``tlsgate ca serve`` nodes: SQLite vs one and two on PostgreSQL.

The same client load as bench/acme.py (its flows, its http-01 responder, its process helpers):
``--flows`` full flows per run, ``--concurrency`` in flight, against each set-up in turn:

- ``sqlite-1``: one node on a SQLite state directory, nonces in memory (the default there);
- ``sqlite-1-store-nonces``: the same with ``--nonces store`` (the cost of shared nonces on SQLite);
- ``pg-1``: one node on PostgreSQL (nonces in the store, the default there);
- ``pg-1-memory-nonces``: the same with ``--nonces memory`` (the cost of shared nonces on PG);
- ``pg-2``: two nodes on one PostgreSQL database, flows alternating between their directories.

Each set-up gets a fresh state (a new directory or a new database, ``tlsgate ca init``); the
PostgreSQL server (initdb + pg_ctl, as the tests start it) runs for the whole benchmark. Nothing
is pinned to a core: on this 2-core machine the CA nodes, PostgreSQL and the client share both,
so the figure that compares set-ups is flows per CA CPU-second (utime+stime of the ``ca serve``
processes from /proc); PostgreSQL's CPU (its whole process tree) is reported beside it.

    .venv/bin/python bench/acme_cluster.py --flows 300 --concurrency 20 --repeat 3
    .venv/bin/python bench/acme_cluster.py --flows 30 --concurrency 6 --repeat 1   # smoke run

Exit codes as bench/acme.py: 0 clean, 1 a run flagged (failed flows or timeout), 2 set-up error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import uvloop
from acme import (
    HOST,
    REPO,
    BenchError,
    Counter,
    _terminate,
    environment,
    percentile,
    positive_int,
    progress,
    run_tool,
    self_cpu_seconds,
    spawn,
    spread,
    wait_for,
)

from acme_client import FlowResult, Http01Responder, new_session, run_flow
from procfs import free_port, tree_cpu_seconds
from service import Service

if TYPE_CHECKING:
    from tests.store.postgres import PostgresServer

sys.path.insert(0, str(REPO))  # tests.store.postgres: the throwaway PostgreSQL of the tests

#: name -> (store kind, nodes, --nonces)
SETUPS: dict[str, tuple[str, int, str]] = {
    "sqlite-1": ("sqlite", 1, "auto"),
    "sqlite-1-store-nonces": ("sqlite", 1, "store"),
    "pg-1": ("postgres", 1, "auto"),
    "pg-1-memory-nonces": ("postgres", 1, "memory"),
    "pg-2": ("postgres", 2, "auto"),
}


@dataclass
class Cluster:
    name: str
    nodes: list[Service]
    directories: list[str]
    tls: ssl.SSLContext


@dataclass
class Run:
    setup: str
    flows: int
    ok: int
    wall: float
    ca_cpu: float
    pg_cpu: float
    client_cpu: float
    latencies: list[float]
    errors: list[str]
    timed_out: bool

    @property
    def per_second(self) -> float:
        return self.ok / self.wall if self.wall else 0.0

    @property
    def per_ca_cpu_second(self) -> float:
        return self.ok / self.ca_cpu if self.ca_cpu else 0.0

    @property
    def flagged(self) -> str | None:
        if self.timed_out:
            return f"hit the run timeout: {self.ok}/{self.flows} flows finished"
        if self.errors:
            return f"{len(self.errors)} failed flows (first: {self.errors[0]})"
        return None


def start_cluster(
    name: str, tmp: Path, url: str | None, http01_port: int, args: argparse.Namespace,
    stack: contextlib.ExitStack,
) -> Cluster:  # fmt: skip
    """``tlsgate ca init`` on a fresh store, then its ``ca serve`` node(s)."""
    kind, count, nonces = SETUPS[name]
    home = tmp / name
    home.mkdir()
    env = {**os.environ, "TLSGATE_STATE": str(home / "state")}
    env.pop("TLSGATE_CA_PASSPHRASE", None)
    if kind == "postgres":
        assert url is not None
        env["TLSGATE_STORE"] = url
    else:
        env.pop("TLSGATE_STORE", None)
    run_tool([args.tlsgate, "ca", "init"], env)
    run_tool([args.tlsgate, "ca", "export-root", "--out", str(home / "root.pem")], env)
    tls = ssl.create_default_context(cafile=str(home / "root.pem"))
    nodes, directories = [], []
    for index in range(count):
        port = free_port()
        node = spawn(
            f"{name}-node{index}",
            [
                args.tlsgate, "ca", "serve", "--listen", f"{HOST}:{port}",
                "--http-01-port", str(http01_port), "--resolve", "*.example.test=127.0.0.1",
                "--nonces", nonces, "--order-burst", "100000",
            ],
            home / f"node{index}.log",
            env,
        )  # fmt: skip
        stack.callback(node.stop)
        wait_for(node, "ACME directory at", port, tls, args.start_timeout)
        nodes.append(node)
        directories.append(f"https://localhost:{port}/directory")
    return Cluster(name, nodes, directories, tls)


def postmaster_pid(data: Path) -> int:
    """The postmaster's PID (first line of postmaster.pid): the root of PostgreSQL's tree."""
    return int((data / "postmaster.pid").read_text().splitlines()[0])


async def one_run(
    cluster: Cluster, flows: int, concurrency: int, responder: Http01Responder, names: Counter,
    pg_root: int | None, run_timeout: float,
) -> Run:  # fmt: skip
    """``flows`` flows, ``concurrency`` at a time, flow n to directory n mod nodes."""
    results: list[FlowResult] = []
    todo = iter(range(flows))

    async def worker() -> None:
        for index in todo:
            directory = cluster.directories[index % len(cluster.directories)]
            name = f"f{names.next()}.example.test"
            results.append(await run_flow(directory, cluster.tls, responder, name, session))

    def ca_cpu() -> float:
        return sum(node.cpu_seconds() for node in cluster.nodes)

    def pg_cpu() -> float:
        return tree_cpu_seconds(pg_root) if pg_root is not None else 0.0

    ca0, pg0, client0 = ca_cpu(), pg_cpu(), self_cpu_seconds()
    start = time.perf_counter()
    timed_out = False
    async with new_session(cluster.tls, concurrency) as session:
        try:
            async with asyncio.timeout(run_timeout):
                await asyncio.gather(*(worker() for _ in range(concurrency)))
        except TimeoutError:
            timed_out = True
    wall = time.perf_counter() - start
    ca1, pg1, client1 = ca_cpu(), pg_cpu(), self_cpu_seconds()
    for node in cluster.nodes:
        if not node.alive():
            raise BenchError(f"{node.name} exited during a run:\n{node.log_tail()}")
    good = [r for r in results if r.error is None]
    return Run(
        setup=cluster.name,
        flows=flows,
        ok=len(good),
        wall=wall,
        ca_cpu=ca1 - ca0,
        pg_cpu=pg1 - pg0,
        client_cpu=client1 - client0,
        latencies=sorted(r.seconds for r in good),
        errors=[f"{r.name}: {r.error}" for r in results if r.error is not None],
        timed_out=timed_out,
    )


def render(runs: Sequence[Run], args: argparse.Namespace, load: str) -> str:
    env = environment()
    lines = [
        "ACME flows (account -> order -> http-01 -> finalize -> download), one or two CA nodes",
        f"{env['cpus']} CPUs ({env['cpu']}), Python {env['python']}; tlsgate"
        f" {env['tlsgate_commit']}; load average before: {load}",
        f"{args.flows} flows per run at concurrency {args.concurrency}, {args.repeat} run(s);"
        " median (min-max); nothing pinned",
        "",
        f"{'set-up':<22} {'flows/s':>18} {'flows/CA CPU-s':>18} {'CA cores':>8}"
        f" {'PG CPU-s/flow':>13} {'p50 ms':>7} {'p95 ms':>7} {'errors':>6}",
    ]
    medians: dict[str, tuple[float, float]] = {}
    for name in args.setups:
        group = [r for r in runs if r.setup == name]
        if not group:
            continue
        rates = [r.per_second for r in group]
        per_cpus = [r.per_ca_cpu_second for r in group]
        medians[name] = (statistics.median(rates), statistics.median(per_cpus))
        latencies = [x for r in group for x in r.latencies]
        p50, p95 = percentile(latencies, 0.5), percentile(latencies, 0.95)
        pg = statistics.median(r.pg_cpu / max(r.ok, 1) for r in group)
        errors = sum(r.flows - r.ok for r in group)
        lines.append(
            f"{name:<22} {spread(rates):>18} {spread(per_cpus):>18}"
            f" {statistics.median(r.ca_cpu / r.wall for r in group):>8.2f}"
            f" {1000 * pg:>10.1f} ms {1000 * p50:>7.0f} {1000 * p95:>7.0f} {errors:>6}"
        )
    base = medians.get("sqlite-1")
    if base:
        lines.append("")
        lines.append("ratio to sqlite-1 (flows/s, flows per CA CPU-s):")
        for name, (rate, per_cpu) in medians.items():
            if name != "sqlite-1":
                lines.append(f"  {name:<22} {rate / base[0]:.2f}x  {per_cpu / base[1]:.2f}x")
    if "pg-1" in medians and "pg-2" in medians:
        one, two = medians["pg-1"], medians["pg-2"]
        lines.append(f"  pg-2 / pg-1            {two[0] / one[0]:.2f}x  {two[1] / one[1]:.2f}x")
    flagged = [f"{r.setup}: {r.flagged}" for r in runs if r.flagged]
    if flagged:
        lines += ["", "!!! FLAGGED: the figures of these runs are not trustworthy:"]
        lines += [f"!!!   {f}" for f in flagged]
    return "\n".join(lines)


async def run_all(tmp: Path, args: argparse.Namespace, pg: PostgresServer | None) -> list[Run]:
    responder = Http01Responder(free_port())
    await responder.start()
    names = Counter()
    runs: list[Run] = []
    try:
        for name in args.setups:
            url = pg_root = None
            if SETUPS[name][0] == "postgres":
                assert pg is not None
                url, pg_root = pg.create_database(), postmaster_pid(pg.data)
            with contextlib.ExitStack() as nodes:
                cluster = start_cluster(name, tmp, url, responder.port, args, nodes)
                if args.warmup:
                    await one_run(cluster, args.warmup, 4, responder, names, None, 60)
                for rep in range(args.repeat):
                    await asyncio.sleep(0.5)
                    run = await one_run(
                        cluster, args.flows, args.concurrency, responder, names, pg_root,
                        args.run_timeout,
                    )  # fmt: skip
                    progress(
                        f"{name} run {rep + 1}/{args.repeat}: {run.ok}/{run.flows} ok in"
                        f" {run.wall:.2f} s = {run.per_second:.1f} flows/s, CA CPU"
                        f" {run.ca_cpu:.2f} s, PostgreSQL CPU {run.pg_cpu:.2f} s"
                        + (f"  !!! {run.flagged}" if run.flagged else "")
                    )
                    runs.append(run)
    finally:
        await responder.stop()
    return runs


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flows", type=positive_int, default=300, help="flows per run (300)")
    parser.add_argument("--concurrency", type=positive_int, default=20, help="in flight (20)")
    parser.add_argument("--repeat", type=positive_int, default=3, help="runs per set-up (3)")
    parser.add_argument("--warmup", type=int, default=10, help="unmeasured flows first (10)")
    parser.add_argument("--run-timeout", type=float, default=120.0, help="per run (120 s)")
    parser.add_argument("--start-timeout", type=float, default=30.0, help="node start (30 s)")
    parser.add_argument(
        "--setups", type=lambda t: [s for s in t.split(",") if s], default=list(SETUPS),
        help=f"comma-separated subset of {','.join(SETUPS)} (all)",
    )  # fmt: skip
    parser.add_argument(
        "--tlsgate", default=str(REPO / ".venv" / "bin" / "tlsgate"), help="the tlsgate command"
    )
    args = parser.parse_args(argv)
    unknown = set(args.setups) - set(SETUPS)
    if unknown:
        parser.error(f"unknown set-up(s): {', '.join(sorted(unknown))}")
    if shutil.which(args.tlsgate) is None:
        raise BenchError(f"{args.tlsgate} not found")
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminate)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tlsgate-acmec-")))
        pg = None
        if any(SETUPS[s][0] == "postgres" for s in args.setups):
            from tests.store.postgres import PostgresServer, find_pg_bin

            initdb = find_pg_bin("initdb")
            if initdb is None:
                raise BenchError("PostgreSQL (initdb) not found")
            pg = PostgresServer(Path(initdb).parent, free_port())
            stack.callback(pg.remove)
            pg.start()
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runs = runner.run(run_all(tmp, args, pg))
    print(render(runs, args, load))
    return 1 if any(r.flagged for r in runs) else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as error:
        print(f"acme_cluster.py: error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)

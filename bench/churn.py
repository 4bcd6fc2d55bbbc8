"""Connection churn vs the memory of ``tlsgate serve``: the RSS curve, with and without recycling.

One ``tlsgate serve --workers 1`` at a time in front of the upstream nginx of bench/proxy.py (its
certificates, upstream, wrk and handshake shim are reused), pinned to core 0; wrk on core 1 opens
a new TLS connection per request (``Connection: close``), alternating segments of full handshakes
(the shim drops the session) and resumed ones (tickets). After each segment the harness reads
/proc: the worker's VmRSS (the newest child with recycling on, else the one process) and the PSS
of the whole process tree (master, worker, draining workers; shared pages counted once).

Each run stops after ``--connections`` connections or ``--seconds`` seconds, whichever is first.
Any wrk error (connect, read, write, timeout, non-2xx) flags the run: recycling must not cost a
single request.

    .venv/bin/python bench/churn.py                                  # the two default runs
    .venv/bin/python bench/churn.py --connections 5000 --segment 2   # smoke run, ~40 s
    .venv/bin/python bench/churn.py --run 'before={root}/.venv/bin/python -m tlsgate serve ...'

A run is ``LABEL=TEMPLATE`` (placeholders as bench/proxy.py's ``--proxy-cmd``); without ``--run``
the runs are this tree's serve with recycling off and with ``--max-connections-per-worker
RECYCLE``. Everything listens on 127.0.0.1; every process is stopped at the end. Exit status: 0,
1 if a run was flagged, 2 on a set-up error.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from procfs import process_tree
from proxybench.cli import raise_nofile
from proxybench.common import HOST, PROXY_CPUS, REPO, BenchError, progress
from proxybench.nginx import start_upstream
from proxybench.proxies import ProxySpec, start_proxy
from proxybench.services import Service, client_context, make_certs
from proxybench.wrk import Tools

SERVE = (
    "{root}/.venv/bin/tlsgate serve --host localhost --listen 127.0.0.1:{port}"
    " --to http://127.0.0.1:{upstream_port} --cert {cert} --key {key} --workers {workers}"
    " --no-http --access-log off --state {state}"
)
#: wrk connections: enough to keep one worker busy, few enough to leave core 1 to nginx too.
CONNECTIONS = 20
#: Handshake mix of the segments, in turn.
KINDS = ("full", "resumed")


@dataclass(frozen=True)
class Point:
    connections: int  # completed requests so far, each on a new TLS connection
    kind: str  # the segment just ended: full or resumed handshakes
    worker_rss_mib: float
    tree_pss_mib: float
    workers: int  # worker processes alive (draining ones included)


@dataclass
class Run:
    label: str
    command: str
    start_rss_mib: float = 0.0
    points: list[Point] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def status_kib(pid: int, key: str) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def pss_kib(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def worker_of(service: Service) -> tuple[int, int]:
    """The current worker's pid (the newest child, or the process itself) and the number of
    worker processes."""
    children = process_tree(service.pid)[1:]
    return (max(children), len(children)) if children else (service.pid, 1)


def sample(service: Service, connections: int, kind: str) -> Point:
    worker, count = worker_of(service)
    return Point(
        connections=connections,
        kind=kind,
        worker_rss_mib=status_kib(worker, "VmRSS") / 1024,
        tree_pss_mib=sum(pss_kib(pid) for pid in process_tree(service.pid)) / 1024,
        workers=count,
    )


def churn(
    tools: Tools, service: Service, run: Run, *, connections: int, seconds: float, segment: int
) -> None:
    """wrk segments until ``connections`` or ``seconds``; a sample after each."""
    total, started, turn = 0, time.monotonic(), 0
    run.start_rss_mib = status_kib(worker_of(service)[0], "VmRSS") / 1024
    while total < connections and time.monotonic() - started < seconds:
        kind = KINDS[turn % len(KINDS)]
        turn += 1
        out, _, _ = tools._wrk(
            f"https://{HOST}:{service.port}",
            "/100b",
            CONNECTIONS,
            segment,
            close=True,
            drop_sessions=kind == "full",
            script=tools.report_lua,
        )
        line = next((ln for ln in out.splitlines() if ln.startswith("WRKJSON ")), None)
        if line is None:
            raise BenchError(f"wrk printed no report line:\n{out}")
        data = json.loads(line.removeprefix("WRKJSON "))
        total += int(data["requests"])
        for key in ("connect", "read", "write", "status", "timeout"):
            if data[key]:
                run.errors[key] = run.errors.get(key, 0) + int(data[key])
        if not service.alive():
            raise BenchError(f"{run.label}: serve exited:\n{service.log_tail()}")
        point = sample(service, total, kind)
        run.points.append(point)
        progress(
            f"  {run.label}: {total} connections, worker RSS {point.worker_rss_mib:.0f} MiB,"
            f" all processes {point.tree_pss_mib:.0f} MiB PSS, {point.workers} worker(s)"
        )
    run.seconds = time.monotonic() - started


def render(runs: Sequence[Run]) -> str:
    lines = []
    for run in runs:
        lines.append(f"## {run.label}: {run.command}")
        flagged = f"  ERRORS {run.errors}" if run.errors else "  no failed request"
        lines.append(
            f"{len(run.points)} samples in {run.seconds:.0f} s; worker RSS at start"
            f" {run.start_rss_mib:.0f} MiB;{flagged}"
        )
        lines.append("| connections | segment | worker RSS (MiB) | all processes PSS (MiB) |")
        lines.append("|---:|---|---:|---:|")
        for p in run.points:
            lines.append(
                f"| {p.connections} | {p.kind} | {p.worker_rss_mib:.0f} | {p.tree_pss_mib:.0f} |"
            )
        lines.append("")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--run",
        action="append",
        default=[],
        metavar="LABEL=TEMPLATE",
        help="a serve command to measure (repeatable); default: recycling off and on",
    )
    parser.add_argument(
        "--recycle",
        type=int,
        default=20000,
        help="--max-connections-per-worker of the default 'recycling' run (default 20000)",
    )
    parser.add_argument(
        "--connections", type=int, default=60000, help="connections per run (default 60000)"
    )
    parser.add_argument(
        "--seconds", type=float, default=150.0, help="at most this long per run (default 150)"
    )
    parser.add_argument(
        "--segment", type=int, default=5, help="seconds of wrk between samples (default 5)"
    )
    parser.add_argument("--json", action="store_true", help="JSON instead of tables")
    parser.add_argument(
        "--tlsgate",
        default=str(REPO / ".venv" / "bin" / "tlsgate"),
        help="the tlsgate CLI that makes the certificates (default: %(default)s)",
    )
    return parser


def runs_of(args: argparse.Namespace) -> list[tuple[str, str]]:
    if not args.run:
        return [
            ("recycling off", SERVE),
            (
                f"recycling every {args.recycle}",
                f"{SERVE} --max-connections-per-worker {args.recycle}",
            ),
        ]
    runs = []
    for text in args.run:
        label, sep, template = text.partition("=")
        if not sep or not label or not template:
            raise BenchError(f"--run {text!r}: expected LABEL=TEMPLATE")
        runs.append((label, template))
    return runs


def _terminate(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    raise_nofile()
    runs: list[Run] = []
    try:
        with tempfile.TemporaryDirectory(prefix="churn-bench-") as tmp_name:
            tmp = Path(tmp_name)
            with contextlib.ExitStack() as stack:
                certs = make_certs(tmp, args.tlsgate)
                upstream = start_upstream(tmp, 30.0)
                stack.callback(upstream.stop)
                tls = client_context(certs.root_ca)
                tools = Tools(tmp)
                for label, template in runs_of(args):
                    service = start_proxy(
                        ProxySpec(label, template),
                        tmp,
                        certs,
                        upstream,
                        workers=1,
                        cpus=PROXY_CPUS,
                        start_timeout=30.0,
                        tls=tls,
                    )
                    try:
                        run = Run(label, template)
                        churn(
                            tools,
                            service,
                            run,
                            connections=args.connections,
                            seconds=args.seconds,
                            segment=args.segment,
                        )
                        runs.append(run)
                    finally:
                        service.stop()
    except BenchError as exc:
        print(f"churn bench: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([asdict(run) for run in runs], indent=2))
    else:
        print(render(runs))
    return 1 if any(run.errors for run in runs) else 0


if __name__ == "__main__":
    sys.exit(main())

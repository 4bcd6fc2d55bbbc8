"""``tlsgate monitor``: every endpoint, file and store in ``monitor.toml``, on a schedule.

Without ``--once`` it runs until SIGTERM: a round every ``interval``, Prometheus metrics on
``listen``, alerts to the log and the webhook. With ``--once`` it checks everything one time and
prints a table (``--json``: every report), for cron jobs and for trying a config out.

Exit codes of ``--once`` are Nagios's, the worst verdict of all targets: 0 OK, 1 WARNING,
2 CRITICAL. Like every tlsgate command it also exits 2 for input it cannot use (a config error, an
unreadable CA file), which is the same overlap Nagios plugins have: 2 means "look at this",
and stderr says whether at a certificate or at the config.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.x509.oid import NameOID
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from tlsgate.cli.output import console, print_json
from tlsgate.errors import ConfigError
from tlsgate.inspect.explain import STYLE
from tlsgate.inspect.report import Report, Severity
from tlsgate.plural import count

if TYPE_CHECKING:  # aiohttp, httpx and prometheus load when the monitor runs, not per command
    from tlsgate.monitor import MonitorConfig

__all__ = ["register"]


def _issuer(report: Report) -> str:
    """The issuer's common name: the column is for recognising a CA, --json has the full DN."""
    leaf = report.leaf
    if leaf is None:
        return ""
    names = leaf.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = names[0].value if names else leaf.issuer.rfc4514_string()
    return value if isinstance(value, str) else value.decode(errors="replace")


def _problem(report: Report) -> str:
    worst = max(report.findings, key=lambda f: f.severity, default=None)
    return worst.message if worst is not None and worst.severity is not Severity.OK else ""


def _table(reports: Sequence[Report], now: datetime) -> Table:
    table = Table(show_edge=False, header_style="bold")
    table.add_column("target", overflow="fold")
    table.add_column("verdict", no_wrap=True)
    table.add_column("expires", no_wrap=True)
    table.add_column("days left", no_wrap=True, justify="right")
    table.add_column("issuer", overflow="fold")
    table.add_column("first problem", overflow="fold")
    # Worst first, then what runs out first: the rows that need someone are at the top.
    far = datetime.max.replace(tzinfo=UTC)
    ordered = sorted(reports, key=lambda r: (-int(r.severity), r.chain_not_after or far, r.target))
    for report in ordered:
        style = STYLE[report.severity]
        expires = report.chain_not_after
        if expires is None:
            when, left = Text("-", style="dim"), Text("-", style="dim")
        else:
            # Whole days still left, as the findings count them ("expires in 4 days").
            days = math.floor((expires - now).total_seconds() / 86400)
            when, left = Text(f"{expires:%Y-%m-%d}"), Text(str(days), style=style)
        # Text, not markup: target names and messages may contain "[".
        table.add_row(
            Text(report.target),
            Text(report.severity.label, style=style),
            when,
            left,
            Text(_issuer(report)),
            Text(_problem(report)),
        )
    return table


def _once(config: MonitorConfig, concurrency: int | None, as_json: bool) -> int:
    import uvloop

    from tlsgate.monitor import run_round

    stderr = Console(stderr=True, highlight=False)
    bar = Progress(
        TextColumn("checking"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=stderr,
        transient=True,
        disable=not stderr.is_terminal,
    )
    task = bar.add_task("checking", total=len(config.targets))

    def progress(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    with bar:
        result = uvloop.run(run_round(config, concurrency=concurrency, progress=progress))
    if as_json:
        print_json([r.to_json() for r in result.reports])
    else:
        console.print(_table(result.reports, datetime.now(UTC)))
    counts = {s: sum(r.severity is s for r in result.reports) for s in Severity}
    stderr.print(
        f"{len(result.reports)} checked in {result.duration:.1f} s "
        f"(at most {result.peak_in_flight} at once, limit {result.concurrency}): "
        + ", ".join(f"{n} {s.label}" for s, n in counts.items()),
        markup=False,
    )
    return int(result.severity)


def _logging(level: int) -> None:
    logging.basicConfig(level=level, format="tlsgate: %(message)s", stream=sys.stderr)


def cmd_monitor(args: argparse.Namespace) -> int:
    if args.concurrency is not None and args.concurrency < 1:
        raise ConfigError(f"--concurrency {args.concurrency}: must be at least 1")
    if args.json and not args.once:
        raise ConfigError("--json goes with --once (the service exposes /metrics instead)")
    from tlsgate.monitor import check_trusts, load, serve_monitor

    config = load(Path(args.config))
    check_trusts(config)
    if args.once:
        _logging(logging.WARNING)  # only a check that broke; the table says the rest
        return _once(config, args.concurrency, args.json)
    _logging(logging.INFO)

    def ready(url: str | None) -> None:
        where = f"; metrics at {url}" if url else ""
        logging.getLogger("tlsgate.monitor").info(
            "monitoring %s every %g s%s",
            count(len(config.targets), "target"),
            config.interval,
            where,
        )

    import uvloop

    return uvloop.run(serve_monitor(config, concurrency=args.concurrency, ready=ready))


def register(commands: Any) -> None:
    p = commands.add_parser(
        "monitor",
        help="check many endpoints, files and stores on a schedule; /metrics and alerts",
    )
    p.add_argument("-c", "--config", required=True, metavar="FILE", help="monitor.toml")
    p.add_argument(
        "--once",
        action="store_true",
        help="one round, print a table, exit 0/1/2 for the worst verdict (OK/WARNING/CRITICAL)",
    )
    p.add_argument("--json", action="store_true", help="with --once: every report as JSON")
    p.add_argument(
        "--concurrency", type=int, metavar="N", help="checks in flight at most (overrides config)"
    )
    p.set_defaults(handler=cmd_monitor)

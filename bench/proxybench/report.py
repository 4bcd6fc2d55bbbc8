"""The table and the JSON."""

from __future__ import annotations

import argparse
import json
import os
import platform
from collections.abc import Mapping, Sequence

from procfs import cpu_model, tool_version
from proxybench.common import (
    ALL_CPUS,
    CLIENT_SPIFFE,
    LOAD_CPUS,
    NGINX_CONNECTIONS,
    PROXY_CPUS,
    SATURATED,
)
from proxybench.measure import Sample
from proxybench.results import (
    CompareResult,
    Comparison,
    IdleReport,
    Result,
    Row,
    ScalingResult,
    TestResult,
)


def environment(
    *, haproxy: bool = False, caddy: bool = False, h2load: bool = False
) -> dict[str, object]:
    cpu = cpu_model()
    wrk = tool_version(["wrk", "-v"]).split(" Copyright")[0]
    extra = {}
    if haproxy:
        extra["haproxy"] = tool_version(["haproxy", "-v"]).split(" - ")[0]
    if caddy:
        extra["caddy"] = "caddy " + tool_version(["caddy", "version"]).split()[0]
    if h2load:
        extra["h2load"] = tool_version(["h2load", "--version"])
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu or platform.processor(),
        "kernel": platform.release(),
        "nginx": tool_version(["nginx", "-v"]).removeprefix("nginx version: "),
        "wrk": wrk,
        "openssl": tool_version(["openssl", "version"]).split(" (")[0],
        "python": platform.python_version(),
        **extra,
    }


def fmt_ratio(value: float | None) -> str:
    return f"{value:.2f}x" if value is not None else "-"


_KEY_NAMES = {
    "ecdsa-p256": "ECDSA P-256",
    "ecdsa-p384": "ECDSA P-384",
    "rsa-2048": "RSA-2048",
    "rsa-3072": "RSA-3072",
}


def header_lines(env: Mapping[str, object]) -> list[str]:
    return [
        "TLS-terminating proxy benchmark: TLS 1.3, "
        + _KEY_NAMES.get(str(env.get("key_type", "ecdsa-p256")), str(env.get("key_type")))
        + " certificate from tlsgate ca",
        f"{env['cpus']} CPUs ({env['cpu']}), kernel {env['kernel']};"
        f" {env['nginx']}, {env['wrk']}, {env['openssl']}"
        + (f", {env['caddy']}" if "caddy" in env else "")
        + (f", {env['h2load']}" if "h2load" in env else ""),
    ]


def flagged_lines(flagged: Sequence[str]) -> list[str]:
    if not flagged:
        return []
    lines = ["", "!!! FLAGGED: the figures of these runs are not trustworthy:"]
    return lines + [f"!!!   {p}" for p in dict.fromkeys(flagged)]


def render_compare(
    result: CompareResult, env: Mapping[str, object], args: argparse.Namespace
) -> str:
    lines = header_lines(env)
    if args.haproxy or args.client_cert:
        lines.append(
            f"wrk -> plain HTTP -> {env.get('haproxy', 'haproxy')} -> TLS 1.3"
            + (f" with a client certificate ({CLIENT_SPIFFE})" if args.client_cert else "")
            + " -> proxy; nginx"
            + (" with ssl_verify_client on" if args.client_cert else "")
        )
        lines.append(
            f"proxies pinned to core {PROXY_CPUS}; wrk (-t1), haproxy and the upstream nginx"
            f" pinned to core {LOAD_CPUS}; median of {args.repeat} run(s) of {args.duration} s"
            " per cell"
        )
    else:
        lines.append(
            f"proxies pinned to core {PROXY_CPUS}; wrk (-t1) and the upstream nginx pinned to"
            f" core {LOAD_CPUS}; median of {args.repeat} run(s) of {args.duration} s per cell"
        )
    if args.access_log:
        lines.append("access logs on: every proxy logs every request as a JSON line to a file")
    h2 = next((t.test for t in result.tests if t.test.h2), None)
    if h2 is not None:
        lines.append(
            f"{h2.label}: h2load -t1 -c{h2.connections} -m{h2.streams} on core {LOAD_CPUS}"
            " instead of wrk, HTTP/2 by ALPN (h2 checked every run); the reference nginx has"
            f" http2 on its listener; nginx and Caddy keep up to {args.upstream_idle} idle"
            " upstream connections"
        )
    lines.append("")
    lines += compare_table(result)
    if len(result.proxies) > 1:
        lines += ["", *ratio_table(result)]
    lines += upstream_lines(result)
    lines += [
        "",
        "rate: requests/s (MB/s for 1 MiB: MB = 10^6 bytes read by wrk, headers included).",
        "/cpu-s: requests (MB) per CPU-second of the proxy's process tree (utime+stime from",
        "/proc). cores: the proxy's CPU during the run (1.00 = its core never idle). p99: wrk's",
        "99th percentile latency. load: wrk + upstream (+ haproxy) CPU in cores (they share core",
        "1: near 1.00 = the client side was the limit). ratio: proxy / nginx on 'rate' when both",
        f"proxies used >= {SATURATED:.0%} of their core, else on 'per-cpu' (work per proxy",
        "CPU-second): the median of the per-round ratios; range: the lowest and highest",
        "per-round ratio. p99 x: proxy's p99 / nginx's p99 (median per round). vs caddy: the",
        "same ratio as 'ratio', to Caddy instead of nginx. In each round nginx runs between",
        "the proxies under test, so with one or two of them each runs right next to nginx.",
    ]
    if h2 is not None:
        lines += [
            f"{h2.label}: requests are h2load's succeeded ones; p99 is over every request in",
            "h2load's per-request log (--log-file; nearest rank), as h2load's report itself has",
            "only min/max/mean/sd; load is h2load + upstream.",
        ]
    if result.shim:
        lines.append(result.shim.describe() + ".")
    lines += spec_lines(args)
    return "\n".join(lines + flagged_lines(result.flagged))


def compare_table(result: CompareResult) -> list[str]:
    """One line per (test, proxy): its figures, its ratios to nginx and to Caddy."""
    width = max(len(label) for label in result.proxies)
    head = (
        f"{'test':<22} {'unit':<5} {'proxy':<{width}} {'rate':>9} {'/cpu-s':>8} {'cores':>5}"
        f" {'p99 ms':>8} {'ratio':>6} {'range':>9} {'basis':<7} {'p99 x':>6} {'vs caddy':>8}"
        f" {'load':>5}"
    )
    lines = [head, "-" * len(head)]
    for t in result.tests:
        unit = "MB/s" if t.test.bulk else "req/s"
        for i, (label, row) in enumerate(zip(result.proxies, t.rows, strict=True)):
            first = f"{t.test.label:<22} {unit:<5}" if i == 0 else " " * 28
            cells = [
                f"{first} {label:<{width}} {row.rate:>9,.0f} {row.per_cpu:>8,.0f}"
                f" {row.util:>5.2f} {row.p99_ms:>8.2f}"
            ]
            if i == 0:
                cells.append(f"{'-':>6} {'-':>9} {'-':<7} {'-':>6}")
            else:
                c = t.versus(i)
                spread = c.ratio_range
                rng = f"{spread[0]:.2f}-{spread[1]:.2f}" if spread else "-"
                cells.append(
                    f"{fmt_ratio(c.ratio):>6} {rng:>9} {c.basis:<7} {fmt_ratio(c.ratio_p99):>6}"
                )
            vs_caddy = None
            if result.caddy is not None and i not in (0, result.caddy):
                vs_caddy = t.versus(i, result.caddy).ratio
            cells.append(f"{fmt_ratio(vs_caddy):>8} {row.load:>5.2f}")
            lines.append(" ".join(cells) + ("  <-- FLAGGED" if row.problems else ""))
    return lines


def upstream_lines(result: CompareResult) -> list[str]:
    """The tests in which some proxy opened upstream connections during its measured runs (its
    pool of idle ones was smaller than its requests in flight): how many, median per run."""
    lines = []
    for t in result.tests:
        counts = [row.upstream_conns for row in t.rows]
        if any(counts):
            cells = ", ".join(
                f"{label} {'-' if c is None else f'{c:,.0f}'}"
                for label, c in zip(result.proxies, counts, strict=True)
            )
            lines.append(f"{t.test.label}: upstream connections opened per run: {cells}")
    return ["", *lines] if lines else []


def ratio_table(result: CompareResult) -> list[str]:
    """The ratios alone: one column per proxy to nginx, then each other proxy to Caddy, then
    the p99 ratios to nginx."""
    others = list(range(1, len(result.proxies)))
    to_caddy = [i for i in others if result.caddy is not None and i != result.caddy]
    columns = [f"{result.proxies[i]}/nginx" for i in others]
    columns += [f"{result.proxies[i]}/caddy" for i in to_caddy]
    columns += [f"p99 {result.proxies[i]}/nginx" for i in others]
    widths = [max(6, len(c)) for c in columns]
    lines = [
        f"{'ratios':<22} " + "  ".join(f"{c:>{w}}" for c, w in zip(columns, widths, strict=True))
    ]
    lines.append("-" * len(lines[0]))
    for t in result.tests:
        caddy = result.caddy
        values = [t.versus(i).ratio for i in others]
        values += [t.versus(i, caddy).ratio for i in to_caddy if caddy is not None]
        values += [t.versus(i).ratio_p99 for i in others]
        cells = (f"{fmt_ratio(v):>{w}}" for v, w in zip(values, widths, strict=True))
        lines.append(f"{t.test.label:<22} " + "  ".join(cells))
    return lines


def spec_lines(args: argparse.Namespace) -> list[str]:
    """What each proxy under test is: its command template, or the built-in configuration."""
    return [f"{spec.label} = {spec.name}" for spec in args.specs[1:]]


def render_scaling(
    result: ScalingResult, env: Mapping[str, object], args: argparse.Namespace
) -> str:
    lines = header_lines(env)
    lines += [
        f"workers scaling, keep-alive 100 B, {args.conns} connections, median of {args.repeat}"
        f" run(s) of {args.duration} s: the proxy runs on cores {ALL_CPUS} (not pinned);",
        f"wrk (-t1) and the upstream nginx stay on core {LOAD_CPUS}, so with 2 workers the proxy"
        " shares core 1 with them: not a clean 2-core figure.",
        "",
    ]
    head = (
        f"{'proxy':<14} {'1w req/s':>9} {'/cpu-s':>7} {'cores':>5} {'2w req/s':>9}"
        f" {'/cpu-s':>7} {'cores':>5} {'2w/1w':>6} {'load 2w':>7}"
    )
    lines += [head, "-" * len(head)]
    for label in result.proxies:
        one, two = result.rows[(label, 1)], result.rows[(label, 2)]
        lines.append(
            f"{label:<14} {one.rate:>9,.0f} {one.per_cpu:>7,.0f} {one.util:>5.2f}"
            f" {two.rate:>9,.0f} {two.per_cpu:>7,.0f} {two.util:>5.2f}"
            f" {fmt_ratio(two.rate / one.rate if one.rate else None):>6} {two.load:>7.2f}"
        )
    lines += [
        "",
        "cores: proxy CPU in cores (of 2); load: wrk + upstream CPU in cores; 2w/1w: req/s ratio.",
    ]
    lines += spec_lines(args)
    return "\n".join(lines + flagged_lines(result.flagged))


def render_idle(result: IdleReport, env: Mapping[str, object], args: argparse.Namespace) -> str:
    lines = header_lines(env)
    lines += [
        f"{args.idle_conns} idle keep-alive TLS connections (a handshake and one GET /100b each),"
        f" held {args.idle_wait:g} s; proxy pinned to core {PROXY_CPUS}",
        "",
    ]
    head = (
        f"{'proxy':<14} {'opened':>7} {'alive':>7} {'RSS before':>12} {'RSS open':>12}"
        f" {'KiB/conn':>9} {'RSS closed':>12}"
    )
    lines += [head, "-" * len(head)]
    for r in result.results:
        lines.append(
            f"{r.proxy:<14} {r.opened:>7} {r.alive_after_wait:>7} {r.rss_before_kib:>8,} KiB"
            f" {r.rss_open_kib:>8,} KiB {r.kib_per_conn:>9.1f} {r.rss_closed_kib:>8,} KiB"
        )
    lines += [
        "",
        "RSS: VmRSS summed over the proxy's process tree (user-space memory only: the kernel's",
        "socket buffers are not in it). KiB/conn = (open - before) / opened. alive: connections",
        "that still answered a second request after the idle wait. nginx allocates its",
        f"connection slots ({NGINX_CONNECTIONS}) at start-up, so they are in 'before'.",
    ]
    lines += spec_lines(args)
    return "\n".join(lines + flagged_lines(result.flagged))


def render_text(result: Result, env: Mapping[str, object], args: argparse.Namespace) -> str:
    if isinstance(result, CompareResult):
        return render_compare(result, env, args)
    if isinstance(result, ScalingResult):
        return render_scaling(result, env, args)
    return render_idle(result, env, args)


def sample_json(s: Sample) -> dict[str, object]:
    return {
        "rate": round(s.rate, 1),
        "per_cpu_second": round(s.per_cpu, 1),
        "cpu_us_per_request": round(s.cpu_us_per_request, 2),
        "requests": s.run.requests,
        "bytes": s.run.bytes,
        "duration_s": round(s.run.duration, 3),
        "wall_s": round(s.wall, 3),
        "proxy_cpu_s": round(s.proxy_cpu, 3),
        "upstream_cpu_s": round(s.upstream_cpu, 3),
        "client_cpu_s": round(s.client_cpu, 3),
        "haproxy_cpu_s": round(s.originator_cpu, 3),
        "other_cpu_s": round(s.other_util * s.wall, 3),
        "irq_softirq_cpu_s": round(s.machine.irq, 3),
        "proxy_core_irq_softirq_cpu_s": round(s.machine.proxy_core_irq, 3),
        "per_cpu_second_with_proxy_core_irq": round(s.per_cpu_with_irq, 1),
        "steal_s": round(s.machine.steal, 3),
        "latency_p50_ms": round(s.run.p50_ms, 3),
        "latency_p99_ms": round(s.run.p99_ms, 3),
        "errors": s.run.errors,
        "handshakes_full": s.run.full,
        "handshakes_resumed": s.run.resumed,
        "upstream_connections_opened": s.upstream_conns,
        "client": s.test.client,
        "protocol": s.run.protocol,
        "tls_version": s.run.tls_version,
        "cipher": s.run.cipher,
        "problems": list(s.all_problems),
    }


def row_json(row: Row | None) -> dict[str, object] | None:
    if row is None:
        return None
    low, high = row.spread(lambda s: s.per_cpu)
    return {
        "rate_median": round(row.rate, 1),
        "per_cpu_second_median": round(row.per_cpu, 1),
        "per_cpu_second_min": round(low, 1),
        "per_cpu_second_max": round(high, 1),
        "proxy_cores_median": round(row.util, 3),
        "load_cores_median": round(row.load, 3),
        "samples": [sample_json(s) for s in row.samples],
    }


def rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def comparison_json(c: Comparison) -> dict[str, object]:
    return {
        "ratio": rounded(c.ratio),
        "ratio_basis": c.basis if c.candidate else None,
        "ratio_rate": rounded(c.ratio_rate),
        "ratio_per_cpu": rounded(c.ratio_per_cpu),
        "ratio_per_cpu_with_proxy_core_irq": rounded(c.ratio_per_cpu_with_irq),
        "ratio_p99": rounded(c.ratio_p99),
        "ratio_range": None if c.ratio_range is None else [round(r, 4) for r in c.ratio_range],
        "round_ratios": [round(r, 4) for r in c.round_ratios(c.basis_value())],
    }


def test_json(t: TestResult, result: CompareResult) -> dict[str, object]:
    """One test: nginx's row as "reference", the first proxy under test as "candidate" with its
    ratios at the top level (as before several proxies could run), and every proxy under
    "proxies" with its ratios to nginx and, for all but Caddy itself, to Caddy."""
    first = t.versus(1) if len(t.rows) > 1 else t.alone
    proxies = []
    for i, label in enumerate(result.proxies[1:], 1):
        entry: dict[str, object] = {"proxy": label, **(row_json(t.rows[i]) or {})}
        entry["to_nginx"] = comparison_json(t.versus(i))
        if result.caddy is not None and i != result.caddy:
            entry["to_caddy"] = comparison_json(t.versus(i, result.caddy))
        proxies.append(entry)
    return {
        "test": t.test.key,
        "unit": "MB" if t.test.bulk else "requests",
        "client": t.test.client,
        "connections": t.test.connections,
        "streams_per_connection": t.test.streams,
        "reference": row_json(t.rows[0]),
        "candidate": row_json(first.candidate),
        **comparison_json(first),
        "proxies": proxies,
    }


def render_json(result: Result, env: Mapping[str, object], args: argparse.Namespace) -> str:
    out: dict[str, object] = {
        "benchmark": "proxy",
        "proxies": result.proxies,
        "proxy_cmd": [spec.name for spec in args.specs[1:]],
        "access_log": args.access_log,
        "params": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "repeat": args.repeat,
            "conns": args.conns,
            "bulk_conns": args.bulk_conns,
            "h2_streams": args.h2_streams,
            "upstream_idle": args.upstream_idle,
            "proxy_cpus": PROXY_CPUS,
            "load_cpus": LOAD_CPUS,
            "client_cert": args.client_cert,
            "haproxy": args.haproxy or args.client_cert,
            "client_spiffe": CLIENT_SPIFFE if args.client_cert else None,
        },
        "environment": dict(env),
        "flagged": list(dict.fromkeys(result.flagged)),
    }
    if isinstance(result, CompareResult):
        out["mode"] = "compare"
        out["shim_check"] = None if result.shim is None else vars(result.shim)
        out["caddy"] = None if result.caddy is None else result.proxies[result.caddy]
        out["tests"] = [test_json(t, result) for t in result.tests]
    elif isinstance(result, ScalingResult):
        out["mode"] = "workers-scaling"
        out["scaling"] = [
            {"proxy": label, "workers": workers, **(row_json(row) or {})}
            for (label, workers), row in result.rows.items()
        ]
    else:
        out["mode"] = "idle-conns"
        out["idle"] = [
            {**vars(r), "errors": list(r.errors), "kib_per_conn": round(r.kib_per_conn, 2)}
            for r in result.results
        ]
    return json.dumps(out, indent=2)

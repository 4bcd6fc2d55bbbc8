"""The table and the JSON."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path

from procfs import tool_version
from proxybench.common import (
    ALL_CPUS,
    CLIENT_SPIFFE,
    LOAD_CPUS,
    NGINX_CONNECTIONS,
    PROXY_CPUS,
    SATURATED,
)
from proxybench.measure import Sample
from proxybench.results import CompareResult, IdleReport, Result, Row, ScalingResult


def environment(*, haproxy: bool = False) -> dict[str, object]:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.partition(":")[2].strip()
                break
    wrk = tool_version(["wrk", "-v"]).split(" Copyright")[0]
    extra = {}
    if haproxy:
        extra["haproxy"] = tool_version(["haproxy", "-v"]).split(" - ")[0]
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


def header_lines(env: Mapping[str, object]) -> list[str]:
    return [
        "TLS-terminating proxy benchmark: TLS 1.3, ECDSA P-256 certificate from tlsgate ca",
        f"{env['cpus']} CPUs ({env['cpu']}), kernel {env['kernel']};"
        f" {env['nginx']}, {env['wrk']}, {env['openssl']}",
    ]


def flagged_lines(flagged: Sequence[str]) -> list[str]:
    if not flagged:
        return []
    lines = ["", "!!! FLAGGED: the figures of these runs are not trustworthy:"]
    return lines + [f"!!!   {p}" for p in dict.fromkeys(flagged)]


def render_compare(
    result: CompareResult, env: Mapping[str, object], args: argparse.Namespace
) -> str:
    candidate = result.proxies[1] if len(result.proxies) > 1 else None
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
    lines.append("")
    head = (
        f"{'test':<22} {'unit':<5} {'nginx':>9} {'/cpu-s':>8} {'cores':>5}"
        f" {'proxy':>9} {'/cpu-s':>8} {'cores':>5} {'ratio':>6} {'range':>9} {'basis':<7}"
        f" {'load':>5}"
    )
    lines += [head, "-" * len(head)]
    for c in result.comparisons:
        unit = "MB/s" if c.test.bulk else "req/s"
        ref, cand = c.reference, c.candidate
        cells = [f"{c.test.label:<22} {unit:<5} {ref.rate:>9,.0f} {ref.per_cpu:>8,.0f}"]
        cells.append(f"{ref.util:>5.2f}")
        spread = c.ratio_range
        if cand is not None and spread is not None:
            cells.append(f"{cand.rate:>9,.0f} {cand.per_cpu:>8,.0f} {cand.util:>5.2f}")
            cells.append(f"{fmt_ratio(c.ratio):>6} {spread[0]:.2f}-{spread[1]:.2f} {c.basis:<7}")
        else:
            cells.append(f"{'-':>9} {'-':>8} {'-':>5} {'-':>6} {'-':>9} {'-':<7}")
        cells.append(f"{max(r.load for r in (ref, cand) if r is not None):>5.2f}")
        problems = ref.problems + (cand.problems if cand else [])
        lines.append(" ".join(cells) + ("  <-- FLAGGED" if problems else ""))
    lines += [
        "",
        "nginx, proxy: requests/s (MB/s for 1 MiB: MB = 10^6 bytes read by wrk, headers",
        "included). /cpu-s: requests (MB) per CPU-second of the proxy's process tree",
        "(utime+stime from /proc). cores: the proxy's CPU during the run (1.00 = its core",
        "never idle). load: wrk + upstream (+ haproxy) CPU in cores (they share core 1: near",
        "1.00 = the client side was the limit). ratio: proxy / nginx on 'rate' when both",
        f"proxies used >= {SATURATED:.0%} of their core, else on 'per-cpu' (work per proxy",
        "CPU-second): the median of the per-round ratios (the two proxies run back to back in",
        "each round); range: the lowest and highest per-round ratio.",
    ]
    if result.shim:
        lines.append(result.shim.describe() + ".")
    if candidate:
        lines.append(f"proxy = {candidate}: {args.proxy_cmd}")
    return "\n".join(lines + flagged_lines(result.flagged))


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
    if len(result.proxies) > 1:
        lines.append(f"{result.proxies[1]}: {args.proxy_cmd}")
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
    if len(result.proxies) > 1:
        lines.append(f"{result.proxies[1]}: {args.proxy_cmd}")
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


def render_json(result: Result, env: Mapping[str, object], args: argparse.Namespace) -> str:
    out: dict[str, object] = {
        "benchmark": "proxy",
        "proxies": result.proxies,
        "proxy_cmd": args.proxy_cmd,
        "params": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "repeat": args.repeat,
            "conns": args.conns,
            "bulk_conns": args.bulk_conns,
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
        out["tests"] = [
            {
                "test": c.test.key,
                "unit": "MB" if c.test.bulk else "requests",
                "connections": c.test.connections,
                "reference": row_json(c.reference),
                "candidate": row_json(c.candidate),
                "ratio": rounded(c.ratio),
                "ratio_basis": c.basis if c.candidate else None,
                "ratio_rate": rounded(c.ratio_rate),
                "ratio_per_cpu": rounded(c.ratio_per_cpu),
                "ratio_per_cpu_with_proxy_core_irq": rounded(c.ratio_per_cpu_with_irq),
                "ratio_range": (
                    None if c.ratio_range is None else [round(r, 4) for r in c.ratio_range]
                ),
                "round_ratios": [round(r, 4) for r in c.round_ratios(c.basis_value())],
            }
            for c in result.comparisons
        ]
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

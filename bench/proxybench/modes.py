"""The modes: compare, workers scaling, idle connections."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import resource
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from proxybench.common import (
    ALL_CPUS,
    HOST,
    PROXY_CPUS,
    UPSTREAM_IDLE,
    BenchError,
    loud,
    progress,
)
from proxybench.haproxy import start_originator
from proxybench.measure import measure_clean
from proxybench.proxies import ProxySpec, Target, check_client_auth, check_h2, start_proxy
from proxybench.results import CompareResult, IdleReport, IdleResult, Row, ScalingResult, TestResult
from proxybench.services import Certs, Service, check_content, client_context, http_get, small_body
from proxybench.wrk import Tools, make_tests


@dataclass
class Context:
    """Everything the modes share, set up once in the temporary directory."""

    tmp: Path
    certs: Certs
    tls: ssl.SSLContext
    upstream: Service
    tools: Tools
    stack: contextlib.ExitStack
    args: argparse.Namespace
    #: The run has the HTTP/2 test: the reference nginx offers h2, every proxy must select it.
    http2: bool = False
    #: Idle upstream connections the reference nginx and Caddy keep (UPSTREAM_IDLE).
    upstream_idle: int = UPSTREAM_IDLE

    def start(self, spec: ProxySpec, *, workers: int = 1, cpus: str = PROXY_CPUS) -> Service:
        service = start_proxy(
            spec,
            self.tmp,
            self.certs,
            self.upstream,
            workers=workers,
            cpus=cpus,
            start_timeout=self.args.start_timeout,
            tls=self.tls,
            access_log=self.args.access_log,
            http2=self.http2,
            upstream_idle=self.upstream_idle,
        )
        self.stack.callback(service.stop)
        if self.http2:
            try:
                check_h2(spec.label, service.port, client_context(self.certs.root_ca))
                progress(f"  {spec.label} selects h2 when offered h2 and http/1.1 in ALPN")
            except BaseException:
                service.stop()
                raise
        return service

    def target(self, spec: ProxySpec) -> Target:
        """The proxy, and with --haproxy or --client-cert the HAProxy in front of it, checked:
        the pages arrive through HAProxy, and with a client certificate the proxy refuses a
        client without one."""
        proxy = self.start(spec)
        if not (self.args.haproxy or self.args.client_cert):
            return Target(proxy)
        if self.certs.client is not None:
            how = check_client_auth(spec.label, proxy.port, client_context(self.certs.root_ca))
            progress(f"  {spec.label} without a client certificate: {how}")
        originator = start_originator(
            self.tmp,
            f"{proxy.name}-{proxy.port}",
            proxy.port,
            self.certs,
            self.args.start_timeout,
        )
        self.stack.callback(originator.service.stop)
        target = Target(proxy, originator)
        for frontend, port in originator.ports.items():
            check_content(f"{spec.label} through haproxy ({frontend})", port, None, small_body())
        return target


def check_nginx_verified(target: Target) -> None:
    """--client-cert: the reference nginx says it verified HAProxy's client certificate."""
    assert target.originator is not None
    status, body = http_get(target.originator.ports["reuse"], "/tls-client", None)
    if status != 200 or body != b"SUCCESS":
        raise BenchError(
            f"the reference nginx did not verify haproxy's client certificate: {status} {body!r}"
        )
    progress("  the reference nginx verified haproxy's client certificate ($ssl_client_verify)")


def run_order(count: int) -> list[int]:
    """The order of the proxies in one round, nginx (0) in the middle: with one or two proxies
    under test, each runs right before or after nginx, so their ratio compares adjacent runs."""
    others = list(range(1, count))
    half = len(others) // 2
    return [*others[:half], 0, *others[half:]]


def run_compare(ctx: Context, specs: Sequence[ProxySpec]) -> CompareResult:
    """Every round starts fresh proxy processes and runs every test on each, alternating order.

    Fresh processes each round: on this VM one process can be 10 % faster or slower than
    another with the same configuration for its whole life (where the host put its memory);
    restarting keeps that from landing in every sample of one side.
    """
    args = ctx.args
    tests = make_tests(args.conns, args.bulk_conns, args.h2_streams)
    tests = [t for t in tests if t.key in args.test_keys]
    shim = None
    rows: dict[tuple[str, str], Row] = {}
    for number in range(args.repeat):
        progress(f"round {number + 1} of {args.repeat}")
        targets = [ctx.target(spec) for spec in specs]
        if number == 0 and ctx.certs.client is not None:
            check_nginx_verified(targets[0])
        if shim is None and any(t.close for t in tests):
            shim = ctx.tools.check_shim(targets[0])
            progress(shim.describe())
            for problem in shim.problems():
                loud(problem)
        for index, test in enumerate(tests):
            # Alternate which proxy goes first, so drift does not always favour the same one.
            order = run_order(len(specs))
            if (number + index) % 2:
                order.reverse()
            for i in order:
                sample = measure_clean(
                    ctx.tools, targets[i], ctx.upstream, test, args, label=specs[i].label
                )
                rows.setdefault((test.key, specs[i].label), Row()).samples.append(sample)
        for target in targets:
            target.stop()
    results = [TestResult(test, [rows[(test.key, spec.label)] for spec in specs]) for test in tests]
    caddy = next((i for i, s in enumerate(specs) if s.template is None and s.kind == "caddy"), None)
    return CompareResult([s.label for s in specs], results, shim, caddy)


def run_scaling(ctx: Context, specs: Sequence[ProxySpec]) -> ScalingResult:
    args = ctx.args
    test = make_tests(args.conns, args.bulk_conns)[0]
    for spec in specs:
        if spec.template is not None and "{workers}" not in spec.template:
            raise BenchError("--workers-scaling needs a {workers} placeholder in --proxy-cmd")
    rows: dict[tuple[str, int], Row] = {}
    for number in range(args.repeat):
        progress(f"round {number + 1} of {args.repeat}")
        for spec in specs:
            for workers in (1, 2):  # a fresh process for every run, as in run_compare
                service = ctx.start(spec, workers=workers, cpus=ALL_CPUS)
                sample = measure_clean(
                    ctx.tools,
                    Target(service),
                    ctx.upstream,
                    test,
                    args,
                    label=f"{spec.label} w{workers}",
                )
                rows.setdefault((spec.label, workers), Row()).samples.append(sample)
                service.stop()
    return ScalingResult([s.label for s in specs], rows)


async def _request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """GET /100b on a keep-alive connection; read the whole response."""
    writer.write(b"GET /100b HTTP/1.1\r\nHost: localhost\r\n\r\n")
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    match = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
    if not head.startswith(b"HTTP/1.1 200") or match is None:
        raise ValueError(f"unexpected response: {head[:80]!r}")
    await reader.readexactly(int(match.group(1)))


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]
CLIENT_ERRORS = (OSError, ssl.SSLError, ValueError, asyncio.IncompleteReadError, TimeoutError)


async def _open_idle(
    port: int, context: ssl.SSLContext, count: int, concurrency: int
) -> tuple[list[Connection], list[str]]:
    """Open ``count`` TLS connections, ``concurrency`` handshakes at a time, one GET on each."""
    gate = asyncio.Semaphore(concurrency)
    errors: list[str] = []

    async def one() -> Connection | None:
        async with gate:
            try:
                reader, writer = await asyncio.open_connection(
                    HOST, port, ssl=context, server_hostname="localhost"
                )
            except CLIENT_ERRORS as exc:
                errors.append(f"connect: {type(exc).__name__}: {exc}")
                return None
            try:
                await asyncio.wait_for(_request(reader, writer), 30.0)
            except CLIENT_ERRORS as exc:
                errors.append(f"request: {type(exc).__name__}: {exc}")
                writer.close()
                return None
            return reader, writer

    results = await asyncio.gather(*(one() for _ in range(count)))
    return [r for r in results if r is not None], errors


async def _idle_session(
    service: Service, context: ssl.SSLContext, count: int, wait: float, timeout: float
) -> IdleResult:
    await asyncio.sleep(1.0)
    before = service.rss_kib()
    t0 = time.monotonic()
    conns, errors = await asyncio.wait_for(_open_idle(service.port, context, count, 64), timeout)
    opened = time.monotonic() - t0
    progress(f"  {len(conns)} connections open after {opened:.1f} s; idle for {wait:g} s")
    try:
        await asyncio.sleep(wait)
        during = service.rss_kib()

        # Still usable after the wait? One more request on each (after the RSS reading).
        async def probe(connection: Connection) -> bool:
            try:
                await asyncio.wait_for(_request(*connection), 30.0)
                return True
            except CLIENT_ERRORS:
                return False

        alive = sum(await asyncio.wait_for(asyncio.gather(*map(probe, conns)), timeout))
    finally:
        for _, writer in conns:
            writer.close()
        await asyncio.wait_for(
            asyncio.gather(*(w.wait_closed() for _, w in conns), return_exceptions=True), timeout
        )
    await asyncio.sleep(2.0)
    return IdleResult(
        proxy=service.name,
        connections=count,
        opened=len(conns),
        alive_after_wait=alive,
        rss_before_kib=before,
        rss_open_kib=during,
        rss_closed_kib=service.rss_kib(),
        seconds_to_open=opened,
        errors=tuple(sorted(set(errors)))[:5],
    )


def run_idle(ctx: Context, specs: Sequence[ProxySpec]) -> IdleReport:
    args = ctx.args
    count: int = args.idle_conns
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if count + 256 > soft:
        raise BenchError(
            f"--idle-conns {count}: the open-file limit is {soft}: at most {soft - 256}"
        )
    timeout = 60.0 + count / 50
    results = []
    for spec in specs:
        service = ctx.start(spec)
        progress(f"{spec.label}: opening {count} keep-alive TLS connections")
        result = asyncio.run(_idle_session(service, ctx.tls, count, args.idle_wait, timeout))
        results.append(result)
        progress(
            f"  {spec.label}: RSS {result.rss_before_kib:,} -> {result.rss_open_kib:,} KiB"
            f" = {result.kib_per_conn:.1f} KiB/conn; {result.alive_after_wait} answered after"
            f" {args.idle_wait:g} s; {result.rss_closed_kib:,} KiB after closing"
        )
        service.stop()
    report = IdleReport([s.label for s in specs], results)
    for problem in report.flagged:
        loud(problem)
    return report

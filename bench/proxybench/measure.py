"""One measured run: CPU of every side before and after, noise, retries."""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, replace

from proxybench.common import (
    OTHER_CPU_LIMIT,
    QUIET_WINDOW,
    BenchError,
    MachineCpu,
    children_cpu_seconds,
    loud,
    progress,
)
from proxybench.haproxy import HAPROXY_ROUTE
from proxybench.nginx import upstream_accepts
from proxybench.proxies import Target
from proxybench.services import Service
from proxybench.wrk import Test, Tools, WrkRun, check_run


@dataclass(frozen=True)
class Sample:
    """One measured wrk (or h2load) run against one proxy, with the CPU each side used during
    it."""

    proxy: str
    test: Test
    run: WrkRun
    wall: float
    proxy_cpu: float
    upstream_cpu: float
    client_cpu: float
    machine: MachineCpu  # the whole machine during the run
    problems: tuple[str, ...]
    originator_cpu: float = 0.0  # HAProxy in front of the proxy (--haproxy, --client-cert)
    #: Connections the upstream accepted during the run: a proxy whose pool of idle upstream
    #: connections is smaller than the requests it has in flight opens (and closes) some.
    upstream_conns: int | None = None

    @property
    def units(self) -> float:
        """Requests, or MB (10^6 bytes read by wrk) for the bulk test."""
        return self.run.bytes / 1e6 if self.test.bulk else float(self.run.requests)

    @property
    def rate(self) -> float:
        return self.units / self.run.duration if self.run.duration else 0.0

    @property
    def per_cpu(self) -> float:
        return self.units / self.proxy_cpu if self.proxy_cpu > 0 else 0.0

    @property
    def cpu_us_per_request(self) -> float:
        return self.proxy_cpu / self.run.requests * 1e6 if self.run.requests else 0.0

    @property
    def proxy_util(self) -> float:
        """Proxy CPU in cores over the run (1.0 = its core was busy all the time)."""
        return self.proxy_cpu / self.wall if self.wall else 0.0

    @property
    def load_util(self) -> float:
        """wrk + upstream (+ HAProxy) CPU in cores over the run (they share one core)."""
        load = self.upstream_cpu + self.client_cpu + self.originator_cpu
        return load / self.wall if self.wall else 0.0

    @property
    def other_util(self) -> float:
        """Cores used by processes that are not part of the benchmark (noise)."""
        ours = self.proxy_cpu + self.upstream_cpu + self.client_cpu + self.originator_cpu
        return max(0.0, self.machine.tasks - ours) / self.wall if self.wall else 0.0

    @property
    def noisy(self) -> bool:
        return self.other_util > OTHER_CPU_LIMIT

    @property
    def all_problems(self) -> tuple[str, ...]:
        if not self.noisy:
            return self.problems
        busy = f"the machine was busy: other processes used {self.other_util:.2f} cores"
        return (*self.problems, busy)

    @property
    def per_cpu_with_irq(self) -> float:
        """Work per CPU-second counting the proxy core's irq + softirq time as the proxy's."""
        cpu = self.proxy_cpu + self.machine.proxy_core_irq
        return self.units / cpu if cpu > 0 else 0.0


def wait_quiet(limit_seconds: float, window: float = QUIET_WINDOW) -> float:
    """Between runs nothing of ours is busy: wait (bounded) until the machine has been idle for
    ``window`` seconds in a row. Returns the other processes' load (cores) in the last sample.
    """
    deadline = time.monotonic() + limit_seconds
    announced = False
    quiet_since = time.monotonic()
    while True:
        before, t0 = MachineCpu.read(), time.monotonic()
        time.sleep(0.5)
        busy = (MachineCpu.read() - before).tasks / (time.monotonic() - t0)
        if busy > OTHER_CPU_LIMIT:
            quiet_since = time.monotonic()
        if time.monotonic() - quiet_since >= window or time.monotonic() >= deadline:
            if announced or busy > OTHER_CPU_LIMIT:
                progress(f"  other processes use {busy:.2f} cores; going on")
            return busy
        if busy > OTHER_CPU_LIMIT and not announced:
            progress(f"  the machine is busy ({busy:.2f} cores): waiting up to {limit_seconds:g} s")
            announced = True


def originator_counts(
    before: dict[str, dict[str, int]], after: dict[str, dict[str, int]], backend: str
) -> tuple[int, int, list[str]]:
    """HAProxy's TLS connections to the proxy during a run: (full, resumed) handshakes, and
    what went wrong on its side (failed handshakes, connection or response errors)."""

    def delta(key: str) -> int:
        return after[backend].get(key, 0) - before[backend].get(key, 0)

    full, resumed = delta("ssl_sess"), delta("ssl_reused_sess")
    problems = [
        f"haproxy: {delta(key)} {what}"
        for key, what in (
            ("ssl_failed_handshake", "failed TLS handshakes with the proxy"),
            ("econ", "connection errors to the proxy"),
            ("eresp", "response errors from the proxy"),
        )
        if delta(key)
    ]
    return full, resumed, problems


def measure(
    tools: Tools,
    target: Target,
    upstream: Service,
    test: Test,
    seconds: int,
    *,
    label: str,
    warmup: int,
    quiet: float,
) -> Sample:
    """A warm-up run (not counted), then the measured run with CPU read before and after.

    Behind HAProxy the handshake counts are HAProxy's (its TLS connections to the proxy); wrk's
    shim sees none, since wrk speaks plain HTTP to HAProxy.
    """
    proxy, originator = target.proxy, target.originator
    if quiet:
        wait_quiet(quiet)
    if warmup:
        tools.load(target, test, warmup)
    if not proxy.alive():
        raise BenchError(f"{proxy.name} died during the warm-up:\n{proxy.log_tail()}")
    accepts0 = upstream_accepts(upstream.port)
    stats0 = originator.stats() if originator else {}
    or0 = originator.service.cpu_seconds() if originator else 0.0
    cpu0, up0, cl0 = proxy.cpu_seconds(), upstream.cpu_seconds(), children_cpu_seconds()
    machine0, self0, t0 = MachineCpu.read(), time.process_time(), time.monotonic()
    run = tools.load(target, test, seconds)
    wall = time.monotonic() - t0
    machine = MachineCpu.read() - machine0
    # The harness's own CPU (reading /proc, starting wrk) is not noise: take it out here.
    machine = replace(machine, tasks=machine.tasks - (time.process_time() - self0))
    cpu1, up1, cl1 = proxy.cpu_seconds(), upstream.cpu_seconds(), children_cpu_seconds()
    or1 = originator.service.cpu_seconds() if originator else 0.0
    accepts1 = upstream_accepts(upstream.port)
    # The second reading's own connection is in its count.
    upstream_conns = accepts1 - accepts0 - 1 if accepts0 is not None and accepts1 else None
    side: list[str] = []
    if originator is not None:
        full, resumed, side = originator_counts(stats0, originator.stats(), HAPROXY_ROUTE[test.key])
        run = replace(run, full=full, resumed=resumed)
        if not originator.service.alive():
            side.append("haproxy exited during the run")
    problems = check_run(run, test) + side
    if not proxy.alive():
        problems.append(f"{proxy.name} exited during the run")
    sample = Sample(
        proxy=label,
        test=test,
        run=run,
        wall=wall,
        proxy_cpu=cpu1 - cpu0,
        upstream_cpu=up1 - up0,
        client_cpu=cl1 - cl0,
        machine=machine,
        problems=tuple(problems),
        originator_cpu=or1 - or0,
        upstream_conns=upstream_conns,
    )
    unit = "MB/s" if test.bulk else "req/s"
    progress(
        f"  {label:<14} {test.label:<22} {sample.rate:>9,.0f} {unit:<5}"
        f" {sample.per_cpu:>8,.0f}/cpu-s  proxy {sample.proxy_util:.2f} cores,"
        f" {test.client}+upstream{'+haproxy' if originator else ''} {sample.load_util:.2f},"
        f" other {sample.other_util:.2f}, new upstream conns {upstream_conns}"
    )
    for problem in sample.all_problems:
        loud(f"{label}, {test.label}: {problem}")
    return sample


def measure_clean(
    tools: Tools,
    target: Target,
    upstream: Service,
    test: Test,
    args: argparse.Namespace,
    *,
    label: str,
) -> Sample:
    """``measure``, again (up to ``--noise-retries`` times) while other processes disturb it."""
    for attempt in range(args.noise_retries + 1):
        sample = measure(
            tools,
            target,
            upstream,
            test,
            args.duration,
            label=label,
            warmup=args.warmup,
            quiet=args.wait_quiet,
        )
        if not sample.noisy:
            break
        if attempt < args.noise_retries:
            progress(f"  measuring {label}, {test.label} again (disturbed)")
    return sample

"""Constants shared by every part of the harness, its messages, and the machine's CPU from /proc."""

from __future__ import annotations

import resource
import sys
from dataclasses import dataclass
from pathlib import Path

from procfs import CLK_TCK

#: The repository root (bench/proxybench/common.py is three levels down).
REPO = Path(__file__).resolve().parents[2]
SHIM_SOURCE = Path(__file__).resolve().parents[1] / "shim" / "no_resume.c"
HOST = "127.0.0.1"
#: The proxies run here (taskset -c), one at a time.
PROXY_CPUS = "0"
#: wrk and the upstream nginx share this core.
LOAD_CPUS = "1"
#: --workers-scaling: the proxy may use every core.
ALL_CPUS = "0,1"
SMALL_BODY = 100
#: Response headers may add at most this much to a body (the size check on every run).
HEADER_ALLOWANCE = 2048
LARGE_BODY = 1 << 20
WARMUP_SECONDS = 2
#: Extra time a wrk run may take over its -d before it is killed.
WRK_GRACE = 30.0
#: Per-request timeout given to wrk (--timeout); a request slower than this is an error.
WRK_REQUEST_TIMEOUT = "5s"
#: The HTTP/2 test's concurrent streams per connection (h2load -m; --h2-streams).
H2_STREAMS = 10
#: Idle upstream connections the reference nginx (`keepalive`) and Caddy keep. With HTTP/2 the
#: pool grows to the streams in flight (connections x streams): 500 requests in flight over a
#: pool of 64 made the reference nginx open a new upstream connection for every other request.
UPSTREAM_IDLE = 64
#: A proxy using at least this much of its core is the bottleneck of its run.
SATURATED = 0.90
#: Other processes on the machine using more than this (in cores) during a run flag it.
OTHER_CPU_LIMIT = 0.10
#: --wait-quiet: how long the machine must have been idle before a run starts.
QUIET_WINDOW = 2.0
#: nginx connection slots; fixed so every nginx instance is the same (and idle-conns fits).
NGINX_CONNECTIONS = 20480
NGINX_PLACEHOLDER = "nginx"
#: --client-cert: the SPIFFE ID in the client certificate HAProxy presents ({client_spiffe}).
CLIENT_SPIFFE = "spiffe://bench.tlsgate.test/wrk"
#: HAProxy's connection limit: the open-file hard limit here is 20,000, and it needs 2 per pair.
HAPROXY_MAXCONN = 4096


def progress(message: str) -> None:
    print(f"[proxy-bench] {message}", file=sys.stderr, flush=True)


def loud(message: str) -> None:
    print(f"[proxy-bench] !!! {message}", file=sys.stderr, flush=True)


class BenchError(Exception):
    """A set-up step failed: the run cannot go on."""


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class MachineCpu:
    """The machine's CPU from /proc/stat, in seconds.

    This kernel accounts hardirq + softirq time apart from any process, so the network stack's
    softirq work is in no process's utime/stime. On loopback it runs on the sending CPU: the
    proxy core's share (``proxy_core_irq``) is mostly work caused by the proxy's sends.
    """

    tasks: float  # user + nice + system, all CPUs (guest time is inside user)
    irq: float  # hardirq + softirq, all CPUs
    steal: float  # time the hypervisor ran something else, all CPUs
    proxy_core_irq: float  # hardirq + softirq on the proxy's core (PROXY_CPUS)

    @staticmethod
    def read() -> MachineCpu:
        totals: dict[str, list[int]] = {}
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("cpu"):
                name, *fields = line.split()
                totals[name] = [int(f) for f in fields[:8]]
        user, nice, system, _idle, _iowait, irq, softirq, steal = totals["cpu"]
        core = totals.get(f"cpu{PROXY_CPUS}", [0] * 8)
        return MachineCpu(
            (user + nice + system) / CLK_TCK,
            (irq + softirq) / CLK_TCK,
            steal / CLK_TCK,
            (core[5] + core[6]) / CLK_TCK,
        )

    def __sub__(self, other: MachineCpu) -> MachineCpu:
        return MachineCpu(
            self.tasks - other.tasks,
            self.irq - other.irq,
            self.steal - other.steal,
            self.proxy_core_irq - other.proxy_core_irq,
        )

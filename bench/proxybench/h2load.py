"""h2load (nghttp2's HTTP/2 load generator): the command of the HTTP/2 test and its report.

wrk speaks HTTP/1.1 only, so the HTTP/2 test runs ``h2load -c N -m M -D S`` instead: N
connections, M concurrent streams on each. h2load has no machine-readable summary; it prints a
text report (``parse_h2load`` reads it) and, with ``--log-file``, one tab-separated line per
request: start time (us since the epoch), HTTP status (-1 for a failed stream), microseconds
until the end of the response. The latency percentiles come from that file, since the report
itself only has min/max/mean/sd.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from proxybench.common import BenchError

#: The only protocol h2load offers in ALPN. A proxy that does not select h2 gets no connection,
#: so no request can fall back to HTTP/1.1 (the start-up check offers "h2,http/1.1" instead,
#: as browsers do, and requires h2: the proxy must also prefer it).
H2LOAD_ALPN = "h2"

#: A request slower than this counts as an error, like wrk's --timeout (WRK_REQUEST_TIMEOUT).
H2_SLOW_US = 5_000_000

_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


def _seconds(text: str) -> float:
    """h2load's durations: ``120us``, ``22.97ms``, ``2.02s``."""
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if match is None:
        raise ValueError(f"not an h2load duration: {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


@dataclass(frozen=True)
class H2loadReport:
    """What one h2load run printed."""

    duration: float  # "finished in": the whole run, connection set-up included
    total: int
    started: int
    done: int
    succeeded: int
    failed: int  # streams that did not complete; errored and timeout are part of it
    errored: int
    timeout: int
    status_2xx: int
    status_3xx: int
    status_4xx: int
    status_5xx: int
    bytes_total: int  # everything h2load read: frames, headers, data
    bytes_headers: int
    bytes_data: int  # response bodies (DATA frame payloads)
    protocol: str | None  # "Application protocol", from ALPN (None: none agreed)
    tls_version: str | None
    cipher: str | None
    request_mean_ms: float  # "time for request" mean

    @property
    def non_2xx(self) -> int:
        return self.status_3xx + self.status_4xx + self.status_5xx


def parse_h2load(out: str) -> H2loadReport:
    """h2load's text report (nghttp2 1.52). Raises ValueError when a summary line is missing.

    The TLS and protocol lines are printed once, for the first connection h2load made; with
    H2LOAD_ALPN as the only protocol offered, every other connection has h2 or failed.
    """

    def line(pattern: str) -> re.Match[str]:
        match = re.search(pattern, out, re.MULTILINE)
        if match is None:
            raise ValueError(f"h2load printed no line like {pattern!r}")
        return match

    def optional(pattern: str) -> str | None:
        match = re.search(pattern, out, re.MULTILINE)
        return match.group(1) if match else None

    finished = line(r"^finished in (\S+), ")
    requests = line(
        r"^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed,"
        r" (\d+) errored, (\d+) timeout"
    )
    status = line(r"^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx")
    traffic = line(r"^traffic: \S+ \((\d+)\) total, \S+ \((\d+)\) headers .*, \S+ \((\d+)\) data")
    request_time = line(r"^time for request:\s+(\S+)\s+(\S+)\s+(\S+)")
    total, started, done, succeeded, failed, errored, timeout = map(int, requests.groups())
    s2, s3, s4, s5 = map(int, status.groups())
    return H2loadReport(
        duration=_seconds(finished.group(1).rstrip(",")),
        total=total,
        started=started,
        done=done,
        succeeded=succeeded,
        failed=failed,
        errored=errored,
        timeout=timeout,
        status_2xx=s2,
        status_3xx=s3,
        status_4xx=s4,
        status_5xx=s5,
        bytes_total=int(traffic.group(1)),
        bytes_headers=int(traffic.group(2)),
        bytes_data=int(traffic.group(3)),
        protocol=optional(r"^Application protocol: (\S+)"),
        tls_version=optional(r"^TLS Protocol: (\S+)"),
        cipher=optional(r"^Cipher: (\S+)"),
        request_mean_ms=_seconds(request_time.group(3)) * 1e3,
    )


@dataclass(frozen=True)
class Latency:
    """Per-request times from h2load's --log-file (completed streams, any status)."""

    rows: int
    p50_ms: float
    p99_ms: float
    slow: int  # requests slower than H2_SLOW_US
    failed_streams: int  # rows with status -1


def percentile(values: list[int], q: float) -> int:
    """Nearest-rank percentile of sorted ``values`` (0 for none)."""
    if not values:
        return 0
    return values[max(0, math.ceil(q / 100 * len(values)) - 1)]


def parse_log(text: str) -> Latency:
    """h2load's --log-file: ``start_us<TAB>status<TAB>elapsed_us`` per line."""
    elapsed: list[int] = []
    failed = 0
    for row in text.splitlines():
        fields = row.split("\t")
        if len(fields) < 3:
            continue
        if fields[1] == "-1":
            failed += 1
        elapsed.append(int(fields[2]))
    elapsed.sort()
    return Latency(
        rows=len(elapsed),
        p50_ms=percentile(elapsed, 50) / 1e3,
        p99_ms=percentile(elapsed, 99) / 1e3,
        slow=sum(1 for e in elapsed if e > H2_SLOW_US),
        failed_streams=failed,
    )


def h2load_argv(url: str, connections: int, streams: int, seconds: int, log: Path) -> list[str]:
    """One thread, ``connections`` clients with ``streams`` concurrent streams each, for
    ``seconds`` (timing-based: the clients connect at the start, no separate warm-up)."""
    return [
        "h2load",
        "-t1",
        f"-c{connections}",
        f"-m{streams}",
        "-D",
        str(seconds),
        f"--npn-list={H2LOAD_ALPN}",
        f"--log-file={log}",
        url,
    ]


def check_protocol(report: H2loadReport, out: str) -> None:
    """A run that was not HTTP/2 is an error, not a figure."""
    if report.protocol != "h2":
        how = f"negotiated {report.protocol}" if report.protocol else "agreed no ALPN protocol"
        raise BenchError(
            f"h2load {how} (it offers only {H2LOAD_ALPN}): the proxy does not serve HTTP/2"
            f" here, so the h2 test measured nothing:\n{out}"
        )

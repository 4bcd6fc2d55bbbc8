"""wrk: the load, its report scripts, the handshake shim, and what makes a run untrustworthy.

The HTTP/2 test's load is h2load (proxybench/h2load.py), run from here too.
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from proxybench.common import (
    H2_STREAMS,
    HEADER_ALLOWANCE,
    LARGE_BODY,
    LOAD_CPUS,
    SHIM_SOURCE,
    SMALL_BODY,
    WRK_GRACE,
    WRK_REQUEST_TIMEOUT,
    BenchError,
)
from proxybench.h2load import check_protocol, h2load_argv, parse_h2load, parse_log

if TYPE_CHECKING:
    from proxybench.proxies import Target

#: wrk prints one JSON line at the end of a run (no per-request Lua: only done() is defined).
WRK_REPORT_LUA = """\
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRKJSON {\\"duration_us\\":%.0f,\\"requests\\":%.0f,\\"bytes\\":%.0f,"
    .. "\\"connect\\":%.0f,\\"read\\":%.0f,\\"write\\":%.0f,\\"status\\":%.0f,"
    .. "\\"timeout\\":%.0f,\\"p50_us\\":%.0f,\\"p99_us\\":%.0f}\\n",
    summary.duration, summary.requests, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


#: For the shim check: counts the reference nginx's /tls-session answers ("r" = resumed).
WRK_SESSION_LUA = """\
local threads = {}
setup = function(thread) table.insert(threads, thread) end
reused, fresh = 0, 0
response = function(status, headers, body)
  if body == "r" then reused = reused + 1 else fresh = fresh + 1 end
end
done = function(summary, latency, requests)
  local r, f = 0, 0
  for _, t in ipairs(threads) do r = r + t:get("reused"); f = f + t:get("fresh") end
  io.write(string.format("SESSIONS reused=%d full=%d\\n", r, f))
end
"""


@dataclass(frozen=True)
class Test:
    key: str
    label: str
    path: str
    connections: int
    close: bool  # "Connection: close": one handshake per request
    full_handshakes: bool  # the shim drops the session before every reconnect
    body: int
    h2: bool = False  # HTTP/2 over ALPN h2, driven by h2load instead of wrk
    streams: int = 1  # concurrent requests per connection (h2load -m)

    @property
    def bulk(self) -> bool:
        return self.body >= LARGE_BODY

    @property
    def client(self) -> str:
        return "h2load" if self.h2 else "wrk"


#: The HTTP/2 test's key: h2load instead of wrk, and the reference nginx gets `http2`.
H2_TEST = "h2-keepalive"


def make_tests(conns: int, bulk_conns: int, h2_streams: int = H2_STREAMS) -> list[Test]:
    return [
        Test("keepalive-100b", "keep-alive, 100 B", "/100b", conns, False, False, SMALL_BODY),
        Test("full-handshake", "full handshake/req", "/100b", conns, True, True, SMALL_BODY),
        Test("resumed-handshake", "resumed handshake/req", "/100b", conns, True, False, SMALL_BODY),
        Test("keepalive-1m", "keep-alive, 1 MiB", "/1m", bulk_conns, False, False, LARGE_BODY),
        Test(
            H2_TEST,
            "h2 keep-alive, 100 B",
            "/100b",
            conns,
            False,
            False,
            SMALL_BODY,
            h2=True,
            streams=h2_streams,
        ),
    ]


@dataclass(frozen=True)
class WrkRun:
    duration: float
    requests: int
    bytes: int
    errors: dict[str, int]
    p50_ms: float
    p99_ms: float
    full: int | None  # completed client handshakes, from the shim (None: no count)
    resumed: int | None
    # h2load only (the HTTP/2 test): what its first connection negotiated.
    protocol: str | None = None
    tls_version: str | None = None
    cipher: str | None = None
    slow: int = 0  # requests over 5 s (wrk counts those as "timeout" errors)


@dataclass(frozen=True)
class ShimCheck:
    """Handshakes as the reference nginx saw them ($ssl_session_reused), with and without drop."""

    full_with_shim: int
    resumed_with_shim: int
    full_without: int
    resumed_without: int
    how: str = "the shim"  # what drops sessions: wrk's shim, or HAProxy's no-ssl-reuse

    def problems(self) -> list[str]:
        problems = []
        if self.resumed_with_shim or not self.full_with_shim:
            problems.append(
                f"with {self.how}, nginx resumed {self.resumed_with_shim} of"
                f" {self.resumed_with_shim + self.full_with_shim} handshakes (expected none)"
            )
        total = self.full_without + self.resumed_without
        if not total or self.resumed_without < 0.9 * total:
            problems.append(
                f"without {self.how}, nginx resumed only {self.resumed_without} of {total}"
                " handshakes"
            )
        return problems

    @property
    def requests(self) -> str:
        if self.how == "the shim":
            return "'Connection: close' requests"
        return "requests through haproxy, a new TLS connection each"

    def describe(self) -> str:
        return (
            f"shim check, counted by the reference nginx ($ssl_session_reused) over 1 s of"
            f" {self.requests}: with {self.how} {self.resumed_with_shim} of"
            f" {self.full_with_shim + self.resumed_with_shim} handshakes resumed; without it"
            f" {self.resumed_without} of {self.full_without + self.resumed_without}"
        )


class Tools:
    """wrk with its report scripts and the handshake shim, prepared once in the temp dir."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.report_lua = tmp / "report.lua"
        self.report_lua.write_text(WRK_REPORT_LUA)
        self.session_lua = tmp / "session.lua"
        self.session_lua.write_text(WRK_SESSION_LUA)
        self.shim = tmp / "no_resume.so"
        argv = ["gcc", "-O2", "-Wall", "-Wextra", "-shared", "-fPIC"]
        argv += ["-o", str(self.shim), str(SHIM_SOURCE), "-ldl"]
        result = subprocess.run(argv, capture_output=True, timeout=120, check=False)
        if result.returncode != 0:
            raise BenchError(f"building the shim failed:\n{result.stderr.decode()}")
        self.runs = 0

    def _wrk(
        self,
        base: str,
        path: str,
        connections: int,
        seconds: int,
        *,
        close: bool,
        drop_sessions: bool,
        script: Path,
    ) -> tuple[str, int | None, int | None]:
        """One bounded wrk run on core 1 against ``base`` (``https://HOST:PORT``, or HAProxy's
        ``http://HOST:PORT``): its stdout and the shim's (full, resumed) counts.

        The shim is preloaded into wrk alone (``env`` is the last exec before wrk): in "count"
        mode it only counts handshakes, in "drop" mode it also forces full ones.
        """
        self.runs += 1
        stats = self.tmp / f"shim-{self.runs}.txt"
        argv = ["taskset", "-c", LOAD_CPUS, "env", f"LD_PRELOAD={self.shim}"]
        argv += [f"NO_RESUME_MODE={'drop' if drop_sessions else 'count'}"]
        argv += [f"NO_RESUME_STATS={stats}"]
        argv += ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s"]
        argv += ["--timeout", WRK_REQUEST_TIMEOUT, "-s", str(script)]
        if close:
            argv += ["-H", "Connection: close"]
        if base.startswith("http://"):
            # Through HAProxy, wrk's Host would be 127.0.0.1:PORT (HAProxy's) on a connection
            # whose SNI is localhost: a proxy routing by name answers that with 404 or 421.
            argv += ["-H", "Host: localhost"]
        argv.append(f"{base}{path}")
        try:
            result = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=seconds + WRK_GRACE,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise BenchError(f"wrk did not finish within {seconds + WRK_GRACE:g} s") from exc
        out = result.stdout.decode(errors="replace")
        if result.returncode != 0:
            raise BenchError(
                f"wrk failed ({result.returncode}): {shlex.join(argv)}\n{out}\n"
                f"{result.stderr.decode(errors='replace')}"
            )
        full = resumed = None
        with contextlib.suppress(OSError, ValueError, KeyError):
            counts = dict(kv.split("=") for kv in stats.read_text().split())
            full, resumed = int(counts["full"]), int(counts["resumed"])
        return out, full, resumed

    def load(self, target: Target, test: Test, seconds: int) -> WrkRun:
        """One run of ``test``'s load: h2load for the HTTP/2 test, wrk for the others."""
        return self.h2load(target, test, seconds) if test.h2 else self.wrk(target, test, seconds)

    def h2load(self, target: Target, test: Test, seconds: int) -> WrkRun:
        """One bounded h2load run on core 1, straight to the proxy (no HAProxy, no shim: h2load
        drives OpenSSL through SSL_do_handshake, which the shim does not count). Its per-request
        log gives the latency percentiles; the log is removed afterwards."""
        if target.originator is not None:
            raise BenchError("the HTTP/2 test does not go through haproxy")
        self.runs += 1
        log = self.tmp / f"h2load-{self.runs}.tsv"
        argv = ["taskset", "-c", LOAD_CPUS]
        argv += h2load_argv(
            f"{target.url(test)}{test.path}", test.connections, test.streams, seconds, log
        )
        try:
            result = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=seconds + WRK_GRACE,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise BenchError(f"h2load did not finish within {seconds + WRK_GRACE:g} s") from exc
        out = result.stdout.decode(errors="replace")
        if result.returncode != 0:
            raise BenchError(
                f"h2load failed ({result.returncode}): {shlex.join(argv)}\n{out}\n"
                f"{result.stderr.decode(errors='replace')}"
            )
        try:
            report = parse_h2load(out)
        except ValueError as exc:
            raise BenchError(f"{exc}:\n{out}") from None
        check_protocol(report, out)
        try:
            latency = parse_log(log.read_text())
        finally:
            log.unlink(missing_ok=True)
        return WrkRun(
            duration=report.duration,
            requests=report.succeeded,
            bytes=report.bytes_data,
            errors={
                "failed": report.failed,
                "errored": report.errored,
                "timeout": report.timeout,
                "status": report.non_2xx,
            },
            p50_ms=latency.p50_ms,
            p99_ms=latency.p99_ms,
            full=None,
            resumed=None,
            protocol=report.protocol,
            tls_version=report.tls_version,
            cipher=report.cipher,
            slow=latency.slow,
        )

    def wrk(self, target: Target, test: Test, seconds: int) -> WrkRun:
        """Run one test. Behind HAProxy, wrk keeps its connections: HAProxy makes the TLS
        connections, one per request for the handshake tests, and closes them."""
        direct = target.originator is None
        out, full, resumed = self._wrk(
            target.url(test),
            test.path,
            test.connections,
            seconds,
            close=test.close and direct,
            drop_sessions=test.full_handshakes and direct,
            script=self.report_lua,
        )
        line = next((ln for ln in out.splitlines() if ln.startswith("WRKJSON ")), None)
        if line is None:
            raise BenchError(f"wrk printed no report line:\n{out}")
        data = json.loads(line.removeprefix("WRKJSON "))
        run = WrkRun(
            duration=data["duration_us"] / 1e6,
            requests=int(data["requests"]),
            bytes=int(data["bytes"]),
            errors={k: int(data[k]) for k in ("connect", "read", "write", "status", "timeout")},
            p50_ms=data["p50_us"] / 1e3,
            p99_ms=data["p99_us"] / 1e3,
            full=full,
            resumed=resumed,
        )
        return run

    def check_shim(self, target: Target) -> ShimCheck:
        """Ask the server: 1 s of reconnecting requests with the shim dropping sessions, 1 s
        without. Only the reference nginx serves ``/tls-session``: its ``$ssl_session_reused``,
        "r" for a resumed session, "." for a full handshake. Behind HAProxy the same question
        goes through its "full" (no session reuse) and "resumed" frontends instead.
        """
        counts = []
        for drop in (True, False):
            direct = target.originator is None
            out, _, _ = self._wrk(
                target.url(frontend="full" if drop else "resumed"),
                "/tls-session",
                10,
                1,
                close=direct,
                drop_sessions=drop and direct,
                script=self.session_lua,
            )
            match = re.search(r"SESSIONS reused=(\d+) full=(\d+)", out)
            if match is None:
                raise BenchError(f"the shim check printed no counts:\n{out}")
            counts.append((int(match.group(2)), int(match.group(1))))
        (full_with, resumed_with), (full_without, resumed_without) = counts
        how = "the shim" if target.originator is None else "haproxy's no-ssl-reuse"
        return ShimCheck(full_with, resumed_with, full_without, resumed_without, how)


def check_h2_run(run: WrkRun, test: Test) -> list[str]:
    """The HTTP/2 test's checks: h2load's error counts (status: a response that is not 2xx),
    requests over 5 s, TLS 1.3, and the response bodies' bytes (DATA payloads: exactly the body
    per request, plus what was in flight when the run stopped, at most connections x streams)."""
    problems = []
    if run.requests == 0:
        problems.append("no request completed")
    errors = {k: v for k, v in run.errors.items() if v}
    if errors:
        detail = ", ".join(f"{k} {v}" for k, v in errors.items())
        problems.append(f"h2load errors: {detail} (status = responses that are not 2xx)")
    if run.slow:
        problems.append(f"{run.slow} requests took over 5 s")
    if run.tls_version != "TLSv1.3":
        problems.append(f"h2load's connection used {run.tls_version}, not TLSv1.3")
    if run.requests:
        low = run.requests * test.body
        high = (run.requests + test.connections * test.streams) * test.body
        if not low <= run.bytes <= high:
            problems.append(
                f"{run.bytes / run.requests:,.1f} body bytes per response, expected {test.body:,}"
            )
    return problems


def check_run(run: WrkRun, test: Test) -> list[str]:
    """Everything that makes a run's figures untrustworthy, in words."""
    if test.h2:
        return check_h2_run(run, test)
    problems = []
    if run.requests == 0:
        problems.append("no request completed")
    errors = {k: v for k, v in run.errors.items() if v}
    if errors:
        detail = ", ".join(f"{k} {v}" for k, v in errors.items())
        problems.append(f"wrk errors: {detail} (status = responses with status > 399)")
    if run.requests:
        # wrk counts every byte it read, headers included, and also the part of the responses
        # still in flight when the run ended (at most one per connection).
        low = run.requests * test.body
        high = (run.requests + test.connections) * (test.body + HEADER_ALLOWANCE)
        if not low <= run.bytes <= high:
            problems.append(
                f"{run.bytes / run.requests:,.0f} bytes read per response,"
                f" expected {test.body:,} + headers"
            )
    if run.full is None or run.resumed is None:
        problems.append("the shim wrote no handshake counts")
    else:
        handshakes = run.full + run.resumed
        if test.full_handshakes and run.resumed:
            problems.append(f"{run.resumed} of {handshakes} handshakes were resumed (shim failed)")
        if test.close and not test.full_handshakes and run.full > 0.1 * handshakes + 200:
            problems.append(
                f"{run.full} of {handshakes} handshakes were full: the proxy did not resume"
            )
        if test.close and handshakes < run.requests:
            problems.append(f"{handshakes} handshakes for {run.requests} requests")
        if not test.close and handshakes > 2 * test.connections:
            problems.append(
                f"{handshakes} handshakes on {test.connections} keep-alive connections:"
                " the proxy closed connections"
            )
    return problems

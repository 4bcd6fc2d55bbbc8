"""A TLS-terminating reverse proxy under test, side by side with nginx, on this machine.

Both proxies get the same certificate (ECDSA P-256, made with ``tlsgate ca``), the same upstream
(a second nginx serving ``/100b`` and ``/1m`` over plain HTTP) and the same load (``wrk``), one
proxy at a time, and are pinned to the same core. The figure that counts is work per proxy
CPU-second, read from /proc before and after each run. Tests:

1. keep-alive, 100-byte responses, 50 connections                       (requests/s)
2. a full TLS 1.3 handshake per request ("Connection: close" + shim)     (requests/s)
3. a resumed TLS 1.3 handshake per request ("Connection: close")         (requests/s)
4. keep-alive, 1 MiB responses, 10 connections                          (MB/s)

Modes: the default compares the proxies on the four tests; ``--workers-scaling`` runs each proxy
with 1 and 2 workers on both cores (test 1); ``--idle-conns N`` holds N idle keep-alive TLS
connections and reports the proxy's resident memory per connection. ``--client-cert`` (and
``--haproxy``, the same path without the certificate) puts HAProxy between wrk and each proxy,
because wrk cannot present a client certificate: wrk speaks plain HTTP to HAProxy on core 1, which
speaks TLS 1.3 with the harness's client certificate to the proxy.

    .venv/bin/python bench/proxy.py                               # nginx alone
    .venv/bin/python bench/proxy.py --proxy-cmd nginx             # nginx vs nginx: ratio ~1.0
    .venv/bin/python bench/proxy.py --proxy-cmd '{root}/.venv/bin/tlsgate serve --host localhost \
        --listen 127.0.0.1:{port} --to http://127.0.0.1:{upstream_port} --cert {cert} \
        --key {key} --workers {workers} --no-http --access-log off --state {state}'

Everything listens on 127.0.0.1. Every process the harness starts runs in its own session and is
stopped at the end (SIGTERM, then SIGKILL), also on an error or Ctrl-C; every wrk run has a time
limit; everything on disk lives in one temporary directory. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import itertools
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType

from procfs import CLK_TCK, free_port, process_tree, read_stat, tool_version, tree_cpu_seconds

# The reference nginx gets exactly the TLS 1.2 suites tlsgate serves (Mozilla intermediate).
from tlsgate.tls.context import MOZILLA_INTERMEDIATE_CIPHERS

REPO = Path(__file__).resolve().parent.parent
SHIM_SOURCE = Path(__file__).resolve().parent / "shim" / "no_resume.c"
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

NGINX_COMMON = """\
user root;
worker_processes {workers};
worker_rlimit_nofile {nofile};
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{
    worker_connections {connections};
}}
"""

NGINX_TEMP_PATHS = """\
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
"""

#: The upstream: plain HTTP, /100b from memory, /1m from a file (page cache, sendfile).
UPSTREAM_CONF = (
    NGINX_COMMON
    + """\
http {{
    access_log off;
{temp_paths}
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 300s;
    keepalive_requests 1000000;
    server {{
        listen {host}:{port} backlog=4096;
        location = /100b {{
            default_type text/plain;
            return 200 "{small_body}";
        }}
        location = /1m {{
            root {prefix}/www;
            default_type application/octet-stream;
        }}
    }}
}}
"""
)

#: The reference proxy: nginx terminating TLS in front of the upstream.
PROXY_CONF = (
    NGINX_COMMON
    + """\
http {{
    access_log off;
{temp_paths}
    upstream backend {{
        server {host}:{upstream_port};
        keepalive 64;
        keepalive_requests 1000000;
        keepalive_timeout 300s;
    }}
    server {{
        listen {host}:{port} ssl backlog=4096;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_ciphers {ciphers};
        ssl_prefer_server_ciphers off;
        ssl_ecdh_curve X25519:prime256v1:secp384r1;
        ssl_session_cache shared:SSL:10m;
        ssl_session_timeout 1d;
        ssl_session_tickets on;
{client_verify}
        keepalive_timeout 300s;
        keepalive_requests 1000000;
        # Only for the harness's shim check: "r" if this connection resumed a session.
        location = /tls-session {{
            return 200 "$ssl_session_reused";
        }}
        # Only for the --client-cert check: "SUCCESS" when nginx verified a client certificate.
        location = /tls-client {{
            return 200 "$ssl_client_verify";
        }}
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering on;
            proxy_max_temp_file_size 0;
        }}
    }}
}}
"""
)

#: --client-cert: the reference nginx asks for and verifies the client certificate. Depth 2: the
#: chain is leaf -> intermediate -> root (nginx's default of 1 refuses it).
NGINX_CLIENT_VERIFY = """\
        ssl_verify_client on;
        ssl_client_certificate {client_ca};
        ssl_verify_depth 2;"""

#: The client-side TLS originator (--haproxy, --client-cert), one per proxy under test, on core 1.
#: wrk talks plain HTTP to a frontend; its backend speaks TLS 1.3 to the proxy, verifying the
#: proxy's certificate (ca-file, SNI localhost) and presenting {client_crt} when there is one.
#: reuse: keep-alive, idle TLS connections shared by all wrk connections (tests 1 and 4);
#: full: a new TLS connection per request, closed after the response, no session reuse (test 2);
#: resumed: the same, resuming HAProxy's last session with the proxy (test 3).
HAPROXY_CONF = """\
global
    nbthread 1
    maxconn {maxconn}
    stats socket {prefix}/admin.sock mode 600 level admin
defaults
    mode http
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    timeout http-keep-alive 300s
frontend reuse
    bind {host}:{port_reuse} backlog 4096
    default_backend reuse
frontend full
    bind {host}:{port_full} backlog 4096
    default_backend full
frontend resumed
    bind {host}:{port_resumed} backlog 4096
    default_backend resumed
backend reuse
    http-reuse always
    server proxy {host}:{proxy_port} {tls} pool-purge-delay 300s
backend full
    option http-server-close
    http-reuse never
    server proxy {host}:{proxy_port} {tls} no-ssl-reuse
backend resumed
    option http-server-close
    http-reuse never
    server proxy {host}:{proxy_port} {tls}
"""
HAPROXY_TLS = "ssl verify required ca-file {ca} sni str(localhost) ssl-min-ver TLSv1.3"
#: The frontend (and backend) each test goes through.
HAPROXY_ROUTE = {
    "keepalive-100b": "reuse",
    "full-handshake": "full",
    "resumed-handshake": "resumed",
    "keepalive-1m": "reuse",
}

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


def progress(message: str) -> None:
    print(f"[proxy-bench] {message}", file=sys.stderr, flush=True)


def loud(message: str) -> None:
    print(f"[proxy-bench] !!! {message}", file=sys.stderr, flush=True)


class BenchError(Exception):
    """A set-up step failed: the run cannot go on."""


def tree_rss_kib(root: int) -> int:
    """Sum of VmRSS over the process tree, in KiB (shared pages count once per process)."""
    total = 0
    for pid in process_tree(root):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
                    break
    return total


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


# -- processes -----------------------------------------------------------------------------------


@dataclass
class Service:
    """A long-running process the harness started (in its own session), with its log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    port: int

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def cpu_seconds(self) -> float:
        return tree_cpu_seconds(self.pid)

    def rss_kib(self) -> int:
        return tree_rss_kib(self.pid)

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM to its process group, then SIGKILL to whatever of its tree is left."""
        tree = process_tree(self.pid) if self.alive() else []
        if self.alive():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.pid, signal.SIGKILL)
                self.popen.wait(timeout=timeout)
        for pid in tree[1:]:  # descendants that left the process group
            if read_stat(pid) is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)


def spawn(name: str, argv: Sequence[str], log: Path, port: int, cwd: Path = REPO) -> Service:
    progress(f"starting {name}: {shlex.join(argv)}")
    with log.open("ab") as out:
        popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
        )
    return Service(name, popen, log, port)


def client_context(ca_file: Path, client: ClientCert | None = None) -> ssl.SSLContext:
    """The harness's own TLS client; with ``client`` it presents that certificate."""
    context = ssl.create_default_context(cafile=str(ca_file))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if client is not None:
        context.load_cert_chain(client.fullchain, client.key)
    return context


def wait_ready(service: Service, timeout: float, tls: ssl.SSLContext | None) -> None:
    """Until the port accepts a connection (and a TLS handshake), the process dies, or timeout."""
    deadline = time.monotonic() + timeout
    last_error = ""
    while time.monotonic() < deadline:
        if not service.alive():
            raise BenchError(
                f"{service.name} exited with {service.popen.returncode} while starting:\n"
                f"{service.log_tail()}"
            )
        try:
            with socket.create_connection((HOST, service.port), timeout=2.0) as sock:
                if tls is not None:
                    with tls.wrap_socket(sock, server_hostname="localhost"):
                        pass
            return
        except (OSError, ssl.SSLError) as exc:
            last_error = str(exc)
        time.sleep(0.1)
    raise BenchError(
        f"{service.name} did not accept a {'TLS ' if tls else ''}connection on port "
        f"{service.port} within {timeout:g} s ({last_error}):\n{service.log_tail()}"
    )


def http_get(port: int, path: str, tls: ssl.SSLContext | None) -> tuple[int, bytes]:
    """One GET over a fresh connection (HTTP/1.1, Connection: close): status and body."""
    with socket.create_connection((HOST, port), timeout=10.0) as raw:
        sock: socket.socket = raw
        if tls is not None:
            sock = tls.wrap_socket(raw, server_hostname="localhost")
        request = f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        sock.sendall(request.encode())
        chunks = []
        while chunk := sock.recv(1 << 16):
            chunks.append(chunk)
        if tls is not None:
            sock.close()
    response = b"".join(chunks)
    head, _, body = response.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].split()
    status = int(status_line[1]) if len(status_line) > 1 else 0
    if b"transfer-encoding: chunked" in head.lower():
        body = dechunk(body)
    return status, body


def dechunk(data: bytes) -> bytes:
    out, rest = [], data
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out.append(rest[:size])
        rest = rest[size + 2 :]
    return b"".join(out)


def check_content(name: str, port: int, tls: ssl.SSLContext | None, small: bytes) -> None:
    """Before any load: both paths answer 200 with exactly the upstream's bodies."""
    for path, expected_len in (("/100b", SMALL_BODY), ("/1m", LARGE_BODY)):
        try:
            status, body = http_get(port, path, tls)
        except (OSError, ssl.SSLError) as exc:
            raise BenchError(f"{name}: GET {path} failed: {exc}") from None
        if status == 0:
            raise BenchError(f"{name}: GET {path}: no HTTP response, the connection closed")
        if status != 200 or len(body) != expected_len:
            raise BenchError(
                f"{name}: GET {path} gave status {status} and {len(body)} bytes,"
                f" expected 200 and {expected_len}"
            )
        if path == "/100b" and body != small:
            raise BenchError(f"{name}: GET /100b returned a different body")


# -- the fixed parts: certificates, upstream, nginx ---------------------------------------------


@dataclass(frozen=True)
class ClientCert:
    """The client certificate (an X.509-SVID for CLIENT_SPIFFE) HAProxy presents."""

    fullchain: Path
    key: Path
    combined: Path  # fullchain + key in one PEM: HAProxy's `crt`


@dataclass(frozen=True)
class Certs:
    fullchain: Path
    key: Path
    root_ca: Path
    client: ClientCert | None = None


def make_certs(tmp: Path, tlsgate: str, *, client: bool = False) -> Certs:
    """The server certificate, and with ``client`` a client one, from one fresh tlsgate CA."""
    state, out, client_out = tmp / "ca-state", tmp / "cert", tmp / "client-cert"
    progress("creating a CA and a certificate for localhost, 127.0.0.1 with tlsgate ca")
    commands = [
        [tlsgate, "ca", "init", "--state", str(state)],
        [tlsgate, "ca", "issue", "localhost", HOST, "--out", str(out), "--state", str(state)],
        [tlsgate, "ca", "export-root", "--out", str(tmp / "root.pem"), "--state", str(state)],
    ]
    if client:
        issue = [tlsgate, "ca", "issue", "--client", "--spiffe", CLIENT_SPIFFE]
        commands.append([*issue, "--out", str(client_out), "--state", str(state)])
    for argv in commands:
        result = subprocess.run(
            argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=120, check=False
        )
        if result.returncode != 0:
            raise BenchError(
                f"{shlex.join(argv)} failed ({result.returncode}):\n"
                f"{result.stderr.decode(errors='replace')}"
            )
    client_cert = None
    if client:
        fullchain, key = client_out / "fullchain.pem", client_out / "key.pem"
        if not (fullchain.is_file() and key.is_file()):
            raise BenchError(f"tlsgate ca issue --client did not write {client_out}")
        combined = tmp / "client-combined.pem"
        combined.write_bytes(fullchain.read_bytes() + key.read_bytes())
        combined.chmod(0o600)
        client_cert = ClientCert(fullchain, key, combined)
    certs = Certs(out / "fullchain.pem", out / "key.pem", tmp / "root.pem", client_cert)
    for path in (certs.fullchain, certs.key, certs.root_ca):
        if not path.is_file():
            raise BenchError(f"tlsgate ca did not write {path}")
    return certs


def small_body() -> bytes:
    text = "tlsgate proxy benchmark: a 100-byte response body from the upstream nginx. "
    body = (text * 2)[: SMALL_BODY - 1] + "\n"
    assert len(body) == SMALL_BODY and '"' not in body and "\\" not in body
    return body.encode()


def nginx_prefix(tmp: Path, name: str) -> Path:
    prefix = tmp / name
    for sub in ("tmp", "www"):
        (prefix / sub).mkdir(parents=True, exist_ok=True)
    return prefix


def nginx_argv(prefix: Path, cpus: str | None) -> list[str]:
    argv = ["nginx", "-p", str(prefix), "-e", str(prefix / "error.log")]
    argv += ["-c", str(prefix / "nginx.conf"), "-g", "daemon off;"]
    return (["taskset", "-c", cpus] if cpus else []) + argv


def nginx_common(prefix: Path, workers: int) -> dict[str, object]:
    return {
        "prefix": prefix,
        "workers": workers,
        "connections": NGINX_CONNECTIONS,
        "nofile": 2 * NGINX_CONNECTIONS + 1024,
        "temp_paths": NGINX_TEMP_PATHS.format(prefix=prefix).rstrip("\n"),
        "host": HOST,
    }


def start_upstream(tmp: Path, start_timeout: float) -> Service:
    prefix = nginx_prefix(tmp, "upstream")
    port = free_port()
    (prefix / "www" / "1m").write_bytes(os.urandom(LARGE_BODY))
    config = UPSTREAM_CONF.format(
        **nginx_common(prefix, 1), port=port, small_body=small_body().decode()
    )
    (prefix / "nginx.conf").write_text(config)
    service = spawn("upstream nginx", nginx_argv(prefix, LOAD_CPUS), prefix / "stdout.log", port)
    try:
        wait_ready(service, start_timeout, None)
    except BaseException:
        service.stop()
        raise
    return service


#: Numbers every proxy start, so each gets fresh directories.
_STARTS = itertools.count(1)


@dataclass(frozen=True)
class ProxySpec:
    """How to start one proxy: nginx (built in) or a command template."""

    label: str
    template: str | None  # None: the reference nginx configuration


def start_proxy(
    spec: ProxySpec,
    tmp: Path,
    certs: Certs,
    upstream: Service,
    *,
    workers: int,
    cpus: str,
    start_timeout: float,
    tls: ssl.SSLContext,
) -> Service:
    slug = re.sub(r"[^a-z0-9]+", "-", spec.label.lower()).strip("-")
    name = f"{slug}-w{workers}-{next(_STARTS)}"
    port = free_port()
    if spec.template is None:
        prefix = nginx_prefix(tmp, name)
        config = PROXY_CONF.format(
            **nginx_common(prefix, workers),
            port=port,
            upstream_port=upstream.port,
            cert=certs.fullchain,
            key=certs.key,
            ciphers=MOZILLA_INTERMEDIATE_CIPHERS,
            client_verify=(
                NGINX_CLIENT_VERIFY.format(client_ca=certs.root_ca) if certs.client else ""
            ),
        )
        (prefix / "nginx.conf").write_text(config)
        argv, log = nginx_argv(prefix, cpus), prefix / "stdout.log"
    else:
        state = tmp / name / "state"
        state.mkdir(parents=True)
        values = {
            "port": port,
            "upstream_port": upstream.port,
            "cert": certs.fullchain,
            "key": certs.key,
            "ca": certs.root_ca,
            "client_ca": certs.root_ca,
            "client_spiffe": CLIENT_SPIFFE,
            "root": REPO,
            "state": state,
            "workers": workers,
        }
        argv = ["taskset", "-c", cpus, *expand_template(spec.template, values)]
        log = tmp / name / "output.log"
    service = spawn(spec.label, argv, log, port)
    try:
        wait_ready(service, start_timeout, tls)
        try:
            check_content(spec.label, port, tls, small_body())
        except BenchError as exc:
            time.sleep(0.5)  # let it write its side of the story
            raise BenchError(
                f"{exc}\n{spec.label}'s output ends with:\n{service.log_tail()}"
            ) from None
    except BaseException:
        service.stop()
        raise
    return service


@dataclass
class Originator:
    """HAProxy in front of one proxy: where wrk connects for each test, and its counters."""

    service: Service
    ports: dict[str, int]  # frontend name -> port
    socket: Path  # the stats socket

    def port_for(self, test: Test) -> int:
        return self.ports[HAPROXY_ROUTE[test.key]]

    def stats(self) -> dict[str, dict[str, int]]:
        """Each backend's counters (HAProxy's ``show stat``: connect, ssl_sess, hrsp_2xx...)."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5.0)
            sock.connect(str(self.socket))
            sock.sendall(b"show stat\n")
            data = b""
            while chunk := sock.recv(1 << 16):
                data += chunk
        lines = data.decode().lstrip("# ").splitlines()
        out: dict[str, dict[str, int]] = {}
        for row in csv.DictReader(line for line in lines if line):
            if row["svname"] == "BACKEND":
                out[row["pxname"]] = {k: int(v) for k, v in row.items() if k and v.isdigit()}
        return out


def start_originator(
    tmp: Path, name: str, proxy_port: int, certs: Certs, start_timeout: float
) -> Originator:
    """HAProxy on core 1 for the proxy on ``proxy_port``, presenting the client certificate
    when the harness made one (--client-cert) and none otherwise (--haproxy)."""
    prefix = tmp / name / "haproxy"
    prefix.mkdir(parents=True)
    ports = {frontend: free_port() for frontend in ("reuse", "full", "resumed")}
    tls = HAPROXY_TLS.format(ca=certs.root_ca)
    if certs.client is not None:
        tls += f" crt {certs.client.combined}"
    config = HAPROXY_CONF.format(
        maxconn=HAPROXY_MAXCONN,
        prefix=prefix,
        host=HOST,
        proxy_port=proxy_port,
        tls=tls,
        **{f"port_{frontend}": port for frontend, port in ports.items()},
    )
    (prefix / "haproxy.cfg").write_text(config)
    argv = ["taskset", "-c", LOAD_CPUS, "haproxy", "-db", "-f", str(prefix / "haproxy.cfg")]
    service = spawn(f"haproxy for {name}", argv, prefix / "output.log", ports["reuse"])
    try:
        wait_ready(service, start_timeout, None)
        deadline = time.monotonic() + start_timeout
        while not (prefix / "admin.sock").exists():
            if time.monotonic() > deadline:
                raise BenchError(f"haproxy made no stats socket:\n{service.log_tail()}")
            time.sleep(0.1)
    except BaseException:
        service.stop()
        raise
    return Originator(service, ports, prefix / "admin.sock")


@dataclass
class Target:
    """Where the load goes: the proxy itself, or the HAProxy in front of it."""

    proxy: Service
    originator: Originator | None = None

    def url(self, test: Test | None = None, frontend: str = "reuse") -> str:
        if self.originator is None:
            return f"https://{HOST}:{self.proxy.port}"
        port = self.originator.port_for(test) if test else self.originator.ports[frontend]
        return f"http://{HOST}:{port}"

    def stop(self) -> None:
        if self.originator is not None:
            self.originator.service.stop()
        self.proxy.stop()


def check_client_auth(name: str, port: int, anonymous: ssl.SSLContext) -> str:
    """--client-cert: a client without a certificate must not get the page: the proxy asks for
    one and requires it. Returns how it refused, for the log."""
    try:
        status, _ = http_get(port, "/100b", anonymous)
    except (OSError, ssl.SSLError) as exc:
        return f"refused in TLS ({type(exc).__name__})"
    if status == 200:
        raise BenchError(
            f"{name} answered 200 to a client without a certificate: --client-cert measures a"
            " proxy that requires one (tlsgate: --client-auth require)"
        )
    return "no HTTP answer" if status == 0 else f"HTTP {status}"


def expand_template(template: str, values: Mapping[str, object]) -> list[str]:
    """Split like a shell (no shell runs), then fill placeholders in each word."""
    try:
        return [word.format_map(values) for word in shlex.split(template)]
    except KeyError as exc:
        known = ", ".join("{" + k + "}" for k in values)
        raise BenchError(f"--proxy-cmd: unknown placeholder {exc}; known: {known}") from None


# -- wrk -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Test:
    key: str
    label: str
    path: str
    connections: int
    close: bool  # "Connection: close": one handshake per request
    full_handshakes: bool  # the shim drops the session before every reconnect
    body: int

    @property
    def bulk(self) -> bool:
        return self.body >= LARGE_BODY


def make_tests(conns: int, bulk_conns: int) -> list[Test]:
    return [
        Test("keepalive-100b", "keep-alive, 100 B", "/100b", conns, False, False, SMALL_BODY),
        Test("full-handshake", "full handshake/req", "/100b", conns, True, True, SMALL_BODY),
        Test("resumed-handshake", "resumed handshake/req", "/100b", conns, True, False, SMALL_BODY),
        Test("keepalive-1m", "keep-alive, 1 MiB", "/1m", bulk_conns, False, False, LARGE_BODY),
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


def check_run(run: WrkRun, test: Test) -> list[str]:
    """Everything that makes a run's figures untrustworthy, in words."""
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


# -- measurements --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One measured wrk run against one proxy, with the CPU each side used during it."""

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
        tools.wrk(target, test, warmup)
    if not proxy.alive():
        raise BenchError(f"{proxy.name} died during the warm-up:\n{proxy.log_tail()}")
    stats0 = originator.stats() if originator else {}
    or0 = originator.service.cpu_seconds() if originator else 0.0
    cpu0, up0, cl0 = proxy.cpu_seconds(), upstream.cpu_seconds(), children_cpu_seconds()
    machine0, self0, t0 = MachineCpu.read(), time.process_time(), time.monotonic()
    run = tools.wrk(target, test, seconds)
    wall = time.monotonic() - t0
    machine = MachineCpu.read() - machine0
    # The harness's own CPU (reading /proc, starting wrk) is not noise: take it out here.
    machine = replace(machine, tasks=machine.tasks - (time.process_time() - self0))
    cpu1, up1, cl1 = proxy.cpu_seconds(), upstream.cpu_seconds(), children_cpu_seconds()
    or1 = originator.service.cpu_seconds() if originator else 0.0
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
    )
    unit = "MB/s" if test.bulk else "req/s"
    progress(
        f"  {label:<14} {test.label:<22} {sample.rate:>9,.0f} {unit:<5}"
        f" {sample.per_cpu:>8,.0f}/cpu-s  proxy {sample.proxy_util:.2f} cores,"
        f" {'wrk+upstream+haproxy' if originator else 'wrk+upstream'} {sample.load_util:.2f},"
        f" other {sample.other_util:.2f}"
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


@dataclass
class Row:
    """All samples of one (test, proxy) pair."""

    samples: list[Sample] = field(default_factory=list)

    def median(self, value: Callable[[Sample], float]) -> float:
        return statistics.median(value(s) for s in self.samples)

    def spread(self, value: Callable[[Sample], float]) -> tuple[float, float]:
        values = [value(s) for s in self.samples]
        return min(values), max(values)

    @property
    def rate(self) -> float:
        return self.median(lambda s: s.rate)

    @property
    def per_cpu(self) -> float:
        return self.median(lambda s: s.per_cpu)

    @property
    def util(self) -> float:
        return self.median(lambda s: s.proxy_util)

    @property
    def load(self) -> float:
        return self.median(lambda s: s.load_util)

    @property
    def problems(self) -> list[str]:
        return list(dict.fromkeys(p for s in self.samples for p in s.all_problems))


@dataclass(frozen=True)
class Comparison:
    """One test, both proxies. Their runs alternate within each round, so the ratio is taken
    per round (adjacent runs share the machine's state) and the median of those is reported."""

    test: Test
    reference: Row
    candidate: Row | None

    @property
    def saturated(self) -> bool:
        """Both proxies used (nearly) all of their core: throughput itself can be compared."""
        rows = [self.reference] + ([self.candidate] if self.candidate else [])
        return all(r.util >= SATURATED for r in rows)

    @property
    def basis(self) -> str:
        return "rate" if self.saturated else "per-cpu"

    def round_ratios(self, value: Callable[[Sample], float]) -> list[float]:
        if self.candidate is None:
            return []
        pairs = zip(self.reference.samples, self.candidate.samples, strict=True)
        return [value(c) / value(r) for r, c in pairs if value(r)]

    def _median(self, value: Callable[[Sample], float]) -> float | None:
        ratios = self.round_ratios(value)
        return statistics.median(ratios) if ratios else None

    @property
    def ratio_rate(self) -> float | None:
        return self._median(lambda s: s.rate)

    @property
    def ratio_per_cpu(self) -> float | None:
        return self._median(lambda s: s.per_cpu)

    @property
    def ratio_per_cpu_with_irq(self) -> float | None:
        return self._median(lambda s: s.per_cpu_with_irq)

    def basis_value(self) -> Callable[[Sample], float]:
        return (lambda s: s.rate) if self.saturated else (lambda s: s.per_cpu)

    @property
    def ratio(self) -> float | None:
        return self._median(self.basis_value())

    @property
    def ratio_range(self) -> tuple[float, float] | None:
        ratios = self.round_ratios(self.basis_value())
        return (min(ratios), max(ratios)) if ratios else None


@dataclass(frozen=True)
class CompareResult:
    proxies: list[str]
    comparisons: list[Comparison]
    shim: ShimCheck | None

    @property
    def flagged(self) -> list[str]:
        out = [
            f"{label}, {c.test.label}: {problem}"
            for c in self.comparisons
            for label, row in zip(self.proxies, (c.reference, c.candidate), strict=False)
            if row is not None
            for problem in row.problems
        ]
        return out + (self.shim.problems() if self.shim else [])


@dataclass(frozen=True)
class ScalingResult:
    proxies: list[str]
    rows: dict[tuple[str, int], Row]

    @property
    def flagged(self) -> list[str]:
        return [
            f"{label}, {workers} worker(s): {problem}"
            for (label, workers), row in self.rows.items()
            for problem in row.problems
        ]


@dataclass(frozen=True)
class IdleResult:
    proxy: str
    connections: int
    opened: int
    alive_after_wait: int
    rss_before_kib: int
    rss_open_kib: int
    rss_closed_kib: int
    seconds_to_open: float
    errors: tuple[str, ...]

    @property
    def kib_per_conn(self) -> float:
        return (self.rss_open_kib - self.rss_before_kib) / self.opened if self.opened else 0.0


@dataclass(frozen=True)
class IdleReport:
    proxies: list[str]
    results: list[IdleResult]

    @property
    def flagged(self) -> list[str]:
        return [
            f"{r.proxy}: {r.opened} of {r.connections} connections opened,"
            f" {r.alive_after_wait} answered after the idle wait"
            + (f" ({'; '.join(r.errors)})" if r.errors else "")
            for r in self.results
            if r.opened < r.connections or r.alive_after_wait < r.opened
        ]


Result = CompareResult | ScalingResult | IdleReport


# -- modes ---------------------------------------------------------------------------------------


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
        )
        self.stack.callback(service.stop)
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


def run_compare(ctx: Context, specs: Sequence[ProxySpec]) -> CompareResult:
    """Every round starts fresh proxy processes and runs every test on each, alternating order.

    Fresh processes each round: on this VM one process can be 10 % faster or slower than
    another with the same configuration for its whole life (where the host put its memory);
    restarting keeps that from landing in every sample of one side.
    """
    args = ctx.args
    tests = [t for t in make_tests(args.conns, args.bulk_conns) if t.key in args.test_keys]
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
            order = list(range(len(specs)))
            if (number + index) % 2:
                order.reverse()
            for i in order:
                sample = measure_clean(
                    ctx.tools, targets[i], ctx.upstream, test, args, label=specs[i].label
                )
                rows.setdefault((test.key, specs[i].label), Row()).samples.append(sample)
        for target in targets:
            target.stop()
    comparisons = [
        Comparison(
            test,
            rows[(test.key, specs[0].label)],
            rows[(test.key, specs[1].label)] if len(specs) > 1 else None,
        )
        for test in tests
    ]
    return CompareResult([s.label for s in specs], comparisons, shim)


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


# -- report --------------------------------------------------------------------------------------


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


# -- main ----------------------------------------------------------------------------------------


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="A TLS-terminating proxy under test next to nginx: work per proxy CPU-second.",
        epilog="--proxy-cmd placeholders: {port} {upstream_port} {cert} {key} {ca} (root CA PEM)"
        " {client_ca} (the CA of the client certificate: the same root) {client_spiffe} (its"
        " SPIFFE ID) {root} (repository root, also the working directory) {state} (an empty"
        " directory for the proxy) {workers}. The template is split into words like a shell"
        " would, but no shell runs. Exit status: 0, 1 if a run was flagged, 2 on a set-up error.",
    )
    parser.add_argument(
        "--proxy-cmd",
        default=None,
        help="the proxy under test: a command template, or 'nginx' to run a second nginx"
        " against the reference (default: none, nginx alone)",
    )
    parser.add_argument("--label", default=None, help="name of the proxy under test in the table")
    parser.add_argument(
        "--duration", type=positive_int, default=10, help="seconds per measured run (default 10)"
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=WARMUP_SECONDS,
        help=f"seconds of warm-up before each run (default {WARMUP_SECONDS})",
    )
    parser.add_argument(
        "--repeat", type=positive_int, default=3, help="runs per cell; tables show the median"
    )
    parser.add_argument(
        "--conns", type=positive_int, default=50, help="connections for tests 1-3 (default 50)"
    )
    parser.add_argument(
        "--bulk-conns", type=positive_int, default=10, help="connections for test 4 (default 10)"
    )
    parser.add_argument(
        "--tests",
        default=None,
        help="comma-separated subset of: keepalive-100b, full-handshake, resumed-handshake,"
        " keepalive-1m (default: all)",
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=60.0,
        help="before each run, wait at most this many seconds for other processes to leave"
        f" the machine idle (< {OTHER_CPU_LIMIT} cores); 0: don't wait (default 60)",
    )
    parser.add_argument(
        "--noise-retries",
        type=int,
        default=2,
        help="measure a run again (at most this many times) when other processes used more"
        f" than {OTHER_CPU_LIMIT} cores during it (default 2)",
    )
    parser.add_argument(
        "--start-timeout",
        type=float,
        default=20.0,
        help="seconds a proxy has to accept a TLS handshake (default 20)",
    )
    path = parser.add_mutually_exclusive_group()
    path.add_argument(
        "--client-cert",
        action="store_true",
        help="mTLS: wrk -> haproxy (core 1) -> TLS 1.3 with a client certificate"
        f" ({CLIENT_SPIFFE}) -> the proxy; the reference nginx verifies it (ssl_verify_client)",
    )
    path.add_argument(
        "--haproxy",
        action="store_true",
        help="the same path through haproxy, without a client certificate (the baseline for"
        " --client-cert)",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--workers-scaling",
        action="store_true",
        help="1 vs 2 workers ({workers}) on both cores, keep-alive test",
    )
    mode.add_argument(
        "--idle-conns",
        type=positive_int,
        default=None,
        metavar="N",
        help="hold N idle keep-alive TLS connections and report RSS per connection",
    )
    parser.add_argument(
        "--idle-wait", type=float, default=5.0, help="seconds to hold them idle (default 5)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--json-out", type=Path, default=None, metavar="FILE", help="also write the JSON to FILE"
    )
    parser.add_argument(
        "--tlsgate",
        default=str(REPO / ".venv" / "bin" / "tlsgate"),
        help="the tlsgate CLI that makes the certificates (default: %(default)s)",
    )
    return parser


def _terminate(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def raise_nofile() -> None:
    """Soft open-file limit up to the hard one; every process started later inherits it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    known = [t.key for t in make_tests(1, 1)]
    args.test_keys = known
    if args.tests:
        args.test_keys = [t.strip() for t in args.tests.split(",") if t.strip()]
        if unknown := set(args.test_keys) - set(known):
            parser.error(f"--tests: unknown {sorted(unknown)}; known: {', '.join(known)}")
    originated = args.haproxy or args.client_cert
    if originated and (args.workers_scaling or args.idle_conns):
        parser.error("--haproxy and --client-cert go with the comparison mode only")
    for tool in ("nginx", "wrk", "taskset", "gcc") + (("haproxy",) if originated else ()):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is not on PATH (scripts/install.sh --bench installs it)")
    if (os.cpu_count() or 1) < 2:
        parser.error("needs 2 cores: one for the proxy, one for wrk and the upstream")
    specs = [ProxySpec("nginx", None)]
    if args.proxy_cmd not in (None, "", "none"):
        if args.proxy_cmd == NGINX_PLACEHOLDER:
            specs.append(ProxySpec(args.label or "nginx (B)", None))
        else:
            specs.append(ProxySpec(args.label or "proxy", args.proxy_cmd))
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    raise_nofile()
    env = environment(haproxy=originated)
    result: Result
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tlsgate-proxy-")))
        progress(f"working in {tmp}")
        certs = make_certs(tmp, args.tlsgate, client=args.client_cert)
        tools = Tools(tmp)
        upstream = start_upstream(tmp, args.start_timeout)
        stack.callback(upstream.stop)
        check_content("upstream", upstream.port, None, small_body())
        tls = client_context(certs.root_ca, certs.client)
        ctx = Context(tmp, certs, tls, upstream, tools, stack, args)
        if args.workers_scaling:
            result = run_scaling(ctx, specs)
        elif args.idle_conns:
            result = run_idle(ctx, specs)
        else:
            result = run_compare(ctx, specs)
    print(render_json(result, env, args) if args.json else render_text(result, env, args))
    if args.json_out:
        args.json_out.write_text(render_json(result, env, args) + "\n")
    if result.flagged:
        loud("some runs were flagged: see above")
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as error:
        print(f"proxy.py: error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:  # every process and the temporary directory are already gone
        sys.exit(130)

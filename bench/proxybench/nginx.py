"""nginx: the upstream and the reference proxy, their configurations."""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path

from procfs import free_port, tool_version
from proxybench.common import HOST, LARGE_BODY, LOAD_CPUS, NGINX_CONNECTIONS
from proxybench.services import Service, http_get, small_body, spawn, wait_ready

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
        # Only for the harness: connections accepted so far, read before and after each run.
        location = /upstream-status {{
            stub_status;
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
{access_log}
{temp_paths}
    upstream backend {{
        server {host}:{upstream_port};
        keepalive {upstream_idle};
        keepalive_requests 1000000;
        keepalive_timeout 300s;
    }}
    server {{
        listen {host}:{port} ssl{listen_http2} backlog=4096;{http2_on}
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

#: `http2 on;` replaced `listen ... http2` in nginx 1.25.1; the listen parameter still works there
#: but is deprecated (a warning at start).
NGINX_HTTP2_DIRECTIVE = (1, 25, 1)


@functools.cache
def nginx_version() -> tuple[int, ...] | None:
    """The nginx on PATH's version, from ``nginx -v`` (None if it says none)."""
    match = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", tool_version(["nginx", "-v"]))
    return tuple(int(part) for part in match.groups()) if match else None


def nginx_http2(enabled: bool, version: tuple[int, ...] | None) -> dict[str, str]:
    """PROXY_CONF's HTTP/2 switch (ALPN h2 next to http/1.1 on the TLS listener), only when the
    run has the HTTP/2 test: ``listen ... ssl http2`` for nginx before 1.25.1 (Debian bookworm's
    1.22, or an unknown version), ``http2 on;`` from 1.25.1. Clients that offer no ALPN h2 (wrk,
    HAProxy, the harness's own checks) get HTTP/1.1 either way."""
    if not enabled:
        return {"listen_http2": "", "http2_on": ""}
    if version is not None and version >= NGINX_HTTP2_DIRECTIVE:
        return {"listen_http2": "", "http2_on": "\n        http2 on;"}
    return {"listen_http2": " http2", "http2_on": ""}


#: The reference nginx's access log: off, as tlsgate's `--access-log off`.
NGINX_NO_ACCESS_LOG = "    access_log off;"

#: --access-log: the fields tlsgate's access log has (proxy/access_log.py), as one JSON line per
#: request, written to a file in 4 KiB batches flushed at least every 0.5 s, as tlsgate batches
#: its lines. $request_time is in seconds (tlsgate's duration_ms is in milliseconds).
NGINX_ACCESS_LOG = """\
    log_format tlsgate escape=json '{{"time":"$time_iso8601","client":"$remote_addr",'
        '"method":"$request_method","target":"$request_uri","host":"$host","status":$status,'
        '"bytes":$body_bytes_sent,"upstream":"$upstream_addr","duration_s":$request_time}}';
    access_log {path} tlsgate buffer=4k flush=500ms;"""

#: --client-cert: the reference nginx asks for and verifies the client certificate. Depth 2: the
#: chain is leaf -> intermediate -> root (nginx's default of 1 refuses it).
NGINX_CLIENT_VERIFY = """\
        ssl_verify_client on;
        ssl_client_certificate {client_ca};
        ssl_verify_depth 2;"""


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


def upstream_accepts(port: int) -> int | None:
    """Connections the upstream nginx has accepted so far (stub_status), None if it does not say.
    The answer counts the connection that asked for it."""
    try:
        status, body = http_get(port, "/upstream-status", None)
    except OSError:
        return None
    match = re.search(rb"server accepts handled requests\s+(\d+)", body)
    return int(match.group(1)) if status == 200 and match else None

"""The proxies compared: how each is started and where the load goes."""

from __future__ import annotations

import itertools
import re
import shlex
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from procfs import free_port
from proxybench.caddy import caddy_argv, caddy_config
from proxybench.common import CLIENT_SPIFFE, HOST, REPO, UPSTREAM_IDLE, BenchError, progress
from proxybench.haproxy import Originator
from proxybench.nginx import (
    NGINX_ACCESS_LOG,
    NGINX_CLIENT_VERIFY,
    NGINX_NO_ACCESS_LOG,
    PROXY_CONF,
    nginx_argv,
    nginx_common,
    nginx_http2,
    nginx_prefix,
    nginx_version,
)
from proxybench.services import (
    Certs,
    Service,
    check_content,
    http_get,
    small_body,
    spawn,
    wait_ready,
)

# The reference nginx gets exactly the TLS 1.2 suites tlsgate serves (Mozilla intermediate).
from tlsgate.tls.context import MOZILLA_INTERMEDIATE_CIPHERS

if TYPE_CHECKING:
    from proxybench.wrk import Test

#: Numbers every proxy start, so each gets fresh directories.
_STARTS = itertools.count(1)


@dataclass(frozen=True)
class ProxySpec:
    """How to start one proxy: nginx or Caddy (built in), or a command template."""

    label: str
    template: str | None  # None: a built-in configuration (``kind``)
    kind: str = "nginx"  # with no template: "nginx" or "caddy"

    @property
    def name(self) -> str:
        """What it is, for the table's notes: the command template, or the built-in's name."""
        return self.template if self.template is not None else f"(built in: {self.kind})"


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
    access_log: bool = False,
    http2: bool = False,
    upstream_idle: int = UPSTREAM_IDLE,
) -> Service:
    """Start one proxy on a free port, pinned to ``cpus``, and check that it serves the upstream's
    pages. With ``access_log``, the built-in ones log every request to a file (--access-log);
    with ``http2`` (the run has the HTTP/2 test) the reference nginx offers h2 in ALPN (Caddy
    and tlsgate do by default). ``upstream_idle``: the idle upstream connections the built-in
    ones keep (nginx's ``keepalive``)."""
    slug = re.sub(r"[^a-z0-9]+", "-", spec.label.lower()).strip("-")
    name = f"{slug}-w{workers}-{next(_STARTS)}"
    port = free_port()
    if spec.template is None and spec.kind == "caddy":
        prefix = tmp / name
        caddyfile = caddy_config(
            prefix,
            port=port,
            upstream_port=upstream.port,
            cert=certs.fullchain,
            key=certs.key,
            client_ca=certs.root_ca if certs.client else None,
            access_log=prefix / "access.log" if access_log else None,
            upstream_idle=upstream_idle,
        )
        argv, log = caddy_argv(caddyfile, cpus), prefix / "output.log"
    elif spec.template is None:
        prefix = nginx_prefix(tmp, name)
        config = PROXY_CONF.format(
            **nginx_common(prefix, workers),
            port=port,
            upstream_port=upstream.port,
            upstream_idle=upstream_idle,
            cert=certs.fullchain,
            key=certs.key,
            ciphers=MOZILLA_INTERMEDIATE_CIPHERS,
            client_verify=(
                NGINX_CLIENT_VERIFY.format(client_ca=certs.root_ca) if certs.client else ""
            ),
            **nginx_http2(http2, nginx_version()),
            access_log=(
                NGINX_ACCESS_LOG.format(path=prefix / "access.log")
                if access_log
                else NGINX_NO_ACCESS_LOG
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
            "access_log": state / "access.log",
        }
        argv = ["taskset", "-c", cpus, *expand_template(spec.template, values)]
        log = tmp / name / "output.log"
    log_file = (tmp / name / "state" if spec.template is not None else tmp / name) / "access.log"
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
        if access_log:
            check_access_log(spec.label, log_file, start_timeout)
    except BaseException:
        service.stop()
        raise
    return service


def check_access_log(label: str, path: Path, timeout: float) -> None:
    """--access-log: the content check's requests must reach the proxy's log file (nginx and
    tlsgate flush their batches within 0.5 s); its last line goes to the progress output."""
    deadline = time.monotonic() + timeout
    while not (path.is_file() and path.stat().st_size):
        if time.monotonic() > deadline:
            raise BenchError(
                f"--access-log: {label} wrote nothing to {path} within {timeout:g} s (a"
                " --proxy-cmd template must log to {access_log})"
            )
        time.sleep(0.1)
    last = path.read_text(errors="replace").splitlines()[-1]
    progress(f"  {label} access log: {last[:300]}")


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


def check_h2(name: str, port: int, context: ssl.SSLContext) -> None:
    """The HTTP/2 test: a client offering "h2,http/1.1" in ALPN, as browsers do, must get h2."""
    context.set_alpn_protocols(["h2", "http/1.1"])
    try:
        with (
            socket.create_connection((HOST, port), timeout=10.0) as raw,
            context.wrap_socket(raw, server_hostname="localhost") as sock,
        ):
            chosen = sock.selected_alpn_protocol()
    except (OSError, ssl.SSLError) as exc:
        raise BenchError(f"{name}: a TLS connection offering h2 failed: {exc}") from None
    if chosen != "h2":
        raise BenchError(
            f"{name} chose {chosen or 'no protocol'} when offered h2 and http/1.1 in ALPN: the"
            " HTTP/2 test (h2-keepalive) needs a proxy that serves h2; leave it out with --tests"
        )


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

"""HAProxy: the client-side TLS originator of --haproxy and --client-cert."""

from __future__ import annotations

import csv
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from procfs import free_port
from proxybench.common import HAPROXY_MAXCONN, HOST, LOAD_CPUS, BenchError
from proxybench.services import Certs, Service, spawn, wait_ready

if TYPE_CHECKING:
    from proxybench.wrk import Test

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

"""TLS-terminating reverse proxies under test, side by side with nginx (and Caddy), on this machine.

Every proxy gets the same certificate (ECDSA P-256, made with ``tlsgate ca``), the same upstream
(a second nginx serving ``/100b`` and ``/1m`` over plain HTTP) and the same load (``wrk``), one
proxy at a time, and is pinned to the same core. The figure that counts is work per proxy
CPU-second, read from /proc before and after each run. Tests:

1. keep-alive, 100-byte responses, 50 connections                       (requests/s)
2. a full TLS 1.3 handshake per request ("Connection: close" + shim)     (requests/s)
3. a resumed TLS 1.3 handshake per request ("Connection: close")         (requests/s)
4. keep-alive, 1 MiB responses, 10 connections                          (MB/s)
5. HTTP/2 keep-alive, 100-byte responses: h2load, 50 connections x 10 streams (requests/s);
   the reference nginx then has `http2` on its listener (h2-keepalive)

Modes: the default compares the proxies on the five tests; ``--workers-scaling`` runs each proxy
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
    .venv/bin/python bench/proxy.py --caddy --proxy-cmd 'tlsgate=...' --proxy-cmd 'pure=env \
        TLSGATE_PURE=1 ...'                          # several proxies, Caddy too, one run

``--proxy-cmd`` may be given several times (``LABEL=TEMPLATE``); ``--caddy`` adds Debian's Caddy
with the same certificate and upstream; ``--access-log`` turns the reference proxies' access logs
on (to a file) and gives templates ``{access_log}``. The code is in bench/proxybench/.

Everything listens on 127.0.0.1. Every process the harness starts runs in its own session and is
stopped at the end (SIGTERM, then SIGKILL), also on an error or Ctrl-C; every wrk run has a time
limit; everything on disk lives in one temporary directory. See bench/README.md.
"""

from __future__ import annotations

import sys

from proxybench.cli import main, run

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(run())

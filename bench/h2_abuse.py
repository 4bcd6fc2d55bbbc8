"""HTTP/2 abuse vs the memory of ``tlsgate serve``: the worker's RSS across rounds of floods.

One ``tlsgate serve --workers 1`` in front of the upstream nginx of bench/proxy.py (its
certificates and upstream reused). Each round opens fresh TLS connections (ALPN h2, the
certificate verified against the run's CA) and sends, as raw frames:

* rapid reset: 400 streams opened and reset at once (CVE-2023-44487);
* a CONTINUATION flood: one HEADERS without END_HEADERS, then 5,000 CONTINUATION frames of
  1 KiB of fields each;
* a PING flood: 5,000 PINGs, never reading the acknowledgements;
* abandoned large responses: 100 streams of ``GET /1m`` whose windows are never opened, the
  connection closed after half a second.

After each round the worker's VmRSS is read from /proc; at the end, after ``--settle`` seconds
idle, again, and one ordinary request must still be answered 200. A worker whose RSS grows
round after round holds something a closed connection should have freed.

    .venv/bin/python bench/h2_abuse.py                 # 12 rounds, ~30 s
    .venv/bin/python bench/h2_abuse.py --rounds 3      # smoke run

Everything listens on 127.0.0.1; every process is stopped at the end. Exit status: 0; 1 if the
worker did not answer afterwards; 2 on a set-up error.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import ssl
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from hpack import Encoder
from hyperframe.frame import (
    ContinuationFrame,
    Frame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
)

from proxybench.cli import raise_nofile
from proxybench.common import PROXY_CPUS, REPO, BenchError, progress
from proxybench.nginx import start_upstream
from proxybench.proxies import ProxySpec, start_proxy
from proxybench.services import client_context, make_certs

SERVE = (
    "{root}/.venv/bin/tlsgate serve --host localhost --listen 127.0.0.1:{port}"
    " --to http://127.0.0.1:{upstream_port} --cert {cert} --key {key} --workers {workers}"
    " --no-http --access-log off --state {state}"
)
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def rss_kib(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def request_block(path: str) -> bytes:
    return Encoder().encode(
        [(":method", "GET"), (":scheme", "https"), (":authority", "localhost"), (":path", path)]
    )


class Connection:
    """A TLS connection that has said the client preface; frames go out raw."""

    def __init__(self, port: int, tls: ssl.SSLContext) -> None:
        raw = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock = tls.wrap_socket(raw, server_hostname="localhost")
        if self.sock.selected_alpn_protocol() != "h2":
            raise BenchError("serve did not choose h2")
        self.sock.sendall(PREFACE + SettingsFrame(0).serialize())

    def send(self, frames: Sequence[Frame]) -> bool:
        """False once the server has closed the connection (a flood's expected end)."""
        try:
            self.sock.sendall(b"".join(f.serialize() for f in frames))
        except OSError:
            return False
        return True

    def read_until_closed(self, seconds: float) -> bytes:
        out = b""
        deadline = time.monotonic() + seconds
        self.sock.settimeout(0.2)
        while time.monotonic() < deadline:
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        return out

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def rapid_reset(port: int, tls: ssl.SSLContext) -> None:
    conn = Connection(port, tls)
    block = request_block("/100b")
    for batch in range(40):
        frames: list[Frame] = []
        for i in range(10):
            sid = 1 + 2 * (batch * 10 + i)
            frames += [HeadersFrame(sid, block, flags=["END_HEADERS", "END_STREAM"])]
            frames += [RstStreamFrame(sid, error_code=8)]
        if not conn.send(frames):
            break
    conn.read_until_closed(2.0)
    conn.close()


def continuation_flood(port: int, tls: ssl.SSLContext) -> None:
    conn = Connection(port, tls)
    filler = Encoder().encode([("x-filler", "y" * 1000)])
    conn.send([HeadersFrame(1, request_block("/100b"))])
    for _ in range(50):
        if not conn.send([ContinuationFrame(1, filler) for _ in range(100)]):
            break
    conn.read_until_closed(2.0)
    conn.close()


def ping_flood(port: int, tls: ssl.SSLContext) -> None:
    conn = Connection(port, tls)
    for batch in range(50):
        pings = [PingFrame(0, opaque_data=(batch * 100 + i).to_bytes(8, "big")) for i in range(100)]
        if not conn.send(pings):
            break
    conn.read_until_closed(2.0)
    conn.close()


def abandoned_large_responses(port: int, tls: ssl.SSLContext) -> None:
    conn = Connection(port, tls)
    block = request_block("/1m")
    conn.send(
        [HeadersFrame(1 + 2 * i, block, flags=["END_HEADERS", "END_STREAM"]) for i in range(100)]
    )
    time.sleep(0.5)
    conn.close()


def answered(port: int, tls: ssl.SSLContext) -> bool:
    conn = Connection(port, tls)
    conn.send([HeadersFrame(1, request_block("/100b"), flags=["END_HEADERS", "END_STREAM"])])
    out = conn.read_until_closed(1.0)
    conn.close()
    return b"0123456789" in out or len(out) > 100


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=12, help="rounds of floods (default 12)")
    parser.add_argument("--settle", type=float, default=12.0, help="idle seconds at the end")
    parser.add_argument(
        "--tlsgate",
        default=str(REPO / ".venv" / "bin" / "tlsgate"),
        help="the tlsgate CLI that makes the certificates (default: %(default)s)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    raise_nofile()
    try:
        with tempfile.TemporaryDirectory(prefix="h2-abuse-") as tmp_name:
            tmp = Path(tmp_name)
            with contextlib.ExitStack() as stack:
                certs = make_certs(tmp, args.tlsgate)
                upstream = start_upstream(tmp, 30.0)
                stack.callback(upstream.stop)
                service = start_proxy(
                    ProxySpec("tlsgate", SERVE), tmp, certs, upstream, workers=1,
                    cpus=PROXY_CPUS, start_timeout=30.0, tls=client_context(certs.root_ca),
                )  # fmt: skip
                tls = client_context(certs.root_ca)
                tls.set_alpn_protocols(["h2"])
                stack.callback(service.stop)
                pid = service.pid
                start = rss_kib(pid)
                print(f"start: worker RSS {start / 1024:.1f} MiB")
                for n in range(args.rounds):
                    progress(f"round {n + 1} of {args.rounds}")
                    rapid_reset(service.port, tls)
                    continuation_flood(service.port, tls)
                    ping_flood(service.port, tls)
                    abandoned_large_responses(service.port, tls)
                    print(f"round {n + 1}: worker RSS {rss_kib(pid) / 1024:.1f} MiB")
                time.sleep(args.settle)
                print(f"after {args.settle:.0f} s idle: worker RSS {rss_kib(pid) / 1024:.1f} MiB")
                ok = answered(service.port, tls)
                print("an ordinary request afterwards: " + ("answered" if ok else "NOT answered"))
                return 0 if ok else 1
    except BenchError as exc:
        print(f"h2 abuse bench: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

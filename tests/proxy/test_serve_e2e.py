"""``tlsgate serve`` end to end: a real process, a real upstream, real clients."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from tests.conftest import free_port, require_tool

from .conftest import Serve, config_text, export_root

pytestmark = pytest.mark.interop


_OPEN: list[http.client.HTTPSConnection] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


def client(serve: Serve, host: str = "localhost") -> http.client.HTTPSConnection:
    conn = http.client.HTTPSConnection("127.0.0.1", serve.port, context=serve.context(), timeout=20)
    conn._tunnel_host = None  # type: ignore[attr-defined]
    # SNI and certificate check use this name; the TCP connection goes to 127.0.0.1.
    conn.host = host
    conn._create_connection = lambda *a, **k: socket.create_connection(  # type: ignore[attr-defined]
        ("127.0.0.1", serve.port), timeout=20
    )
    _OPEN.append(conn)
    return conn


def get_json(serve: Serve, path: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    conn = client(serve)
    conn.request("GET", path, headers=headers or {})
    resp = conn.getresponse()
    assert resp.status == 200
    data: dict[str, Any] = json.loads(resp.read())
    conn.close()
    return data


def header(data: dict[str, Any], name: str) -> list[str]:
    return [v for n, v in data["headers"] if n == name]


def raw_exchange(serve: Serve, payload: bytes, host: str = "localhost") -> bytes:
    with serve.connect(host) as tls:
        tls.sendall(payload)
        out = b""
        tls.settimeout(10)
        try:
            while chunk := tls.recv(65536):
                out += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    return out


def test_curl_through_the_edge(serve: Serve) -> None:
    curl = require_tool("curl")
    proc = subprocess.run(
        [curl, "-sS", "--max-time", "20", "--cacert", str(serve.root), "-D", "-",
         "--resolve", f"localhost:{serve.port}:127.0.0.1", f"https://localhost:{serve.port}/hi?x=1"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "hello /hi x=1" in proc.stdout
    assert proc.stdout.startswith("HTTP/2 200")  # curl offers h2 first, and gets it
    # localhost is not a public name: no HSTS by default.
    assert "strict-transport-security" not in proc.stdout.lower()


def test_forwarded_headers_and_anti_spoofing(serve: Serve) -> None:
    data = get_json(
        serve,
        "/echo",
        {
            "X-Forwarded-For": "6.6.6.6",
            "X-Forwarded-Proto": "http",
            "X-Forwarded-Host": "evil.example",
            "Forwarded": "for=6.6.6.6;proto=http",
            "Connection": "keep-alive, X-Secret",
            "X-Secret": "hop-by-hop by Connection",
        },
    )
    assert header(data, "x-forwarded-for") == ["127.0.0.1"]
    assert header(data, "x-forwarded-proto") == ["https"]
    # The Host the client sent, port included, as the app needs it to build absolute URLs.
    assert header(data, "x-forwarded-host") == [f"localhost:{serve.port}"]
    assert header(data, "x-forwarded-port") == [str(serve.port)]
    assert header(data, "forwarded") == [f'for=127.0.0.1;proto=https;host="localhost:{serve.port}"']
    assert header(data, "x-secret") == []
    assert header(data, "connection") == []


def test_access_log_has_one_json_line_per_exchange(serve_factory: Any, tmp_path: Path) -> None:
    access = tmp_path / "access.jsonl"
    serve = serve_factory("--access-log", str(access))
    conn = client(serve)
    conn.request("GET", "/bytes/1000?q=1")
    resp = conn.getresponse()
    assert resp.status == 200 and len(resp.read()) == 1000
    conn.request("GET", "/x", headers={"Host": "unknown.example"})
    resp = conn.getresponse()
    assert resp.status == 404
    resp.read()
    conn.close()
    assert serve.stop() == 0  # the log is flushed on the way out
    lines = [json.loads(line) for line in access.read_text().splitlines()]
    assert [(r["method"], r["target"], r["status"]) for r in lines] == [
        ("GET", "/bytes/1000?q=1", 200),
        ("GET", "/x", 404),
    ]
    ok, missing = lines
    assert ok["client"] == "127.0.0.1" and ok["host"] == "localhost"
    assert ok["upstream"] == f"http://127.0.0.1:{serve.upstream_port}"
    assert ok["bytes"] > 1000 and ok["duration_ms"] >= 0 and "error" not in ok
    assert missing["host"] == "unknown.example" and missing["upstream"] == ""
    assert 0 < missing["bytes"] < 1000


def test_keep_alive_and_pooling(serve: Serve) -> None:
    conn = client(serve)
    for i in range(20):
        conn.request("GET", f"/n{i}")
        resp = conn.getresponse()
        assert resp.status == 200 and resp.read() == f"hello /n{i} \n".encode()
    conn.close()
    # Clients that close after each request still share one pooled upstream connection.
    for i in range(5):
        conn = client(serve)
        conn.request("GET", f"/c{i}", headers={"Connection": "close"})
        resp = conn.getresponse()
        assert resp.status == 200 and resp.getheader("connection") == "close"
        resp.read()
        conn.close()
    assert serve.seen.connections == 1


@pytest.mark.parametrize("size", [0, 1, 65535, 5 * 1024 * 1024 + 7])
def test_upload_content_length(serve: Serve, size: int) -> None:
    body = os.urandom(size)
    conn = client(serve)
    conn.request("POST", "/echo", body=body, headers={"Content-Type": "application/octet-stream"})
    data = json.loads(conn.getresponse().read())
    assert data["body_size"] == size
    assert data["body_sha256"] == hashlib.sha256(body).hexdigest()


def test_upload_chunked_with_trailers(serve: Serve) -> None:
    payload = (
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 42\r\n\r\n"
    )
    out = raw_exchange(serve, payload)
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    data = json.loads(body)
    assert data["body_size"] == 11
    assert data["body_sha256"] == hashlib.sha256(b"hello world").hexdigest()
    assert data["trailers"] == [["x-sum", "42"]]


def test_large_download_streams(serve: Serve) -> None:
    size = 64 * 1024 * 1024
    conn = client(serve)
    conn.request("GET", f"/bytes/{size}")
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("content-length") == str(size)
    total = 0
    while block := resp.read(1 << 20):
        total += len(block)
    assert total == size


def test_chunked_response_and_trailers_kept(serve: Serve) -> None:
    out = raw_exchange(
        serve, b"GET /chunked/3 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    assert b"transfer-encoding: chunked" in out.lower()
    assert out.endswith(b"0\r\nx-checksum: abc\r\n\r\n")
    assert out.count(b"0123456789") == 3


def test_close_delimited_response_is_rechunked(serve: Serve) -> None:
    conn = client(serve)
    conn.request("GET", "/close")
    resp = conn.getresponse()
    assert resp.read() == b"until-close body"
    assert resp.getheader("transfer-encoding") == "chunked"


def test_websocket_tunnel(serve: Serve) -> None:
    with serve.connect() as tls:
        tls.sendall(
            b"GET /ws HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += tls.recv(4096)
        assert head.startswith(b"HTTP/1.1 101")
        assert b"upgrade: websocket" in head.lower()
        for message in (b"ping", b"x" * 100_000):
            tls.sendall(message)
            expected = b"echo:" + message
            got = b""
            deadline = time.monotonic() + 10
            while len(got) < len(expected) and time.monotonic() < deadline:
                got += tls.recv(65536)
            # The echo upstream prefixes each read, so compare content, not segmentation.
            assert got.replace(b"echo:", b"") == message


def test_redirect_to_https(serve: Serve) -> None:
    with socket.create_connection(("127.0.0.1", serve.http_port), timeout=10) as s:
        s.sendall(
            b"POST /a/b?c=d HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n"
            b"Connection: close\r\n\r\n"
        )
        out = s.recv(4096)
    assert out.startswith(b"HTTP/1.1 308")
    assert f"location: https://localhost:{serve.port}/a/b?c=d".encode() in out.lower()


def test_hsts_for_public_names(serve_factory: Any) -> None:
    config = config_text('["www.example.com"]')
    serve: Serve = serve_factory(config=config)
    conn = client(serve, "www.example.com")
    conn.request("GET", "/")
    resp = conn.getresponse()
    resp.read()
    assert resp.getheader("strict-transport-security") == "max-age=63072000"
    conn.request("GET", "/hsts")
    resp = conn.getresponse()
    resp.read()
    assert resp.getheader("strict-transport-security") == "max-age=1"  # the app's own wins


def test_sni_selects_the_site(serve_factory: Any) -> None:
    config = config_text('["a.test"]', '["*.b.test"]')
    serve: Serve = serve_factory(config=config)
    for name, san in (("a.test", "a.test"), ("x.b.test", "*.b.test")):
        with serve.connect(name) as tls:
            der = tls.getpeercert(binary_form=True)
            assert der is not None
            cert = x509.load_der_x509_certificate(der)
            sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            assert sans.get_values_for_type(x509.DNSName) == [san]
    # The Host header must name the site the handshake was for.
    out = raw_exchange(
        serve, b"GET / HTTP/1.1\r\nHost: x.b.test\r\nConnection: close\r\n\r\n", host="a.test"
    )
    assert out.startswith(b"HTTP/1.1 421")
    out = raw_exchange(
        serve, b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n", host="a.test"
    )
    assert out.startswith(b"HTTP/1.1 200")
    # On one keep-alive connection, a Host that changes is routed afresh (the compiled connection
    # reuses the route while the Host bytes repeat): 200, 200, then 421 for the other site's name.
    out = raw_exchange(
        serve,
        b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n"
        b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n"
        b"GET / HTTP/1.1\r\nHost: x.b.test\r\nConnection: close\r\n\r\n",
        host="a.test",
    )
    assert out.startswith(b"HTTP/1.1 200")
    assert out.count(b"HTTP/1.1 200") == 2
    assert out.count(b"HTTP/1.1 421") == 1


def test_dead_upstream_is_skipped(serve_factory: Any) -> None:
    dead = free_port()
    serve: Serve = serve_factory("--to", f"http://127.0.0.1:{dead}")
    # Both upstreams: the live one and a dead one; requests keep working (passive health).
    for _ in range(6):
        conn = client(serve)
        conn.request("GET", "/x")
        assert conn.getresponse().status == 200
        conn.close()


def test_only_upstream_down_is_502(tmp_path: Path, serve_factory: Any) -> None:
    config = config_text(f'["localhost"] -> http://127.0.0.1:{free_port()}')
    serve: Serve = serve_factory(config=config)
    out = raw_exchange(serve, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 502")
    assert b"127.0.0.1" not in out.partition(b"\r\n\r\n")[2]  # no internals leak


def test_slow_upstream_is_504(serve_factory: Any) -> None:
    config = config_text('["localhost"]', timeouts="upstream_response = 1")
    serve: Serve = serve_factory(config=config)
    out = raw_exchange(serve, b"GET /slow/3 HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 504")


def test_graceful_drain(serve: Serve) -> None:
    result: dict[str, Any] = {}

    def slow_request() -> None:
        conn = client(serve)
        conn.request("GET", "/slow/1.5")
        resp = conn.getresponse()
        result["status"] = resp.status
        result["body"] = resp.read()

    thread = threading.Thread(target=slow_request)
    thread.start()
    deadline = time.monotonic() + 20  # SIGTERM once the request is in flight (upstream has it)
    while not any(r.target == b"/slow/1.5" for r in serve.seen.requests):
        assert time.monotonic() < deadline, serve.log.read_text()
        time.sleep(0.02)
    code = serve.stop(signal.SIGTERM)
    thread.join(10)
    assert result == {"status": 200, "body": b"slow\n"}
    assert code == 0
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", serve.port), timeout=2).close()


def test_hot_certificate_swap_keeps_connections(serve_factory: Any, tmp_path: Path) -> None:
    state = tmp_path / "files-ca"
    cert_dir = tmp_path / "served"
    tlsgate = [sys.executable, "-m", "tlsgate"]

    def cli(*args: str) -> None:
        subprocess.run([*tlsgate, *args, "--state", str(state)], check=True, capture_output=True)

    cli("ca", "init")
    cli("ca", "issue", "localhost", "--out", str(cert_dir))
    serve: Serve = serve_factory(
        "--cert", str(cert_dir / "fullchain.pem"), "--key", str(cert_dir / "key.pem")
    )
    export_root(state, serve.root)

    def serial_of(tls: Any) -> int:
        return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True)).serial_number

    old = client(serve)
    old.request("GET", "/before")
    assert old.getresponse().read() == b"hello /before \n"
    assert old.sock is not None
    first_serial = serial_of(old.sock)
    cli("ca", "issue", "localhost", "--out", str(cert_dir), "--force")
    serve.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    new_serial = first_serial
    while new_serial == first_serial and time.monotonic() < deadline:
        with serve.connect() as tls:
            new_serial = serial_of(tls)
        time.sleep(0.1)
    assert new_serial != first_serial
    # The keep-alive connection opened before the swap still works.
    old.request("GET", "/after")
    assert old.getresponse().read() == b"hello /after \n"


def test_two_workers(serve_factory: Any) -> None:
    serve: Serve = serve_factory(workers=2)
    for _ in range(10):
        assert get_json(serve, "/echo")["method"] == "GET"
    assert serve.stop() == 0


def test_workers_exit_when_the_master_is_killed(serve_factory: Any) -> None:
    serve: Serve = serve_factory(workers=2)
    master = serve.proc.pid
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    workers = [int(pid) for pid in children]
    assert len(workers) == 2
    serve.proc.kill()  # SIGKILL: no chance to stop the workers itself
    serve.proc.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in workers):
        time.sleep(0.05)
    # (they are our grandchildren, re-parented to init, which reaps them)
    assert not [pid for pid in workers if _alive(pid)]


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in status


def test_a_port_another_process_listens_on_is_refused(tmp_path: Path) -> None:
    """SO_REUSEPORT would let a second server share the port and take half the connections."""
    other = socket.socket()
    other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # like a second tlsgate
    other.bind(("127.0.0.1", 0))
    other.listen()
    port = other.getsockname()[1]
    try:
        result = subprocess.run(
            [sys.executable, "-m", "tlsgate", "serve", "--host", "localhost",
             "--to", "http://127.0.0.1:9", "--listen", f"127.0.0.1:{port}", "--no-http",
             "--state", str(tmp_path / "state")],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    finally:
        other.close()
    assert result.returncode == 2, result
    assert f"127.0.0.1:{port}: it is already in use by another process" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "state").exists()  # checked before the state is created


def test_interim_responses_reach_the_client_before_the_final_one(serve: Serve) -> None:
    """103 Early Hints (or 100 Continue) from the upstream, then its response: both relayed.
    The parser ends each message, the interim one too; that end is not the exchange's."""
    out = raw_exchange(
        serve, b"GET /hints HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    assert out.startswith(b"HTTP/1.1 103 ")
    assert b"link: </style.css>; rel=preload\r\n" in out
    final = out.index(b"HTTP/1.1 200 ")
    assert out[final:].endswith(b"hinted\n")

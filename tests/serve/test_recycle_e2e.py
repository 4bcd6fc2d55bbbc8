"""``max_connections_per_worker``: a real ``tlsgate serve`` replaces its worker every N
connections while real clients keep connecting, and none of them sees an error."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import ssl
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.proxy.conftest import Serve

pytestmark = pytest.mark.interop

LIMIT = 8
CLIENTS = 4
CONNECTIONS_EACH = 15  # 60 connections: at least 7 successors


def workers_of(master: int) -> set[int]:
    path = Path(f"/proc/{master}/task/{master}/children")
    try:
        return {int(pid) for pid in path.read_text().split()}
    except FileNotFoundError:
        return set()


def hello(path: str) -> bytes:
    """What the test upstream answers to GET ``path``."""
    return f"hello {path} \n".encode()


def fresh_get(
    serve: Serve, context: ssl.SSLContext, path: str, session: ssl.SSLSession | None = None
) -> tuple[int, bytes, ssl.SSLSession | None, bool]:
    """One request on a new TLS connection (``Connection: close``), as churn looks; resumes
    ``session`` if given. Returns the status, the body, the session to resume next and whether
    this handshake was resumed."""
    with socket.create_connection(("127.0.0.1", serve.port), timeout=20) as raw:
        with context.wrap_socket(raw, server_hostname="localhost", session=session) as tls:
            reused = tls.session_reused
            tls.sendall(
                f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode()
            )
            chunks = []
            for _ in range(1000):  # until the server closes (Connection: close); bounded
                chunk = tls.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
            # TLS 1.3 tickets arrive after the handshake: the session is complete by now.
            next_session = tls.session
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.1 ") else 0
    if b"transfer-encoding: chunked" in head.lower():
        raise AssertionError(f"unexpected chunked answer to {path}: {head!r}")
    return status, body, next_session, bool(reused)


@pytest.mark.parametrize(
    ("workers", "extra"),
    [
        (1, ()),
        (2, ()),  # two slots, each with its own listening socket and successors
        (1, ("--client-auth", "optional")),  # the peeking acceptor's listener
    ],
    ids=["one-worker", "two-workers", "peeking-acceptor"],
)
def test_workers_are_replaced_every_n_connections_without_a_failed_request(
    serve_factory: Any, workers: int, extra: tuple[str, ...]
) -> None:
    serve: Serve = serve_factory(
        "--max-connections-per-worker", str(LIMIT), *extra, workers=workers
    )
    master = serve.proc.pid
    first = workers_of(master)
    assert len(first) == workers, "with recycling on, the master forks every worker"
    seen: set[int] = set(first)
    failures: list[str] = []
    done: list[int] = []
    resumed: list[bool] = []

    # A keep-alive client across the recycles: its requests all succeed (after a recycle its
    # connection ends after a response, with Connection: close, and http.client reconnects).
    keep = http.client.HTTPSConnection("127.0.0.1", serve.port, context=serve.context(), timeout=20)
    keep.host = "localhost"

    def churn(client: int) -> None:
        context = serve.context()
        resume = client % 2 == 0  # resumed handshakes (tickets) for half the clients
        session = None
        for i in range(CONNECTIONS_EACH):
            try:
                status, body, last, reused = fresh_get(serve, context, f"/c{client}/{i}", session)
                session = last if resume else None
                resumed.append(reused)
                if (status, body) != (200, hello(f"/c{client}/{i}")):
                    failures.append(f"client {client} request {i}: {status} {body!r}")
                else:
                    done.append(1)
            except (OSError, ssl.SSLError, http.client.HTTPException) as exc:
                failures.append(f"client {client} request {i}: {exc!r}")

    threads = [threading.Thread(target=churn, args=(c,)) for c in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for i in range(CONNECTIONS_EACH):
        keep.request("GET", f"/keep/{i}")
        resp = keep.getresponse()
        assert (resp.status, resp.read()) == (200, hello(f"/keep/{i}"))
        seen |= workers_of(master)
        time.sleep(0.05)
    for thread in threads:
        thread.join(timeout=120)
        assert not thread.is_alive()
    keep.close()
    seen |= workers_of(master)

    assert failures == []
    assert len(done) == CLIENTS * CONNECTIONS_EACH
    # Successors are forked from the master, with its ticket keys: sessions resume across them.
    assert sum(resumed) >= CONNECTIONS_EACH
    # Workers came and went: more than the first (the test samples, so it sees at least two).
    assert len(seen) >= 2
    assert workers_of(master) != first
    # The retired workers finish draining (handshake grace, 10 s) and exit; the slots' stay.
    deadline = time.monotonic() + 60
    while len(workers_of(master)) > workers and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(workers_of(master)) == workers
    assert serve.stop() == 0
    log = serve.log.read_text()
    assert "reached max_connections_per_worker" in log
    assert "exited unexpectedly" not in log


def test_a_worker_that_dies_is_replaced(serve_factory: Any) -> None:
    """With recycling on the master holds the listening sockets: a worker killed outright must
    get a successor, else its share of connections would wait in a queue nobody reads."""
    serve: Serve = serve_factory("--max-connections-per-worker", "1000")
    master = serve.proc.pid
    (worker,) = workers_of(master)
    os.kill(worker, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while workers_of(master) in (set(), {worker}) and time.monotonic() < deadline:
        time.sleep(0.05)
    (successor,) = workers_of(master)
    assert successor != worker
    assert fresh_get(serve, serve.context(), "/after")[:2] == (200, hello("/after"))
    assert serve.stop() == 0
    assert "exited unexpectedly (signal 9)" in serve.log.read_text()

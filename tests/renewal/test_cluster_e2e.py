"""Three `tlsgate serve` nodes on one PostgreSQL store, in front of one ACME CA.

Real processes throughout: `tlsgate ca serve` issuing one-minute certificates, three serve
nodes (two workers each) on their own loopback ports with ``--store postgresql://...``, and a
small layer-4 balancer in front of their plain-HTTP ports, which is where the CA's http-01
validator connects: each validation lands on whichever node the balancer picks, not
necessarily the one that ordered, so the answers must come from the shared store.

What the cluster must show (issue #8): one order per certificate however many nodes want it;
a node killed while it holds the renewal lease is taken over after the lease's TTL; a session
ticket from one node resumes on another; PostgreSQL restarting under traffic fails no request,
is reported (``tlsgate_store_up`` 0 then 1), and renewals go on after it.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.acme.ca_serve import AcmeCA
from tests.conftest import free_port
from tests.proxy.upstream_app import run_upstream
from tests.store.postgres import PostgresServer

from .acme_edge import Traffic, verified_serial

pytestmark = pytest.mark.interop

NAME = "a.example.test"
LEASE = f"renew:{NAME}"


def wait(check: Callable[[], object], timeout: float, what: str, log: Callable[[], str]) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{log()[-8000:]}")


class Balancer:
    """A layer-4 balancer: each connection goes to the next backend port that accepts it (a
    dead node is skipped), after ``delay`` seconds (a slow path, to make orders last)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.backends: list[int] = []
        self.delay = 0.0
        self.hits: dict[int, int] = {}
        self._turn = itertools.count()
        self._server = socket.create_server(("127.0.0.1", port))
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._server.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        time.sleep(self.delay)
        start = next(self._turn)
        backends = self.backends[start % len(self.backends) :] + self.backends
        for port in backends[: len(self.backends)]:
            try:
                upstream = socket.create_connection(("127.0.0.1", port), timeout=2)
            except OSError:
                continue
            self.hits[port] = self.hits.get(port, 0) + 1
            break
        else:
            client.close()
            return
        back = threading.Thread(target=_pipe, args=(upstream, client), daemon=True)
        back.start()
        _pipe(client, upstream)
        back.join(30)
        client.close()
        upstream.close()


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


class Node:
    def __init__(self, index: int, tmp_path: Path, url: str, ca: AcmeCA, upstream: int) -> None:
        self.name = f"node{index}"
        self.dir = tmp_path / self.name
        self.dir.mkdir()
        self.url = url
        self.port, self.http_port, self.admin_port = free_port(), free_port(), free_port()
        (self.dir / "tlsgate.toml").write_text(
            f'[server]\nlisten = "127.0.0.1:{self.port}"\n'
            f'http_listen = "127.0.0.1:{self.http_port}"\n'
            f'admin_listen = "127.0.0.1:{self.admin_port}"\nworkers = 2\naccess_log = "off"\n\n'
            f'[acme]\ndirectory = "{ca.directory}"\nca = "{ca.root}"\n'
            f'email = "ops@example.test"\n\n'
            f'[[site]]\nhosts = "{NAME}"\nupstream = "http://127.0.0.1:{upstream}"\n'
            '[site.acme]\nchallenges = ["http-01"]\n'
        )
        self.log = self.dir / "serve.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "TLSGATE_STATE": str(self.dir / "local")}  # OCSP cache and such
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tlsgate", "serve", "-c", str(self.dir / "tlsgate.toml"),
                 "--store", self.url],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            )  # fmt: skip

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        # Its workers follow (PR_SET_PDEATHSIG); the ports are free once they are gone.
        wait(lambda: not _listening(self.port), 15, f"{self.name}'s workers to exit", self.text)

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc is not None else None
        self.proc.terminate()
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None

    def text(self) -> str:
        return f"--- {self.name}\n" + self.log.read_text(errors="replace")

    def store_up(self) -> float | None:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.admin_port}/metrics", timeout=5
            ) as response:
                body = response.read().decode()
        except OSError:
            return None
        for line in body.splitlines():
            if line.startswith("tlsgate_store_up "):
                return float(line.split()[1])
        return None


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def ca_issued(ca: AcmeCA) -> list[str]:
    """When the CA issued each ACME certificate (its own HTTPS certificate is not one)."""
    db = sqlite3.connect(ca.state / "tlsgate.db")
    try:
        rows = db.execute(
            "SELECT issued_at FROM certificate WHERE order_id IS NOT NULL ORDER BY issued_at"
        ).fetchall()
    finally:
        db.close()
    return [str(row[0]) for row in rows]


@pytest.fixture
def cluster(
    postgres_server: PostgresServer, tmp_path: Path
) -> Iterator[tuple[PostgresServer, str, AcmeCA, Balancer, list[Node]]]:
    url = postgres_server.create_database()
    balancer = Balancer(free_port())
    (tmp_path / "ca").mkdir()
    ca = AcmeCA(tmp_path / "ca", "--lifetime", "1m", http_port=balancer.port)
    ca.start()
    nodes: list[Node] = []
    try:
        with run_upstream() as (upstream, _):
            nodes = [Node(i, tmp_path, url, ca, upstream) for i in range(3)]
            balancer.backends = [node.http_port for node in nodes]
            yield postgres_server, url, ca, balancer, nodes
    finally:
        for node in nodes:
            node.stop()
        ca.stop()
        balancer.close()
        with contextlib.suppress(RuntimeError):
            postgres_server.start()  # if a failure left it stopped, for the session's others


def test_three_nodes_one_order_takeover_tickets_and_a_database_restart(
    cluster: tuple[PostgresServer, str, AcmeCA, Balancer, list[Node]],
) -> None:
    from tlsgate.store.postgres import PostgresStore

    postgres, url, ca, balancer, nodes = cluster

    def logs() -> str:
        return "\n".join(node.text() for node in nodes) + "\n--- ca\n" + ca.log.read_text()

    def serials(among: list[Node]) -> list[int | None]:
        return [verified_serial(node.port, NAME, [ca.root]) for node in among]

    # 1. All three start at once with nothing stored. Validations are slowed down, so the
    # order of whichever node takes the lease lasts long enough to kill that node in the middle.
    balancer.delay = 2.0
    for node in nodes:
        node.start()
    store = PostgresStore(url)
    try:
        holder = str(
            wait(lambda: store.lease_holder(LEASE, datetime.now(UTC)), 60, "a lease holder", logs)
        )
        victim = next(node for node in nodes if node.pid == int(holder.split(":")[1]))
        victim.kill()
        assert store.load_managed(NAME) is None, "the order finished before the kill"
        survivors = [node for node in nodes if node is not victim]
        balancer.delay = 0.0

        # 2. A survivor takes over once the lease lapses (TTL 15 s) and orders; both serve
        # the certificate, picked up from the store by the one that did not order.
        def same(among: list[Node]) -> int | None:
            got = serials(among)
            return got[0] if got[0] is not None and len(set(got)) == 1 else None

        first = int(str(wait(lambda: same(survivors), 60, "the survivors' certificate", logs)))
        taker = store.load_renewal_state(NAME)
        assert taker is not None and taker.last_error is None
        assert sum("requesting a certificate" in node.text() for node in survivors) == 1
        assert any("is renewing it; waiting for its certificate" in n.text() for n in survivors)

        # The killed node comes back and serves the stored certificate without ordering.
        victim.start()
        wait(lambda: same(nodes) == first, 30, "the restarted node to serve it", logs)
        assert len(ca_issued(ca)) == 1, ca_issued(ca)  # one certificate for three nodes
        assert balancer.hits  # the validator came through the balancer

        # 3. A TLS 1.3 session ticket from one node resumes on the others (shared secret).
        context = ssl.create_default_context(cafile=str(ca.root))
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        with socket.create_connection(("127.0.0.1", nodes[0].port), timeout=5) as raw:
            with context.wrap_socket(raw, server_hostname=NAME) as tls:
                tls.sendall(f"GET / HTTP/1.1\r\nHost: {NAME}\r\nConnection: close\r\n\r\n".encode())
                while tls.recv(65536):  # the tickets arrive after the handshake
                    pass
                session = tls.session
        assert session is not None and session.has_ticket
        for node in nodes[1:]:
            with socket.create_connection(("127.0.0.1", node.port), timeout=5) as raw:
                with context.wrap_socket(raw, server_hostname=NAME, session=session) as tls:
                    assert tls.session_reused, node.name
    finally:
        store.close()

    # 4. PostgreSQL goes away under traffic and comes back: no request fails (nothing on the
    # request path reads the store), the outage is reported, and renewals carry on after it.
    traffic = Traffic(nodes[0].port, NAME, [ca.root], limit=120)
    try:
        wait(lambda: traffic.requests > 5, 20, "traffic", logs)
        postgres.stop()
        try:
            wait(lambda: nodes[0].store_up() == 0.0, 20, "tlsgate_store_up 0", logs)
            time.sleep(1)
        finally:
            postgres.start()
        wait(lambda: nodes[0].store_up() == 1.0, 30, "tlsgate_store_up 1", logs)
        renewed = wait(
            lambda: (s := same(nodes)) not in (None, first) and s,
            75, "a renewal after the restart, served by every node", logs,
        )  # fmt: skip
    finally:
        traffic.stop()
    assert not traffic.failures, traffic.failures
    assert traffic.requests > 20
    text = nodes[0].text()
    assert text.count("is unreachable; serving the certificates held") == 1, text[-4000:]
    assert text.count("is reachable again") == 1, text[-4000:]
    # Each renewal was ordered once: the CA issued no two certificates in the same round.
    issued = [datetime.fromisoformat(moment) for moment in ca_issued(ca)]
    assert len(issued) >= 2, issued
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(issued)]
    assert min(gaps) > 10, (issued, renewed)
    for node in nodes:
        assert node.stop() == 0, node.text()[-3000:]

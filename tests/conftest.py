"""Shared fixtures: a real CA in a temporary state directory, and real external tools.

Interop tests drive real programs (openssl, curl). Outside CI a missing program skips the test
with the install hint; in CI (``CI=true``) it fails, because the test script must have installed it.
"""

from __future__ import annotations

import errno
import fcntl
import itertools
import os
import random
import shutil
import socket
import tempfile
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.store.postgres import postgres_server  # noqa: F401 (a fixture for every test)
from tlsgate.ca import CertificateAuthority
from tlsgate.store.sqlite import SQLiteStore

# Ports for the servers the tests start. Binding port 0 and closing again only says the port is
# free *now*: another pytest-xdist worker's bind(0) may get the same one before our server (often
# a process still importing) binds it. So each process hands out ports from its own range, below
# the kernel's ephemeral range (32768-60999 by default) so that outgoing connections never take
# them either: a session without xdist uses the first range, worker gwN the range N + 1. The order
# within the range is shuffled per process, and each port handed out is also reserved with a lock
# file for a while, so that two test sessions running at once (two checkouts, or a second
# ``pytest`` run by hand) do not pick the same port before either has bound it.
_PORT_BASE = 20000
_PORT_SPAN = 500  # per process; a port comes round again after this many others
_PORT_LOCKS = Path(tempfile.gettempdir()) / f"tlsgate-test-ports-{os.getuid()}"
_PORT_HELD = 64  # reservations kept: long enough for any server to have bound its port
_ports: Iterator[int] | None = None
_held: deque[int] = deque()


def _port_range() -> range:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # gw0, gw1, ... under xdist
    index = int(worker[2:]) + 1 if worker.startswith("gw") and worker[2:].isdigit() else 0
    low = _PORT_BASE + index * _PORT_SPAN  # up to gw23 stays below 32768
    return range(low, low + _PORT_SPAN)


def _cycle(ports: range) -> Iterator[int]:
    order = list(ports)
    random.SystemRandom().shuffle(order)  # two sessions at once: two different orders
    return itertools.cycle(order)


def _bindable(port: int) -> bool:
    """Nothing is bound to the port on loopback (not even in TIME_WAIT), IPv4 nor IPv6."""
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        try:
            with socket.socket(family, socket.SOCK_STREAM) as s:
                if family == socket.AF_INET6:
                    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                s.bind((host, port))
        except OSError as exc:
            if family == socket.AF_INET6 and exc.errno == errno.EADDRNOTAVAIL:
                continue  # no IPv6 loopback on this machine
            return False
    return True


def _reserve(port: int) -> bool:
    """Lock the port against other test sessions; keep the last ``_PORT_HELD`` locks."""
    _PORT_LOCKS.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(_PORT_LOCKS / str(port), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    _held.append(fd)
    while len(_held) > _PORT_HELD:
        os.close(_held.popleft())  # closing releases the lock
    return True


def free_port() -> int:
    """A loopback port for a server a test starts: free, and handed to no other test for a while.

    Collision-free between pytest-xdist workers (each has its own range) and between test
    sessions running at the same time (lock files). Only for a port that something binds later
    (another process, or a server bound after the URLs naming it are made): a server the test
    binds itself right away should bind port 0 and keep its socket.
    """
    global _ports
    if _ports is None:
        _ports = _cycle(_port_range())
    for _ in range(_PORT_SPAN):
        port = next(_ports)
        if _bindable(port) and _reserve(port):
            return port
    raise RuntimeError(f"every port in {_port_range()} is in use")


# The test files that take longest (tens of seconds each, mostly waiting on real processes and
# certificate lifetimes), longest first. They run first, so that pytest-xdist (scripts/test.sh:
# ``--dist loadfile --no-loadscope-reorder``) starts them at once and the many short files fill
# in around them; by default xdist would start the files with the most tests first, and a
# two-test file of two minutes last.
SLOW_FILES = (
    "tests/renewal/test_serve_acme_e2e.py",
    "tests/proxy/test_serve_e2e.py",
    "tests/client/test_tunnel_e2e.py",
    "tests/acme/test_interop_e2e.py",
    "tests/cli/test_cert.py",
    "tests/proxy/test_mtls_e2e.py",
    "tests/proxy/test_tickets_e2e.py",
    "tests/config/test_parse.py",
    "tests/store/test_sqlite.py",
    "tests/proxy/test_http_fuzz.py",
    "tests/store/test_renewal_store.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {path: i for i, path in enumerate(SLOW_FILES)}
    items.sort(key=lambda item: rank.get(item.nodeid.partition("::")[0], len(rank)))


def require_tool(name: str) -> str:
    """Path of an external program, or skip (fail in CI) when it is missing."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (scripts/test installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture
def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty state directory, also exported as TLSGATE_STATE for CLI calls."""
    path = tmp_path / "state"
    monkeypatch.setenv("TLSGATE_STATE", str(path))
    monkeypatch.delenv("TLSGATE_STORE", raising=False)  # it would win over TLSGATE_STATE
    monkeypatch.delenv("TLSGATE_CA_PASSPHRASE", raising=False)
    return path


@pytest.fixture
def store(state_dir: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(state_dir)
    yield s
    s.close()


@pytest.fixture
def ca(store: SQLiteStore, now: datetime) -> CertificateAuthority:
    return CertificateAuthority.init(store, now=now, name="Test")

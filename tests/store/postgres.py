"""A throwaway PostgreSQL server for tests: ``initdb`` + ``pg_ctl`` in a temporary directory.

Why a real server rather than a mock: the store's promises (one winner among concurrent
processes, migrations under an advisory lock, surviving a restart) are PostgreSQL behaviour, and
only PostgreSQL can show they hold. The server trusts local connections (``--auth=trust``), listens
on 127.0.0.1 on a port from :func:`tests.conftest.free_port` and on a Unix socket in its own
directory, and runs with ``fsync=off`` because its data dies with the test session.

PostgreSQL refuses to run as root; as root (containers, CI) the programs run as ``nobody`` through
``runuser`` with the directory handed to that user.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["PostgresServer", "find_pg_bin", "postgres_server"]

_UNPRIVILEGED = "nobody"


def find_pg_bin(name: str) -> str | None:
    """``name`` on PATH, else in Debian's versioned directory (the newest version)."""
    path = shutil.which(name)
    if path is not None:
        return path
    candidates = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    return candidates[-1] if candidates else None


class PostgresServer:
    """One PostgreSQL cluster, started by :meth:`start` and removed by :meth:`stop`."""

    def __init__(self, bindir: Path, port: int) -> None:
        self.bindir = bindir
        self.port = port
        self.root = Path(tempfile.mkdtemp(prefix="tlsgate-pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root
        self.log = self.root / "server.log"
        self._user: str | None = None
        self._names = itertools.count(1)
        if os.geteuid() == 0:
            self._user = _UNPRIVILEGED
            entry = pwd.getpwnam(_UNPRIVILEGED)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        os.chmod(self.root, 0o755)  # tests (as root) read the log; the data dir stays 0700

    def _run(self, program: str, *args: str, timeout: float = 60) -> None:
        command = [str(self.bindir / program), *args]
        if self._user is not None:
            command = ["runuser", "-u", self._user, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(
                f"{program} failed ({result.returncode}): {result.stderr}{result.stdout}\n{log}"
            )

    def start(self) -> None:
        if not self.data.exists():
            self._run(
                "initdb",
                "-D",
                str(self.data),
                "--auth=trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            )
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.socket_dir}"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            " -c max_connections=200"
        )
        control = ["-D", str(self.data), "-l", str(self.log), "-o", options]
        self._run("pg_ctl", *control, "-w", "-t", "30", "start")

    def stop(self) -> None:
        """Stop the server (fast: connections are cut) and keep the data for :meth:`start`."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "30", "stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    def remove(self) -> None:
        try:
            self.stop()
        except RuntimeError:
            pass  # already stopped
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def create_database(self) -> str:
        """A fresh, empty database; its URL."""
        import psycopg  # not at import time: conftest imports this module for every test

        name = f"t{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}".encode())
        return self.url(name)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One server for the session (each test takes its own database from it).

    Skipped where PostgreSQL is not installed, failing in CI, like :func:`require_tool`.
    """
    from tests.conftest import free_port, require_tool

    initdb = find_pg_bin("initdb")
    if initdb is None:
        require_tool("initdb")  # skips, or fails in CI
        raise AssertionError("unreachable")
    server = PostgresServer(Path(initdb).parent, free_port())
    try:
        server.start()
        yield server
    finally:
        server.remove()

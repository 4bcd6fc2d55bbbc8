"""A long-running process a benchmark harness starts (proxy.py's proxies and upstream, acme.py's
CAs and DNS server): in its own session, its output in a log file, measured and stopped as one
process tree."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from procfs import process_tree, read_stat, tree_cpu_seconds, tree_rss_kib

__all__ = ["Service", "start"]


@dataclass
class Service:
    """A process the harness started, with its log file (and its port, when known up front)."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    port: int = 0

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def cpu_seconds(self) -> float:
        return tree_cpu_seconds(self.pid)

    def rss_kib(self) -> int:
        return tree_rss_kib(self.pid)

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM to its process group, then SIGKILL to whatever of its tree is left."""
        tree = process_tree(self.pid) if self.alive() else []
        if self.alive():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.pid, signal.SIGKILL)
                self.popen.wait(timeout=timeout)
        for pid in tree[1:]:  # descendants that left the process group
            if read_stat(pid) is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)


def start(
    name: str,
    argv: Sequence[str],
    log: Path,
    *,
    port: int = 0,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> Service:
    """Start ``argv`` in a new session, stdin closed, stdout and stderr appended to ``log``."""
    with log.open("ab") as out:
        popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )
    return Service(name, popen, log, port)

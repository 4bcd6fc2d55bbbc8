"""``tlsgate check`` as a real process, many at once.

Each ``python -m tlsgate`` costs over a second of imports, so a test module starts all of its
invocations concurrently up front and its tests only read the results; and where the exit code of
each target is not the point, one ``--json`` run checks many targets (a list, in argument order).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Hashable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["Run", "run_all", "tlsgate"]

K = TypeVar("K", bound=Hashable)

# Wide enough that the explanation is never wrapped mid-sentence; no colours, no debug tracebacks.
# Bytecode goes to a cache of our own instead of nowhere (PYTHONDONTWRITEBYTECODE) or next to the
# sources: every run would otherwise compile all of tlsgate again.
ENV = {
    k: v
    for k, v in os.environ.items()
    if k not in ("TLSGATE_DEBUG", "FORCE_COLOR", "PYTHONDONTWRITEBYTECODE")
}
ENV.update(
    {
        "COLUMNS": "200",
        "NO_COLOR": "1",
        "TERM": "dumb",
        "PYTHONPYCACHEPREFIX": str(Path(tempfile.gettempdir()) / f"tlsgate-pycache-{os.getuid()}"),
    }
)


@dataclass(frozen=True)
class Run:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def describe(self) -> str:
        """Everything a failing assertion should show."""
        return (
            f"$ tlsgate {' '.join(self.argv)}\nexit {self.returncode} after {self.seconds:.2f} s\n"
            f"--- stdout\n{self.stdout}--- stderr\n{self.stderr}"
        )

    def json(self) -> Any:
        try:
            return json.loads(self.stdout)
        except ValueError as exc:
            raise AssertionError(f"--json does not parse ({exc}):\n{self.describe()}") from None

    def report(self) -> dict[str, Any]:
        """The one JSON object ``--json`` prints for a single target."""
        data = self.json()
        assert isinstance(data, dict), self.describe()
        return data

    def reports(self, count: int) -> list[dict[str, Any]]:
        """The JSON list ``--json`` prints for several targets, in the order they were given."""
        data = self.json()
        assert isinstance(data, list) and len(data) == count, self.describe()
        assert all(isinstance(r, dict) for r in data), self.describe()
        return data

    def assert_no_traceback(self) -> None:
        for bad in ("Traceback", "internal error"):
            assert bad not in self.output, self.describe()


def tlsgate(*argv: str, timeout: float = 60) -> Run:
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "tlsgate", *argv],
        capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, env=ENV,
    )  # fmt: skip
    return Run(tuple(argv), proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start)


def run_all(jobs: Mapping[K, Sequence[str]], *, timeout: float = 60) -> dict[K, Run]:
    """Run every ``tlsgate`` command line in ``jobs`` concurrently; results under the same keys."""
    workers = max(4, 2 * (os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {key: pool.submit(tlsgate, *argv, timeout=timeout) for key, argv in jobs.items()}
        return {key: future.result() for key, future in futures.items()}

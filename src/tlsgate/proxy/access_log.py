"""The access log: one JSON line per request (per connection for TCP sites).

One line for every response the edge sends, its own refusals and timeouts included, and for
every request cut short (the client gone, 499); none for a keep-alive connection that only
idles out between requests, which is not a request. Values from the client (method, target,
host) are JSON strings: control characters, DEL and non-ASCII bytes are escaped (``\u0001``),
so no input can break a line or reach a terminal raw.

Lines are written in whole-line batches of at most 4 KiB, one ``write()`` each on an
``O_APPEND`` descriptor (which Linux appends whole, and 4 KiB is within ``PIPE_BUF`` for a pipe
to stdout), so several workers sharing one file never interleave a line. A batch goes out when
it passes 3 KiB or half a second after its first line.

Both classes exist twice with one interface: here (the reference, and the fallback) and compiled
in ``_fast.pyx``, which writes the same bytes per line straight into one buffer; the module
exports the compiled ones unless :mod:`tlsgate.compiled` says pure (``PureAccessLog`` and
``PureAccessRecord`` stay these, for the differential tests).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from tlsgate.compiled import compiled_module

__all__ = ["AccessLog", "AccessRecord", "PureAccessLog", "PureAccessRecord"]


@dataclass(slots=True)
class AccessRecord:
    """One access-log line: one per request the edge answered or cut short (per connection
    for TCP sites). ``method`` and ``target`` are None for a request refused before its request
    line was read whole; ``error`` says in words why the edge answered it itself."""

    client: str
    method: str | None
    target: str | None
    host: str
    status: int
    bytes_sent: int
    upstream: str
    duration: float
    error: str = ""
    site: str = ""


class AccessLog:
    """JSON lines, written in whole-line batches so several workers never interleave a line.

    ``clock`` (seconds since the epoch, ``time.time``'s) is for tests.
    """

    def __init__(self, target: str, *, clock: Callable[[], float] = time.time) -> None:
        self.fd: int | None
        if target == "off":
            self.fd = None
        elif target == "stdout":
            self.fd = sys.stdout.fileno()
        else:
            self.fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        self._lines: list[bytes] = []
        self._size = 0
        self._handle: asyncio.TimerHandle | None = None
        self._clock = clock

    def __call__(self, record: AccessRecord) -> None:
        if self.fd is None:
            return
        line = (
            json.dumps(
                {
                    "time": datetime.fromtimestamp(self._clock(), UTC).isoformat(
                        timespec="milliseconds"
                    ),
                    "client": record.client,
                    "method": record.method,
                    "target": record.target[:2048] if record.target is not None else None,
                    "host": record.host,
                    "status": record.status,
                    "bytes": record.bytes_sent,
                    "upstream": record.upstream,
                    "duration_ms": round(record.duration * 1000, 3),
                    **({"error": record.error} if record.error else {}),
                },
                separators=(",", ":"),
            )
            .encode()
            .replace(b"\x7f", b"\\u007f")  # (the one control character JSON leaves raw)
            + b"\n"
        )
        self._lines.append(line)
        self._size += len(line)
        if self._size > 3072:
            self.flush()
        elif self._handle is None:
            self._handle = asyncio.get_running_loop().call_later(0.5, self.flush)

    def flush(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self.fd is None or not self._lines:
            return
        batch: list[bytes] = []
        size = 0
        for line in self._lines:
            if size + len(line) > 4096 and batch:
                self._write(b"".join(batch))
                batch = []
                size = 0
            batch.append(line)
            size += len(line)
        if batch:
            self._write(b"".join(batch))
        self._lines.clear()
        self._size = 0

    def _write(self, data: bytes) -> None:
        assert self.fd is not None
        try:
            os.write(self.fd, data)
        except OSError:
            pass  # a closed stdout must not stop the proxy


PureAccessLog = AccessLog
PureAccessRecord = AccessRecord
if not TYPE_CHECKING and (_fast := compiled_module("tlsgate.proxy._fast")) is not None:
    AccessLog = _fast.AccessLog
    AccessRecord = _fast.AccessRecord

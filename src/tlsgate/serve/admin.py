"""The admin listener: ``GET /metrics`` (Prometheus) and ``GET /healthz``, nothing else.

Apart from :mod:`tlsgate.serve.metrics`, which only counts and renders: this is the tiny HTTP
server (the framing of :class:`~tlsgate.serve.responder.Responder`) that the master alone runs
on ``admin_listen``, where workers' counters are summed on scrape.
"""

from __future__ import annotations

from tlsgate.http import Request
from tlsgate.serve.metrics import Metrics
from tlsgate.serve.responder import Responder

__all__ = ["AdminProtocol"]


class AdminProtocol(Responder):
    """``GET /metrics`` and ``GET /healthz`` on the admin listener; nothing else."""

    def __init__(self, metrics: Metrics) -> None:
        super().__init__()
        self.metrics = metrics

    def respond(self, request: Request, body_bytes: int) -> tuple[int, bytes, bytes]:
        path = request.target.partition(b"?")[0]
        if path == b"/metrics":
            return 200, b"text/plain; version=0.0.4; charset=utf-8", self.metrics.render()
        if path == b"/healthz":
            return 200, b"text/plain", b"ok\n"
        return 404, b"text/plain", b"not found\n"

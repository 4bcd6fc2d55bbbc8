"""Prometheus metrics for the edge, served on the admin listener at ``/metrics``.

Names follow the conventions of the tools people already alert with (Envoy's
``days_until_first_cert_expiring``, Traefik's ``tls_certs_not_after``, blackbox_exporter): the
expiry of every served certificate is a timestamp gauge so one alert rule
(``tlsgate_cert_not_after_timestamp_seconds - time() < 14 * 86400``) covers every site.

With several workers each process counts in its own memory-mapped file
(``prometheus_client``'s multiprocess mode) and the master sums them on scrape; the directory
must be chosen before ``prometheus_client`` is imported, hence :func:`prepare_multiprocess`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from typing import Any

from tlsgate.proxy.http import Request
from tlsgate.proxy.responder import Responder

__all__ = ["AdminProtocol", "Metrics", "prepare_multiprocess"]

_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_multiprocess() -> str:
    """Pick the shared directory for worker metrics; call before anything imports the client."""
    directory = os.environ.get(_ENV) or tempfile.mkdtemp(prefix="tlsgate-metrics-")
    os.environ[_ENV] = directory
    return directory


class Metrics:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.multiprocess = bool(os.environ.get(_ENV))
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "tlsgate_requests",
            "Requests answered, by site and status class.",
            ["site", "code"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "tlsgate_request_duration_seconds",
            "Time from the request head to the end of the response.",
            ["site"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.upstream_errors = Counter(
            "tlsgate_upstream_errors",
            "Upstream failures: connect, timeout, protocol.",
            ["upstream", "kind"],
            registry=self.registry,
        )
        self.connections = Counter(
            "tlsgate_tls_connections",
            "Client connections that completed a TLS handshake.",
            registry=self.registry,
        )
        gauge_mode: Any = {"multiprocess_mode": "max"} if self.multiprocess else {}
        self.cert_not_after = Gauge(
            "tlsgate_cert_not_after_timestamp_seconds",
            "notAfter of each certificate being served.",
            ["site", "serial", "issuer"],
            registry=self.registry,
            **gauge_mode,
        )
        self._children: dict[tuple[str, int], tuple[Any, Any]] = {}

    def observe(self, site: str, status: int, seconds: float) -> None:
        # Once per request: the label lookups (a lock and a dict each) are done once per series.
        key = (site, status // 100)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                self.requests.labels(site, f"{status // 100}xx"),
                self.duration.labels(site),
            )
        children[0].inc()
        children[1].observe(seconds)

    def certificates(self, certs: Iterable[tuple[str, int, str, float]]) -> None:
        """(site, serial, issuer, not_after epoch) for every certificate now served."""
        self.cert_not_after.clear()
        for site, serial, issuer, not_after in certs:
            self.cert_not_after.labels(site, f"{serial:X}", issuer).set(not_after)

    def render(self) -> bytes:
        from prometheus_client import CollectorRegistry, generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector

        if self.multiprocess:
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)


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

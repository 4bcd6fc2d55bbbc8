"""Prometheus metrics for the edge, served on the admin listener (:mod:`tlsgate.serve.admin`) at
``/metrics``.

Names follow the conventions of the tools people already alert with (Envoy's
``days_until_first_cert_expiring``, Traefik's ``tls_certs_not_after``, blackbox_exporter): the
expiry of every served certificate is a timestamp gauge, and the same metrics with the same labels
(``target``, ``subject``, ``serial``, ``issuer``) as ``tlsgate monitor`` exports for the endpoints
it watches, so one alert rule (``tlsgate_cert_expires_in_seconds < 14 * 86400``) covers both.

Requests are not counted here: a connection adds to the data plane's plain counts
(:mod:`tlsgate.proxy.request_counts`, in C on the compiled path), and :meth:`Metrics.fold` moves
what accumulated into the Prometheus series, when ``/metrics`` is rendered (one process) or
every second (:func:`fold_loop`, in each worker). With several workers each process folds into
its own memory-mapped file (``prometheus_client``'s multiprocess mode) and the master sums them
on scrape; the directory must be chosen before the first metric is made, hence
:func:`prepare_multiprocess`.
The certificate and renewal gauges are not counted anywhere: the master knows what is served and
the store knows where renewal stands, so they are read when scraped (:class:`CertificateCollector`)
and ``expires_in`` is exact at that moment rather than as of the last renewal.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from cryptography import x509

from tlsgate.errors import TlsgateError
from tlsgate.pki.serial import format_serial
from tlsgate.proxy.request_counts import DURATION_BUCKETS, RequestCounts

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

__all__ = [
    "CertificateCollector",
    "Metrics",
    "RenewalStatus",
    "ServedCertificate",
    "fold_loop",
    "prepare_multiprocess",
]

#: How often a worker moves its counts into the shared files (how stale a scrape can be).
FOLD_INTERVAL = 1.0

log = logging.getLogger("tlsgate.metrics")

_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_multiprocess() -> str:
    """Pick the shared directory for worker metrics; call before the first metric is made.

    ``prometheus_client`` picks its value class (in memory, or memory-mapped files) from the
    environment when it is imported. The CLI imports every command's module, and one that
    imports the client at module level would leave serve's workers counting in memory the
    master never sees; so the choice is made again here if the client is already loaded.
    """
    directory = os.environ.get(_ENV) or tempfile.mkdtemp(prefix="tlsgate-metrics-")
    os.environ[_ENV] = directory
    if "prometheus_client" in sys.modules:
        from prometheus_client import values

        values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    return directory


@dataclass(frozen=True)
class ServedCertificate:
    """One certificate being served, as the certificate gauges label it."""

    target: str  # the site's name (its first host)
    subject: str  # RFC 4514
    serial: str  # :func:`~tlsgate.pki.serial.format_serial`, as ``tlsgate monitor`` labels it
    issuer: str  # RFC 4514
    not_after: float  # epoch seconds

    @classmethod
    def of(cls, target: str, leaf: x509.Certificate) -> ServedCertificate:
        return cls(
            target,
            leaf.subject.rfc4514_string(),
            format_serial(leaf.serial_number),
            leaf.issuer.rfc4514_string(),
            leaf.not_valid_after_utc.timestamp(),
        )


@dataclass(frozen=True)
class RenewalStatus:
    """Where the automatic renewal of one site's certificate stands."""

    target: str
    failures: int  # consecutive failed attempts
    next_attempt: datetime | None


_CERT_LABELS = ("target", "subject", "serial", "issuer")


class CertificateCollector:
    """The certificate and renewal gauges, computed when scraped (in the master only)."""

    def __init__(
        self,
        renewals: Callable[[], Iterable[RenewalStatus]] | None = None,
        store_up: Callable[[], bool] | None = None,
    ) -> None:
        self.certificates: tuple[ServedCertificate, ...] = ()
        self.renewals = renewals
        self.store_up = store_up

    def describe(self) -> Iterator[Metric]:
        """The families without samples: registering must not read the store."""
        return self._families(with_samples=False)

    def collect(self) -> Iterator[Metric]:
        return self._families(with_samples=True)

    def _families(self, *, with_samples: bool) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        not_after = GaugeMetricFamily(
            "tlsgate_cert_not_after_timestamp_seconds",
            "notAfter of each certificate being served.",
            labels=_CERT_LABELS,
        )
        expires_in = GaugeMetricFamily(
            "tlsgate_cert_expires_in_seconds",
            "Seconds until each certificate being served expires (negative once expired).",
            labels=_CERT_LABELS,
        )
        if with_samples:
            now = time.time()
            for cert in self.certificates:
                labels = [cert.target, cert.subject, cert.serial, cert.issuer]
                not_after.add_metric(labels, cert.not_after)
                expires_in.add_metric(labels, cert.not_after - now)
        yield not_after
        yield expires_in
        if self.store_up is not None:
            up = GaugeMetricFamily(
                "tlsgate_store_up",
                "1 while the state store answers, 0 during an outage (certificates keep being "
                "served; renewals and pick-up of other nodes' certificates wait).",
            )
            if with_samples:
                up.add_metric([], 1.0 if self.store_up() else 0.0)
            yield up
        if self.renewals is None:
            return
        failures = GaugeMetricFamily(
            "tlsgate_cert_renewal_failures",
            "Consecutive failed renewal attempts of each automatically renewed certificate.",
            labels=["target"],
        )
        next_renewal = GaugeMetricFamily(
            "tlsgate_cert_next_renewal_timestamp_seconds",
            "When the renewal loop next tries to renew each certificate.",
            labels=["target"],
        )
        if with_samples:
            try:
                statuses = list(self.renewals())
            except TlsgateError as exc:
                # A store that is briefly unreadable must not cost the scrape its other metrics.
                log.warning("metrics: cannot read the renewal states: %s", exc)
                statuses = []
            for status in statuses:
                failures.add_metric([status.target], status.failures)
                if status.next_attempt is not None:
                    next_renewal.add_metric([status.target], status.next_attempt.timestamp())
        yield failures
        yield next_renewal


class Metrics:
    def __init__(
        self,
        renewals: Callable[[], Iterable[RenewalStatus]] | None = None,
        store_up: Callable[[], bool] | None = None,
    ) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

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
            buckets=DURATION_BUCKETS,
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
        self.certs = CertificateCollector(renewals, store_up)
        if not self.multiprocess:
            self.registry.register(self.certs)
        #: What the edge's connections count into (their EdgeMetrics); see :meth:`fold`.
        self.counts = RequestCounts()

    def fold(self) -> None:
        """Move what the data plane counted since the last fold into the Prometheus series."""
        delta = self.counts.drain()
        for site, counts in delta.sites.items():
            for code, n in enumerate(counts.classes):
                if n:
                    self.requests.labels(site, f"{code}xx").inc(n)
            if any(counts.buckets):
                add_observations(self.duration.labels(site), counts.buckets, counts.seconds)
        if delta.connections:
            self.connections.inc(delta.connections)
        for (upstream, kind), n in delta.upstream_errors.items():
            self.upstream_errors.labels(upstream, kind).inc(n)

    def certificates(self, certs: Iterable[ServedCertificate]) -> None:
        """Every certificate now served (replacing the previous list)."""
        self.certs.certificates = tuple(certs)

    def render(self) -> bytes:
        from prometheus_client import CollectorRegistry, generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector

        self.fold()
        if self.multiprocess:
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            registry.register(self.certs)
            return generate_latest(registry)
        return generate_latest(self.registry)


def add_observations(histogram: Any, buckets: list[int], seconds: float) -> None:
    """Add a batch of observations to one labelled ``prometheus_client`` histogram: ``buckets``
    holds how many fell in each bucket (not cumulative, +Inf last), ``seconds`` their sum.

    ``Histogram`` has no public call for more than one observation, and replaying them one by
    one would cost what counting in the data plane saves. Its ``observe`` adds 1 to the first
    bucket whose bound holds the amount and the amount to ``_sum``; this adds the same counts to
    the same values (memory or the multiprocess files alike). tests/serve/test_metrics_fold.py
    checks the result against ``observe`` itself, so a change of those internals fails there.
    """
    values = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if values is None or total is None or len(values) != len(buckets):
        raise TlsgateError(
            "this prometheus_client's Histogram does not keep _buckets and _sum as tlsgate "
            "expects; request durations cannot be exported"
        )
    for value, n in zip(values, buckets, strict=True):
        if n:
            value.inc(n)
    total.inc(seconds)


async def fold_loop(metrics: Metrics, interval: float = FOLD_INTERVAL) -> None:
    """In a worker: fold its counts every ``interval`` seconds, and once more when cancelled
    (a worker that stops leaves nothing uncounted)."""
    try:
        while True:
            await asyncio.sleep(interval)
            metrics.fold()
    finally:
        metrics.fold()

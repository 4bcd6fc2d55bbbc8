"""Prometheus metrics for ``tlsgate monitor``, computed from the last round at scrape time.

A custom collector rather than gauges set after each round: ``tlsgate_cert_expires_in_seconds``
is "not after minus now", and computing it at scrape keeps it counting down between rounds (a
five-minute interval would otherwise make it jump). It also means a target or certificate that
is gone from the latest round is gone from the scrape, with no stale series left behind.

Per certificate in each target's presented chain (leaf and intermediates, as the server sent
them), labelled ``target``, ``subject``, ``serial``, ``issuer`` (serial as upper-case hex like
``openssl x509 -serial``, names as RFC 4514 strings), the same way x509-certificate-exporter does:

- ``tlsgate_cert_not_after_timestamp_seconds``
- ``tlsgate_cert_expires_in_seconds`` (negative once expired)

Per target (label ``target``):

- ``tlsgate_check_success``: 1 when the check obtained a chain and the verdict is not CRITICAL.
  An expired or untrusted certificate is a failed check, as blackbox_exporter's
  ``probe_success`` says 0 when verification fails; the verdict tells the two apart.
- ``tlsgate_check_verdict``: 0 OK, 1 WARNING, 2 CRITICAL (the exit code of ``--once``)
- ``tlsgate_check_duration_seconds``
- ``tlsgate_chain_not_after_timestamp_seconds``: the earliest notAfter on the verified path (the
  presented chain when none verified): an intermediate expiring before the leaf breaks the site
  while every leaf-only alert stays quiet. Absent when no chain was obtained.

For the monitor itself: ``tlsgate_monitor_targets``, ``tlsgate_monitor_concurrency``,
``tlsgate_monitor_round_peak_in_flight``, ``tlsgate_monitor_round_duration_seconds`` and
``tlsgate_monitor_last_round_timestamp_seconds`` (alert when it stops moving).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from tlsgate.inspect import Report, Severity
from tlsgate.monitor.rounds import RoundResult
from tlsgate.pki.serial import format_serial

__all__ = ["MonitorCollector", "new_registry", "render"]

_CERT_LABELS = ["target", "subject", "serial", "issuer"]


class MonitorCollector(Collector):
    """Reads the latest :class:`RoundResult` on every scrape; ``update`` swaps it in."""

    def __init__(
        self, targets: int, concurrency: int, clock: Callable[[], float] = time.time
    ) -> None:
        self.targets = targets
        self.concurrency = concurrency
        self.result: RoundResult | None = None
        self._clock = clock

    def update(self, result: RoundResult) -> None:
        # One reference swap: a scrape sees the old round or the new one, never half of each.
        self.result = result

    def collect(self) -> Iterable[GaugeMetricFamily]:
        now = self._clock()
        yield _gauge("tlsgate_monitor_targets", "Targets configured.", self.targets)
        yield _gauge("tlsgate_monitor_concurrency", "Checks allowed in flight.", self.concurrency)
        result = self.result
        if result is None:
            return  # before the first round: no verdicts to report yet, not "all failed"
        yield _gauge(
            "tlsgate_monitor_round_duration_seconds",
            "How long the last complete round took.",
            result.duration,
        )
        yield _gauge(
            "tlsgate_monitor_round_peak_in_flight",
            "The most checks in flight at once during the last round.",
            result.peak_in_flight,
        )
        yield _gauge(
            "tlsgate_monitor_last_round_timestamp_seconds",
            "When the last complete round started (Unix time).",
            result.started_at.timestamp(),
        )
        yield from _per_target(result.reports)
        yield from _per_certificate(result.reports, now)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _per_target(reports: Iterable[Report]) -> Iterable[GaugeMetricFamily]:
    success = GaugeMetricFamily(
        "tlsgate_check_success",
        "1 if the check obtained a chain and its verdict is not CRITICAL.",
        labels=["target"],
    )
    verdict = GaugeMetricFamily(
        "tlsgate_check_verdict", "0 OK, 1 WARNING, 2 CRITICAL.", labels=["target"]
    )
    duration = GaugeMetricFamily(
        "tlsgate_check_duration_seconds", "How long the check took.", labels=["target"]
    )
    chain = GaugeMetricFamily(
        "tlsgate_chain_not_after_timestamp_seconds",
        "Earliest notAfter on the verified path (else the presented chain), Unix time.",
        labels=["target"],
    )
    for report in reports:
        labels = [report.target]
        ok = report.reachable and report.severity is not Severity.CRITICAL
        success.add_metric(labels, 1.0 if ok else 0.0)
        verdict.add_metric(labels, float(report.severity))
        duration.add_metric(labels, report.duration)
        if report.chain_not_after is not None:
            chain.add_metric(labels, report.chain_not_after.timestamp())
    return (success, verdict, duration, chain)


def _per_certificate(reports: Iterable[Report], now: float) -> Iterable[GaugeMetricFamily]:
    not_after = GaugeMetricFamily(
        "tlsgate_cert_not_after_timestamp_seconds",
        "notAfter of each certificate a target presented, Unix time.",
        labels=_CERT_LABELS,
    )
    expires_in = GaugeMetricFamily(
        "tlsgate_cert_expires_in_seconds",
        "Seconds until each presented certificate expires (negative: expired).",
        labels=_CERT_LABELS,
    )
    for report in reports:
        seen: set[tuple[str, str, str]] = set()
        for cert in report.chain:
            serial = format_serial(cert.serial_number)
            subject, issuer = cert.subject.rfc4514_string(), cert.issuer.rfc4514_string()
            if (subject, serial, issuer) in seen:
                continue  # a server that sends one certificate twice: one series, not a clash
            seen.add((subject, serial, issuer))
            labels = [report.target, subject, serial, issuer]
            timestamp = cert.not_valid_after_utc.timestamp()
            not_after.add_metric(labels, timestamp)
            expires_in.add_metric(labels, timestamp - now)
    return (not_after, expires_in)


def new_registry(collector: MonitorCollector) -> CollectorRegistry:
    """A registry of our own: the process-wide default would add Python and process metrics
    that every scrape of a thousand targets does not need (and tests would share)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The text exposition format (version 0.0.4) every Prometheus scrapes."""
    return generate_latest(registry)

"""The certificate gauges are computed when scraped, and a broken store costs only its own."""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tlsgate.errors import StorageError
from tlsgate.pki.keys import generate_key
from tlsgate.pki.profiles import build_root
from tlsgate.pki.serial import format_serial
from tlsgate.serve.metrics import Metrics, RenewalStatus, ServedCertificate


def samples(metrics: Metrics) -> dict[str, list[tuple[dict[str, str], float]]]:
    text = metrics.render().decode()
    return {
        f.name: [(s.labels, s.value) for s in f.samples]
        for f in text_string_to_metric_families(text)
        if f.name.startswith("tlsgate_cert_")
    }


def test_served_certificate_labels_come_from_the_certificate() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    key = generate_key()
    root = build_root(key, "Example Root", now=now)
    served = ServedCertificate.of("site.example", root)
    assert served.target == "site.example"
    assert served.subject == served.issuer == root.subject.rfc4514_string()
    assert served.serial == format_serial(root.serial_number)
    assert served.not_after == root.not_valid_after_utc.timestamp()


def test_expiry_is_computed_at_scrape_time() -> None:
    metrics = Metrics()
    not_after = time.time() + 3600
    metrics.certificates([ServedCertificate("a", "CN=a", "0A", "CN=ca", not_after)])
    before = time.time()
    got = samples(metrics)
    labels = {"target": "a", "subject": "CN=a", "serial": "0A", "issuer": "CN=ca"}
    assert got["tlsgate_cert_not_after_timestamp_seconds"] == [(labels, not_after)]
    [(expiry_labels, expires_in)] = got["tlsgate_cert_expires_in_seconds"]
    assert expiry_labels == labels
    assert not_after - time.time() <= expires_in <= not_after - before
    # Without a renewer (only file pairs, or a worker's Metrics) there are no renewal gauges.
    assert "tlsgate_cert_renewal_failures" not in got
    metrics.certificates([])  # the list is replaced, not merged
    assert samples(metrics)["tlsgate_cert_expires_in_seconds"] == []


def test_renewal_gauges_read_the_store_on_each_scrape(caplog: pytest.LogCaptureFixture) -> None:
    due = datetime(2030, 1, 1, tzinfo=UTC)
    states: list[RenewalStatus] = [RenewalStatus("a", 0, due)]
    broken = False

    def renewals() -> Iterable[RenewalStatus]:
        if broken:
            raise StorageError("cannot read the state database: database is locked")
        return states

    metrics = Metrics(renewals=renewals)
    metrics.certificates([ServedCertificate("a", "CN=a", "0A", "CN=ca", due.timestamp())])
    got = samples(metrics)
    assert got["tlsgate_cert_renewal_failures"] == [({"target": "a"}, 0.0)]
    assert got["tlsgate_cert_next_renewal_timestamp_seconds"] == [
        ({"target": "a"}, due.timestamp())
    ]
    states[:] = [RenewalStatus("a", 3, None)]  # failing, not scheduled
    got = samples(metrics)
    assert got["tlsgate_cert_renewal_failures"] == [({"target": "a"}, 3.0)]
    assert got["tlsgate_cert_next_renewal_timestamp_seconds"] == []
    broken = True
    got = samples(metrics)
    assert got["tlsgate_cert_renewal_failures"] == []
    assert len(got["tlsgate_cert_expires_in_seconds"]) == 1  # the rest of the scrape survives
    assert "database is locked" in caplog.text

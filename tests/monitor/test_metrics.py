"""The /metrics text: what a Prometheus scrape of it parses back to."""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client.parser import text_string_to_metric_families

from tests.monitor.conftest import MakeReport
from tlsgate.inspect import Code, Report, Severity
from tlsgate.monitor.metrics import MonitorCollector, new_registry, render
from tlsgate.monitor.rounds import RoundResult
from tlsgate.pki.serial import format_serial

Samples = dict[str, list[tuple[dict[str, str], float]]]


def scrape(collector: MonitorCollector) -> Samples:
    text = render(new_registry(collector)).decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def result(reports: list[Report]) -> RoundResult:
    return RoundResult(
        reports=tuple(reports),
        started_at=datetime(2030, 1, 1, tzinfo=UTC),
        duration=1.5,
        targets=len(reports),
        concurrency=10,
        peak_in_flight=7,
    )


def by_target(samples: Samples, name: str) -> dict[str, float]:
    return {labels["target"]: value for labels, value in samples[name]}


def test_before_the_first_round_only_the_monitor_itself() -> None:
    samples = scrape(MonitorCollector(targets=3, concurrency=10))
    assert samples == {
        "tlsgate_monitor_targets": [({}, 3.0)],
        "tlsgate_monitor_concurrency": [({}, 10.0)],
    }


def test_per_target_and_per_certificate(report: MakeReport) -> None:
    ok = report("ok", days=90)
    soon = report("soon", Severity.WARNING, (Code.EXPIRES_SOON,), days=10)
    bad = report("bad", Severity.CRITICAL, (Code.HOSTNAME_MISMATCH,))
    down = report("down", Severity.CRITICAL, (Code.UNREACHABLE,), reachable=False)
    clock = [datetime(2030, 1, 1, tzinfo=UTC).timestamp()]
    collector = MonitorCollector(targets=4, concurrency=10, clock=lambda: clock[0])
    collector.update(result([ok, soon, bad, down]))
    samples = scrape(collector)

    assert by_target(samples, "tlsgate_check_success") == {
        "ok": 1,
        "soon": 1,  # a warning is still a working check
        "bad": 0,
        "down": 0,
    }
    assert by_target(samples, "tlsgate_check_verdict") == {"ok": 0, "soon": 1, "bad": 2, "down": 2}
    assert by_target(samples, "tlsgate_check_duration_seconds") == dict.fromkeys(
        ("ok", "soon", "bad", "down"), 0.25
    )
    chain = by_target(samples, "tlsgate_chain_not_after_timestamp_seconds")
    assert set(chain) == {"ok", "soon", "bad"}  # nothing to say for a target that gave no chain
    assert soon.chain_not_after is not None
    assert chain["soon"] == soon.chain_not_after.timestamp()
    assert samples["tlsgate_monitor_round_peak_in_flight"] == [({}, 7.0)]
    assert samples["tlsgate_monitor_round_duration_seconds"] == [({}, 1.5)]
    assert samples["tlsgate_monitor_last_round_timestamp_seconds"] == [
        ({}, datetime(2030, 1, 1, tzinfo=UTC).timestamp())
    ]

    not_after = samples["tlsgate_cert_not_after_timestamp_seconds"]
    assert len(not_after) == 6  # leaf and intermediate of the three with a chain
    leaf = soon.chain[0]
    labels = {
        "target": "soon",
        "subject": leaf.subject.rfc4514_string(),
        "serial": format_serial(leaf.serial_number),
        "issuer": leaf.issuer.rfc4514_string(),
    }
    assert (labels, leaf.not_valid_after_utc.timestamp()) in not_after
    assert labels["serial"] == labels["serial"].upper()
    expires = dict(
        (tuple(sorted(lab.items())), v) for lab, v in samples["tlsgate_cert_expires_in_seconds"]
    )
    key = tuple(sorted(labels.items()))
    assert expires[key] == leaf.not_valid_after_utc.timestamp() - clock[0]

    # Computed at scrape time: it counts down between rounds without a new round.
    clock[0] += 3600
    later = scrape(collector)["tlsgate_cert_expires_in_seconds"]
    later_by_key = {tuple(sorted(lab.items())): v for lab, v in later}
    assert later_by_key[key] == expires[key] - 3600


def test_a_certificate_sent_twice_is_one_series(report: MakeReport) -> None:
    r = report("dup")
    twice = r.replace(chain=(r.chain[0], r.chain[0], r.chain[1]))
    collector = MonitorCollector(targets=1, concurrency=1)
    collector.update(result([twice]))
    assert len(scrape(collector)["tlsgate_cert_not_after_timestamp_seconds"]) == 2


def test_label_values_are_escaped(report: MakeReport) -> None:
    r = report("x").replace(target='we"ird\\name\nhere')
    collector = MonitorCollector(targets=1, concurrency=1)
    collector.update(result([r]))
    assert by_target(scrape(collector), "tlsgate_check_success") == {'we"ird\\name\nhere': 1}

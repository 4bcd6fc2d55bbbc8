"""Requests counted by the data plane reach the Prometheus series exactly as if each had been
observed there: the same counters, the same histogram buckets and sum."""

from __future__ import annotations

import asyncio
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tlsgate.errors import TlsgateError
from tlsgate.proxy.request_counts import DURATION_BUCKETS
from tlsgate.serve.metrics import Metrics, add_observations, fold_loop


def series(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The request, duration, connection and upstream-error samples, without timestamps."""
    out = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        if family.name.startswith(("tlsgate_request", "tlsgate_tls", "tlsgate_upstream")):
            for s in family.samples:
                if not s.name.endswith("_created"):
                    out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def histogram_text(observations: list[float], batched: bool) -> str:
    registry = CollectorRegistry()
    hist = Histogram("h", "h", ["site"], buckets=DURATION_BUCKETS, registry=registry)
    child = hist.labels("s")
    if batched:
        buckets = [0] * (len(DURATION_BUCKETS) + 1)
        for x in observations:
            for i, bound in enumerate((*DURATION_BUCKETS, math.inf)):
                if x <= bound:
                    buckets[i] += 1
                    break
        add_observations(child, buckets, math.fsum(observations))
    else:
        for x in observations:
            child.observe(x)
    lines = generate_latest(registry).decode().splitlines()
    return "\n".join(line for line in lines if "_created" not in line and "_sum" not in line)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(DURATION_BUCKETS) | st.floats(0, 30), max_size=40))
def test_a_batch_adds_what_observe_would(observations: list[float]) -> None:
    assert histogram_text(observations, batched=True) == histogram_text(observations, False)


def test_a_histogram_without_those_internals_is_a_clear_error() -> None:
    with pytest.raises(TlsgateError, match="_buckets and _sum"):
        add_observations(object(), [0] * (len(DURATION_BUCKETS) + 1), 0.0)


def test_render_folds_what_the_edge_counted() -> None:
    metrics = Metrics()
    counts = metrics.counts
    counts.observe("localhost", 200, 0.002)
    counts.observe("localhost", 200, 0.5)
    counts.observe("localhost", 502, 3.0)
    counts.observe("-", 404, 0.0001)
    counts.connected()
    counts.upstream_failed("http://127.0.0.1:9", "unavailable")
    got = series(metrics)
    site = (("site", "localhost"),)
    assert got[("tlsgate_requests_total", (("code", "2xx"), *site))] == 2
    assert got[("tlsgate_requests_total", (("code", "5xx"), *site))] == 1
    assert got[("tlsgate_requests_total", (("code", "4xx"), ("site", "-")))] == 1
    assert got[("tlsgate_request_duration_seconds_count", site)] == 3
    assert got[("tlsgate_request_duration_seconds_sum", site)] == pytest.approx(3.502)
    assert got[("tlsgate_request_duration_seconds_bucket", (("le", "0.0025"), *site))] == 1
    assert got[("tlsgate_request_duration_seconds_bucket", (("le", "2.5"), *site))] == 2
    assert got[("tlsgate_request_duration_seconds_bucket", (("le", "+Inf"), *site))] == 3
    assert got[("tlsgate_tls_connections_total", ())] == 1
    upstream = (("kind", "unavailable"), ("upstream", "http://127.0.0.1:9"))
    assert got[("tlsgate_upstream_errors_total", upstream)] == 1
    # A second scrape adds nothing that was not counted again.
    counts.observe("localhost", 200, 0.002)
    again = series(metrics)
    assert again[("tlsgate_requests_total", (("code", "2xx"), *site))] == 3
    assert again[("tlsgate_tls_connections_total", ())] == 1


def test_fold_loop_folds_on_its_period_and_when_cancelled() -> None:
    metrics = Metrics()

    async def run() -> None:
        task = asyncio.create_task(fold_loop(metrics, interval=0.01))
        metrics.counts.connected()
        for _ in range(200):
            await asyncio.sleep(0.01)
            if metrics.connections._value.get() == 1:  # folded without a render
                break
        assert metrics.connections._value.get() == 1
        metrics.counts.connected()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert metrics.connections._value.get() == 2

    asyncio.run(run())

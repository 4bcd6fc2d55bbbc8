"""The data plane's request counts, compiled and pure: the same drains for the same calls.

Each example makes the same calls on both (requests of any site, status and duration, NaN and
durations on the buckets' bounds included; connections; upstream failures), draining at random
points; every drain must be equal, and a drain must start the counts again from zero.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tlsgate.proxy import request_counts
from tlsgate.proxy.request_counts import DURATION_BUCKETS, CountsDelta, SiteCounts

fast = pytest.importorskip("tlsgate.proxy._fast", reason="the compiled data plane is not built")

IMPLEMENTATIONS: list[Any] = [
    pytest.param(request_counts.PureRequestCounts, id="pure"),
    pytest.param(fast.RequestCounts, id="compiled"),
]

DURATIONS = (
    st.sampled_from(DURATION_BUCKETS)
    | st.floats(0, 20)
    | st.floats(allow_nan=True, allow_infinity=True, width=64)
)
CALLS = st.lists(
    st.one_of(
        st.tuples(
            st.just("observe"),
            st.sampled_from(["localhost", "-", "a.example", "é.example"]),
            st.integers(-5, 1200),
            DURATIONS,
        ),
        st.tuples(st.just("connected")),
        st.tuples(
            st.just("upstream_failed"),
            st.sampled_from(["http://127.0.0.1:1", "http://[::1]:2"]),
            st.sampled_from(["unavailable", "timeout"]),
        ),
        st.tuples(st.just("drain")),
    ),
    max_size=60,
)


def normalized(delta: CountsDelta) -> Any:
    """NaN sums compare unequal to themselves; compare their text instead."""
    return (
        {s: (c.classes, c.buckets, repr(c.seconds)) for s, c in delta.sites.items()},
        delta.connections,
        delta.upstream_errors,
    )


def replay(make: Any, calls: list[tuple[Any, ...]]) -> list[Any]:
    counts = make()
    drains = []
    for name, *args in calls:
        if name == "drain":
            drains.append(normalized(counts.drain()))
        else:
            getattr(counts, name)(*args)
    drains.append(normalized(counts.drain()))
    drains.append(normalized(counts.drain()))  # nothing is counted twice
    return drains


@settings(max_examples=300, deadline=None)
@given(calls=CALLS)
def test_compiled_and_pure_drain_the_same(calls: list[tuple[Any, ...]]) -> None:
    pure = replay(request_counts.PureRequestCounts, calls)
    assert replay(fast.RequestCounts, calls) == pure
    assert pure[-1] == ({}, 0, {})


@pytest.mark.parametrize("make", IMPLEMENTATIONS)
def test_what_a_drain_holds(make: Any) -> None:
    counts = make()
    counts.observe("localhost", 200, 0.001)  # on a bound: that bound's bucket
    counts.observe("localhost", 204, 0.0011)
    counts.observe("localhost", 503, 99.0)  # beyond every bound: +Inf
    counts.observe("-", 404, 0.0)
    counts.connected()
    counts.connected()
    counts.upstream_failed("http://127.0.0.1:1", "timeout")
    delta = counts.drain()
    buckets = [0] * (len(DURATION_BUCKETS) + 1)
    buckets[0], buckets[1], buckets[-1] = 1, 1, 1
    assert delta.sites["localhost"] == SiteCounts(
        [0, 0, 2, 0, 0, 1, 0, 0, 0, 0], buckets, 0.001 + 0.0011 + 99.0
    )
    assert delta.sites["-"].classes[4] == 1 and delta.sites["-"].buckets[0] == 1
    assert delta.connections == 2
    assert delta.upstream_errors == {("http://127.0.0.1:1", "timeout"): 1}
    assert counts.drain() == CountsDelta()

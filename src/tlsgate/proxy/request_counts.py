"""What the data plane counts per request, kept in the data plane and read when metrics are.

A Prometheus counter and histogram updated per request cost a label lookup, a lock and a few
Python calls each time; at tens of thousands of requests a second that is a measurable share of a
worker. So a connection only adds to plain counts here (in C on the compiled path, see
``_fast_counts.pxi``), and the control plane takes what accumulated (:meth:`drain`) when it
renders ``/metrics``, or every second in a worker whose counts the master must see (see
:mod:`tlsgate.serve.metrics`). Nothing is lost between two drains, and nothing is counted twice.

The interface is :class:`tlsgate.proxy.settings.EdgeMetrics`: ``observe``, ``connected`` and
``upstream_failed``.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tlsgate.compiled import compiled_module

__all__ = ["DURATION_BUCKETS", "CountsDelta", "PureRequestCounts", "RequestCounts", "SiteCounts"]

#: Upper bounds (seconds) of the request-duration histogram's buckets; one more bucket (+Inf)
#: holds what exceeds the last.
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


@dataclass
class SiteCounts:
    """One site's requests since the last drain."""

    #: Requests by status class: index ``status // 100`` (the ``code`` label ``"4xx"`` is
    #: index 4); a status outside 0-999 (none is ever answered) is counted at 0.
    classes: list[int] = field(default_factory=lambda: [0] * 10)
    #: Request durations by bucket, not cumulative: index i for those <= DURATION_BUCKETS[i]
    #: (and above the bound before it), the last for those above every bound.
    buckets: list[int] = field(default_factory=lambda: [0] * (len(DURATION_BUCKETS) + 1))
    seconds: float = 0.0


@dataclass
class CountsDelta:
    """What :meth:`RequestCounts.drain` hands over: the counts since the drain before it."""

    sites: dict[str, SiteCounts] = field(default_factory=dict)
    connections: int = 0
    upstream_errors: dict[tuple[str, str], int] = field(default_factory=dict)


def status_class(status: int) -> int:
    """The index of ``status`` in :attr:`SiteCounts.classes`."""
    return status // 100 if 0 <= status <= 999 else 0


class RequestCounts:
    """Counts since the last :meth:`drain`, in one process."""

    def __init__(self) -> None:
        self._delta = CountsDelta()

    def observe(self, site: str, status: int, seconds: float) -> None:
        counts = self._delta.sites.get(site)
        if counts is None:
            counts = self._delta.sites[site] = SiteCounts()
        counts.classes[status_class(status)] += 1
        # bisect_left: a duration equal to a bound belongs to that bound's bucket (le), as
        # prometheus_client's Histogram.observe files it; NaN, which no bound holds, in none.
        if seconds == seconds:
            counts.buckets[bisect.bisect_left(DURATION_BUCKETS, seconds)] += 1
        counts.seconds += seconds

    def connected(self) -> None:
        self._delta.connections += 1

    def upstream_failed(self, upstream: str, kind: str) -> None:
        key = (upstream, kind)
        self._delta.upstream_errors[key] = self._delta.upstream_errors.get(key, 0) + 1

    def drain(self) -> CountsDelta:
        """Everything counted since the last drain; the counts start again from zero."""
        delta, self._delta = self._delta, CountsDelta()
        return delta


PureRequestCounts = RequestCounts
if not TYPE_CHECKING and (_fast := compiled_module("tlsgate.proxy._fast")) is not None:
    RequestCounts = _fast.RequestCounts

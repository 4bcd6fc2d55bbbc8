"""Rows of samples, pairwise comparisons, and the result of each mode."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

from proxybench.common import SATURATED
from proxybench.measure import Sample
from proxybench.wrk import ShimCheck, Test


@dataclass
class Row:
    """All samples of one (test, proxy) pair."""

    samples: list[Sample] = field(default_factory=list)

    def median(self, value: Callable[[Sample], float]) -> float:
        return statistics.median(value(s) for s in self.samples)

    def spread(self, value: Callable[[Sample], float]) -> tuple[float, float]:
        values = [value(s) for s in self.samples]
        return min(values), max(values)

    @property
    def rate(self) -> float:
        return self.median(lambda s: s.rate)

    @property
    def per_cpu(self) -> float:
        return self.median(lambda s: s.per_cpu)

    @property
    def p99_ms(self) -> float:
        """wrk's 99th percentile latency, median over the rounds."""
        return self.median(lambda s: s.run.p99_ms)

    @property
    def util(self) -> float:
        return self.median(lambda s: s.proxy_util)

    @property
    def upstream_conns(self) -> float | None:
        """Upstream connections the proxy opened per run, median (None: not counted)."""
        counts = [s.upstream_conns for s in self.samples if s.upstream_conns is not None]
        return statistics.median(counts) if counts else None

    @property
    def load(self) -> float:
        return self.median(lambda s: s.load_util)

    @property
    def problems(self) -> list[str]:
        return list(dict.fromkeys(p for s in self.samples for p in s.all_problems))


@dataclass(frozen=True)
class Comparison:
    """One test, both proxies. Their runs alternate within each round, so the ratio is taken
    per round (adjacent runs share the machine's state) and the median of those is reported."""

    test: Test
    reference: Row
    candidate: Row | None

    @property
    def saturated(self) -> bool:
        """Both proxies used (nearly) all of their core: throughput itself can be compared."""
        rows = [self.reference] + ([self.candidate] if self.candidate else [])
        return all(r.util >= SATURATED for r in rows)

    @property
    def basis(self) -> str:
        return "rate" if self.saturated else "per-cpu"

    def round_ratios(self, value: Callable[[Sample], float]) -> list[float]:
        if self.candidate is None:
            return []
        pairs = zip(self.reference.samples, self.candidate.samples, strict=True)
        return [value(c) / value(r) for r, c in pairs if value(r)]

    def _median(self, value: Callable[[Sample], float]) -> float | None:
        ratios = self.round_ratios(value)
        return statistics.median(ratios) if ratios else None

    @property
    def ratio_rate(self) -> float | None:
        return self._median(lambda s: s.rate)

    @property
    def ratio_per_cpu(self) -> float | None:
        return self._median(lambda s: s.per_cpu)

    @property
    def ratio_per_cpu_with_irq(self) -> float | None:
        return self._median(lambda s: s.per_cpu_with_irq)

    def basis_value(self) -> Callable[[Sample], float]:
        return (lambda s: s.rate) if self.saturated else (lambda s: s.per_cpu)

    @property
    def ratio(self) -> float | None:
        return self._median(self.basis_value())

    @property
    def ratio_p99(self) -> float | None:
        """The candidate's p99 latency over the reference's, median of the per-round ratios."""
        return self._median(lambda s: s.run.p99_ms)

    @property
    def ratio_range(self) -> tuple[float, float] | None:
        ratios = self.round_ratios(self.basis_value())
        return (min(ratios), max(ratios)) if ratios else None


@dataclass(frozen=True)
class TestResult:
    """One test, every proxy: ``rows[i]`` holds ``proxies[i]``'s samples, ``rows[0]`` the
    reference nginx's. Each proxy ran back to back with nginx in every round, so any pair of rows
    can be compared round by round."""

    test: Test
    rows: list[Row]

    def versus(self, candidate: int, reference: int = 0) -> Comparison:
        return Comparison(self.test, self.rows[reference], self.rows[candidate])

    @property
    def alone(self) -> Comparison:
        """nginx alone (no proxy under test): a comparison with no candidate."""
        return Comparison(self.test, self.rows[0], None)


@dataclass(frozen=True)
class CompareResult:
    proxies: list[str]
    tests: list[TestResult]
    shim: ShimCheck | None
    #: The index of the built-in Caddy in ``proxies``, if it ran: the others are also compared
    #: with it (the issue asks for a ratio to Caddy).
    caddy: int | None = None

    @property
    def flagged(self) -> list[str]:
        out = [
            f"{label}, {t.test.label}: {problem}"
            for t in self.tests
            for label, row in zip(self.proxies, t.rows, strict=True)
            for problem in row.problems
        ]
        return out + (self.shim.problems() if self.shim else [])


@dataclass(frozen=True)
class ScalingResult:
    proxies: list[str]
    rows: dict[tuple[str, int], Row]

    @property
    def flagged(self) -> list[str]:
        return [
            f"{label}, {workers} worker(s): {problem}"
            for (label, workers), row in self.rows.items()
            for problem in row.problems
        ]


@dataclass(frozen=True)
class IdleResult:
    proxy: str
    connections: int
    opened: int
    alive_after_wait: int
    rss_before_kib: int
    rss_open_kib: int
    rss_closed_kib: int
    seconds_to_open: float
    errors: tuple[str, ...]

    @property
    def kib_per_conn(self) -> float:
        return (self.rss_open_kib - self.rss_before_kib) / self.opened if self.opened else 0.0


@dataclass(frozen=True)
class IdleReport:
    proxies: list[str]
    results: list[IdleResult]

    @property
    def flagged(self) -> list[str]:
        return [
            f"{r.proxy}: {r.opened} of {r.connections} connections opened,"
            f" {r.alive_after_wait} answered after the idle wait"
            + (f" ({'; '.join(r.errors)})" if r.errors else "")
            for r in self.results
            if r.opened < r.connections or r.alive_after_wait < r.opened
        ]


Result = CompareResult | ScalingResult | IdleReport

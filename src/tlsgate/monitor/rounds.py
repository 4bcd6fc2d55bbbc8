"""One round: every target checked once, at most ``concurrency`` at a time.

The bound is a semaphore around each check (connect, handshake, judging); the round counts how
many checks were inside it at once and returns the peak, so the bound is observed rather than
assumed. Trust is loaded once per distinct CA file per round (not once per target: a thousand
targets sharing one bundle read it once) and re-read each round, so a rotated bundle is picked up
without a restart.

A check that cannot run at all (a CA file gone, a store that cannot be read, a bug) becomes a
CRITICAL report for its target instead of ending the round: the monitor's job is to keep
reporting on everything else, and a target it cannot check is itself worth an alert.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from tlsgate.errors import ConfigError, TlsgateError
from tlsgate.inspect import (
    CheckOptions,
    Code,
    Finding,
    Report,
    Severity,
    Trust,
    check_certificates,
    check_endpoint,
    check_file,
    load_trust,
)
from tlsgate.monitor.config import (
    EndpointTarget,
    FileTarget,
    MonitorConfig,
    StoreTarget,
    Target,
)
from tlsgate.monitor.stored import read_store

__all__ = ["Progress", "RoundResult", "check_trusts", "load_trusts", "run_round"]

log = logging.getLogger("tlsgate.monitor")

#: ``progress(done, total)``, called after each target's check.
Progress = Callable[[int, int], None]

#: A check may connect more than once (revocation, --http); past this many timeouts it is hung.
_GUARD_TIMEOUTS = 3


@dataclass(frozen=True)
class RoundResult:
    reports: tuple[Report, ...]  # config order; a store target contributes one per certificate
    started_at: datetime  # wall clock, for "last round" metrics and logs
    duration: float  # seconds
    targets: int  # configured targets checked (a store counts once)
    concurrency: int  # the bound this round ran under
    peak_in_flight: int  # the most checks that ran at once

    @property
    def severity(self) -> Severity:
        return max((r.severity for r in self.reports), default=Severity.OK)


def load_trusts(config: MonitorConfig) -> dict[Path | None, Trust | TlsgateError]:
    """Each distinct trust the targets use, loaded once; a failure is kept for its targets."""
    trusts: dict[Path | None, Trust | TlsgateError] = {}
    for target in config.targets:
        if isinstance(target, StoreTarget):
            continue
        path = config.trust_path(target)
        if path not in trusts:
            try:
                trusts[path] = load_trust(path)
            except TlsgateError as exc:
                trusts[path] = exc
    return trusts


def check_trusts(config: MonitorConfig) -> None:
    """Refuse to start on a CA file that cannot be read: at start-up it is a typo, not news."""
    for path, trust in load_trusts(config).items():
        if isinstance(trust, TlsgateError):
            where = f"ca = {str(path)!r}" if path is not None else "the system store"
            raise ConfigError(f"{config.source}: {where}: {trust}")


def _failed(
    target: str, kind: str, code: Code, message: str, started: float, labels: dict[str, str]
) -> Report:
    return Report(
        target=target,
        kind=kind,
        checked_at=datetime.now(UTC),
        duration=time.monotonic() - started,
        findings=(Finding(Severity.CRITICAL, code, message),),
        labels=labels,
    )


class _Round:
    def __init__(self, config: MonitorConfig, concurrency: int, progress: Progress | None) -> None:
        self.config = config
        self.limit = asyncio.Semaphore(concurrency)
        self.progress = progress
        self.in_flight = 0
        self.peak = 0
        self.done = 0
        self.options: dict[Path | None, CheckOptions | TlsgateError] = {}
        for path, trust in load_trusts(config).items():
            self.options[path] = trust if isinstance(trust, TlsgateError) else self._options(trust)

    def _options(self, trust: Trust) -> CheckOptions:
        c = self.config
        return CheckOptions(
            trust=trust,
            warn_days=c.warn_days,
            critical_days=c.critical_days,
            timeout=c.timeout,
            revocation=c.revocation,
        )

    async def run(self, target: Target) -> list[Report]:
        async with self.limit:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            started = time.monotonic()
            try:
                async with asyncio.timeout(self.config.timeout * _GUARD_TIMEOUTS):
                    reports = await self._check(target)
            except TimeoutError:
                limit = self.config.timeout * _GUARD_TIMEOUTS
                message = f"the check did not finish within {limit:g} s"
                reports = [_failed(target.name, _kind(target), Code.TIMEOUT, message, started, {})]
            except TlsgateError as exc:
                reports = [_failed(target.name, _kind(target), Code.INVALID, str(exc), started, {})]
            except Exception as exc:
                # A bug in a check must not take the other 999 targets down with it.
                log.exception("checking %s failed", target.name)
                message = f"the check itself failed: {type(exc).__name__}: {exc}"
                reports = [_failed(target.name, _kind(target), Code.INVALID, message, started, {})]
            finally:
                self.in_flight -= 1
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, len(self.config.targets))
        return [replace(r, labels={**target.labels, **r.labels}) for r in reports]

    async def _check(self, target: Target) -> list[Report]:
        if isinstance(target, StoreTarget):
            return await asyncio.to_thread(self._check_store, target)
        options = self.options[self.config.trust_path(target)]
        if isinstance(options, TlsgateError):
            raise options
        if isinstance(target, EndpointTarget):
            report = await check_endpoint(target.endpoint, options)
        else:
            assert isinstance(target, FileTarget)
            # File reads and revocation lookups block; the event loop must keep serving.
            report = await asyncio.to_thread(check_file, target.path, options)
        return [replace(report, target=target.name)]

    def _check_store(self, target: StoreTarget) -> list[Report]:
        started = time.monotonic()
        now = datetime.now(UTC)
        trust, chains, problems = read_store(target.path, target.name, now)
        options = self._options(trust)
        reports = [
            check_certificates(c.target, c.chain, options, name=None, kind="store") for c in chains
        ]
        reports += [
            _failed(label, "store", Code.INVALID, why, started, {}) for label, why in problems
        ]
        return reports


def _kind(target: Target) -> str:
    if isinstance(target, EndpointTarget):
        return "endpoint"
    return "file" if isinstance(target, FileTarget) else "store"


async def run_round(
    config: MonitorConfig, *, concurrency: int | None = None, progress: Progress | None = None
) -> RoundResult:
    """Check every target once; the reports come back in config order."""
    limit = concurrency or config.concurrency
    started_at = datetime.now(UTC)
    started = time.monotonic()
    state = _Round(config, limit, progress)
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(state.run(target)) for target in config.targets]
    reports = tuple(report for task in tasks for report in task.result())
    return RoundResult(
        reports=reports,
        started_at=started_at,
        duration=time.monotonic() - started,
        targets=len(config.targets),
        concurrency=limit,
        peak_in_flight=state.peak,
    )

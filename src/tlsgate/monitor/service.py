"""The long-running monitor: a round every ``interval``, metrics over HTTP, a clean stop.

Rounds run one after another in a single task, so a round never overlaps the previous one: when
a round takes longer than the interval the next starts right after it (and the log says so),
rather than piling up checks against the same servers. The interval is measured from start to
start so the schedule does not drift by each round's duration.

SIGTERM and SIGINT stop the loop at once, cancelling a round in progress (its half-done results
are dropped; a monitor being stopped has nobody to report them to) and closing the listener.

``/healthz`` answers 200 while rounds complete on schedule, and 503 once the last complete round
is older than two intervals plus the guard time of a check (the loop is stuck or the checks
hang), so a supervisor can restart what the metrics alone would show as merely frozen.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import time
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from tlsgate.errors import ConfigError
from tlsgate.monitor.alerts import AlertSink, TargetState, transitions
from tlsgate.monitor.config import MonitorConfig
from tlsgate.monitor.metrics import MonitorCollector, new_registry, render
from tlsgate.monitor.rounds import RoundResult, run_round
from tlsgate.plural import count

__all__ = ["Monitor", "serve_monitor"]

log = logging.getLogger("tlsgate.monitor")


class Monitor:
    """Rounds, alert state and metrics; the HTTP side and signals are :func:`serve_monitor`'s."""

    def __init__(self, config: MonitorConfig, *, concurrency: int | None = None) -> None:
        self.config = config
        self.concurrency = concurrency or config.concurrency
        self.collector = MonitorCollector(len(config.targets), self.concurrency)
        self.registry = new_registry(self.collector)
        self.sink = AlertSink(config.webhook, config.webhook_timeout)
        self.states: dict[str, TargetState] = {}
        self.rounds = 0
        self.last_completed: float | None = None  # monotonic
        self.started = time.monotonic()

    async def round(self) -> RoundResult:
        result = await run_round(self.config, concurrency=self.concurrency)
        self.collector.update(result)
        self.rounds += 1
        self.last_completed = time.monotonic()
        alerts, self.states = transitions(self.states, result.reports)
        counts = {s: 0 for s in ("ok", "warning", "critical")}
        for report in result.reports:
            counts[report.severity.label] += 1
        log.info(
            "round %d: %s in %.1f s (at most %d at once): %d ok, %d warning, %d critical",
            self.rounds,
            count(len(result.reports), "check"),
            result.duration,
            result.peak_in_flight,
            counts["ok"],
            counts["warning"],
            counts["critical"],
        )
        await self.sink.deliver(alerts)
        return result

    async def run(self, stop: asyncio.Event) -> None:
        """Rounds until ``stop`` is set; a round in progress is cancelled by the caller."""
        while not stop.is_set():
            began = time.monotonic()
            await self.round()
            wait = self.config.interval - (time.monotonic() - began)
            if wait <= 0:
                log.warning(
                    "the round took longer than the interval (%.0f s); starting the next now "
                    "(raise interval or concurrency)",
                    self.config.interval,
                )
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)

    def healthy(self) -> tuple[bool, dict[str, object]]:
        now = time.monotonic()
        allowed = 2 * self.config.interval + 3 * self.config.timeout
        if self.last_completed is None:
            age = now - self.started
            return age <= allowed, {"status": "starting", "rounds": 0}
        age = now - self.last_completed
        status = "ok" if age <= allowed else "stale"
        return status == "ok", {
            "status": status,
            "rounds": self.rounds,
            "last_round_age_seconds": round(age, 1),
        }

    def app(self) -> web.Application:
        async def metrics(request: web.Request) -> web.Response:
            body = render(self.registry)
            response = web.Response(body=body)
            response.headers["Content-Type"] = CONTENT_TYPE_LATEST
            return response

        async def healthz(request: web.Request) -> web.Response:
            ok, body = self.healthy()
            return web.Response(
                status=200 if ok else 503,
                text=json.dumps(body) + "\n",
                content_type="application/json",
            )

        app = web.Application()
        app.router.add_get("/metrics", metrics)
        app.router.add_get("/healthz", healthz)
        return app


async def serve_monitor(
    config: MonitorConfig,
    *,
    concurrency: int | None = None,
    ready: Callable[[str | None], None] | None = None,
) -> int:
    """Run until SIGTERM/SIGINT; ``ready`` gets the metrics URL (or None) once listening."""
    monitor = Monitor(config, concurrency=concurrency)
    runner: web.AppRunner | None = None
    url = None
    if config.listen is not None:
        runner = web.AppRunner(monitor.app(), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, config.listen.host, config.listen.port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise ConfigError(
                f"{config.source}: listen = {str(config.listen)!r}: {exc.strerror or exc}"
            ) from None
        url = f"http://{config.listen}/metrics"
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if ready is not None:
        ready(url)
    rounds = asyncio.create_task(monitor.run(stop))
    stopped = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({rounds, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (rounds, stopped):
            task.cancel()
        for task in (rounds, stopped):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        if runner is not None:
            await runner.cleanup()
    log.info("stopped after %s", count(monitor.rounds, "round"))
    return 0

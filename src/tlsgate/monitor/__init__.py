"""``tlsgate monitor``: many endpoints, files and stores checked on a schedule.

Layers: :mod:`~tlsgate.monitor.config` reads ``monitor.toml``; :mod:`~tlsgate.monitor.rounds`
checks every target once under a concurrency bound (through :mod:`tlsgate.inspect`, which judges);
:mod:`~tlsgate.monitor.metrics` and :mod:`~tlsgate.monitor.alerts` only read a round's reports;
:mod:`~tlsgate.monitor.service` runs rounds forever and serves ``/metrics``.
"""

from __future__ import annotations

from tlsgate.monitor.alerts import Alert, AlertKind, AlertSink, TargetState, transitions
from tlsgate.monitor.config import (
    EndpointTarget,
    FileTarget,
    MonitorConfig,
    StoreTarget,
    Target,
    load,
    loads,
)
from tlsgate.monitor.metrics import MonitorCollector, new_registry, render
from tlsgate.monitor.rounds import RoundResult, check_trusts, run_round
from tlsgate.monitor.service import Monitor, serve_monitor

__all__ = [
    "Alert",
    "AlertKind",
    "AlertSink",
    "EndpointTarget",
    "FileTarget",
    "Monitor",
    "MonitorCollector",
    "MonitorConfig",
    "RoundResult",
    "StoreTarget",
    "Target",
    "TargetState",
    "check_trusts",
    "load",
    "loads",
    "new_registry",
    "render",
    "run_round",
    "serve_monitor",
    "transitions",
]

"""Alerts on transitions: what changed since the last round, not what is still wrong.

:func:`transitions` is pure (the previous state and this round's reports in, alerts and the new
state out), so every rule is a unit test; :class:`AlertSink` only delivers.

The rules, per target:

- a check that obtained no chain (refused, timed out, not TLS, unreadable file) is **failed**;
  it alerts once when it starts failing, not every round while it stays down;
- otherwise the verdict: entering **warning** or **critical** alerts, and so does a new problem at
  the same level (a hostname mismatch on a certificate already in the warning window is news);
- going back to OK after anything else is **recovered**;
- the first round has no "before": anything not OK alerts, OK stays quiet (a restart must not
  page for all thousand healthy targets, nor hide the one that is down).

Delivery is the log (one line per alert) and, when configured, one webhook POST per round
carrying every alert of the round: after an outage that is one request, not a thousand. The
payload has a ``text`` summary too, which chat webhooks (Slack, Mattermost) display as is. A
webhook that fails is logged and never stops the monitoring; it is not retried, since the next
transition (or the metrics) will say the same thing again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import httpx

from tlsgate.inspect import Code, Report, Severity
from tlsgate.plural import count

__all__ = ["Alert", "AlertKind", "AlertSink", "TargetState", "transitions"]

log = logging.getLogger("tlsgate.monitor")


class AlertKind(StrEnum):
    WARNING = "warning"  # entered the warning window (or another WARNING finding)
    CRITICAL = "critical"  # entered the critical window, expired, untrusted, ...
    FAILED = "failed"  # the check obtained no chain at all
    RECOVERED = "recovered"  # OK again


@dataclass(frozen=True)
class TargetState:
    """What the alert rules remember about a target between rounds."""

    severity: Severity
    codes: frozenset[Code]
    failed: bool

    @classmethod
    def of(cls, report: Report) -> TargetState:
        return cls(
            report.severity, frozenset(f.code for f in report.findings), not report.reachable
        )


@dataclass(frozen=True)
class Alert:
    kind: AlertKind
    target: str
    severity: Severity
    previous: Severity | None  # None: the first round this target was seen
    codes: tuple[str, ...]
    messages: tuple[str, ...]
    leaf_not_after: datetime | None
    chain_not_after: datetime | None
    labels: Mapping[str, str]

    @property
    def line(self) -> str:
        """One log line: the kind and target first, for grep; the first problem after."""
        before = f" (was {self.previous.label})" if self.previous is not None else ""
        problem = f": {self.messages[0]}" if self.messages else ""
        return f"{self.kind.value}: {self.target}{before}{problem}"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "target": self.target,
            "severity": self.severity.label,
            "previous": self.previous.label if self.previous is not None else None,
            "codes": list(self.codes),
            "messages": list(self.messages),
            "leaf_not_after": _iso(self.leaf_not_after),
            "chain_not_after": _iso(self.chain_not_after),
            "labels": dict(self.labels),
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _kind(state: TargetState) -> AlertKind:
    if state.failed:
        return AlertKind.FAILED
    if state.severity is Severity.CRITICAL:
        return AlertKind.CRITICAL
    if state.severity is Severity.WARNING:
        return AlertKind.WARNING
    return AlertKind.RECOVERED


def _worth_alerting(before: TargetState | None, now: TargetState) -> bool:
    if before is None:
        return now.failed or now.severity is not Severity.OK
    if now.failed or before.failed:
        return now.failed != before.failed  # went down, or came back (whatever it found)
    if now.severity != before.severity:
        return True
    return now.severity is not Severity.OK and not now.codes <= before.codes


def _alert(report: Report, state: TargetState, before: TargetState | None) -> Alert:
    worst = sorted(report.findings, key=lambda f: f.severity, reverse=True)
    problems = [f for f in worst if f.severity is not Severity.OK]
    return Alert(
        kind=_kind(state),
        target=report.target,
        severity=report.severity,
        previous=before.severity if before is not None else None,
        codes=tuple(dict.fromkeys(f.code.value for f in problems)),
        messages=tuple(f.message for f in problems),
        leaf_not_after=report.leaf_not_after,
        chain_not_after=report.chain_not_after,
        labels=dict(report.labels),
    )


def transitions(
    previous: Mapping[str, TargetState], reports: Iterable[Report]
) -> tuple[list[Alert], dict[str, TargetState]]:
    """The alerts this round's reports call for, and the state to pass to the next round.

    Targets missing from ``reports`` are forgotten (a certificate a store no longer holds), so
    one that comes back is judged as new.
    """
    alerts: list[Alert] = []
    states: dict[str, TargetState] = {}
    for report in reports:
        state = TargetState.of(report)
        before = previous.get(report.target)
        states[report.target] = state
        if _worth_alerting(before, state):
            alerts.append(_alert(report, state, before))
    return alerts, states


def _summary(alerts: Sequence[Alert]) -> str:
    shown = [a.line for a in alerts[:10]]
    more = f"\n... and {len(alerts) - 10} more" if len(alerts) > 10 else ""
    return f"tlsgate monitor: {count(len(alerts), 'alert')}\n" + "\n".join(shown) + more


def payload(alerts: Sequence[Alert]) -> dict[str, Any]:
    return {
        "source": "tlsgate monitor",
        "text": _summary(alerts),
        "alerts": [a.to_json() for a in alerts],
    }


class AlertSink:
    """Logs every alert and posts each round's alerts to the webhook, if there is one."""

    def __init__(self, webhook: str | None, timeout: float) -> None:
        self.webhook = webhook
        self.timeout = timeout

    async def deliver(self, alerts: Sequence[Alert]) -> bool:
        """True when every configured channel took the alerts; False is already logged."""
        for alert in alerts:
            level = logging.INFO if alert.kind is AlertKind.RECOVERED else logging.WARNING
            log.log(level, "%s", alert.line)
        if not alerts or self.webhook is None:
            return True
        try:
            # A client per round: rounds are minutes apart, a pooled connection would be stale.
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                response = await client.post(self.webhook, json=payload(alerts))
        except httpx.HTTPError as exc:
            log.error("webhook %s failed: %s", self.webhook, str(exc) or type(exc).__name__)
            return False
        if response.is_error:
            log.error("webhook %s answered %d", self.webhook, response.status_code)
            return False
        return True

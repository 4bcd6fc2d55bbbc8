"""Alert rules: a transition alerts once; a state that persists stays quiet."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, ClassVar

import pytest

from tests.conftest import free_port
from tests.monitor.conftest import MakeReport
from tlsgate.inspect import Code, Report, Severity
from tlsgate.monitor.alerts import (
    Alert,
    AlertKind,
    AlertSink,
    TargetState,
    payload,
    transitions,
)

OK = Severity.OK
WARN = Severity.WARNING
CRIT = Severity.CRITICAL


def kinds(alerts: list[Alert]) -> dict[str, AlertKind]:
    return {a.target: a.kind for a in alerts}


def test_first_round_alerts_on_everything_not_ok(report: MakeReport) -> None:
    reports = [
        report("fine"),
        report("soon", WARN, (Code.EXPIRES_SOON,), days=10),
        report("expired", CRIT, (Code.EXPIRED,)),
        report("down", CRIT, (Code.UNREACHABLE,), reachable=False),
    ]
    alerts, states = transitions({}, reports)
    assert kinds(alerts) == {
        "soon": AlertKind.WARNING,
        "expired": AlertKind.CRITICAL,
        "down": AlertKind.FAILED,
    }
    assert all(a.previous is None for a in alerts)
    assert set(states) == {"fine", "soon", "expired", "down"}
    assert states["down"] == TargetState(CRIT, frozenset({Code.UNREACHABLE}), failed=True)


def test_a_state_that_persists_alerts_once(report: MakeReport) -> None:
    reports = [report("soon", WARN, (Code.EXPIRES_SOON,)), report("down", CRIT, reachable=False)]
    _, states = transitions({}, reports)
    alerts, again = transitions(states, reports)
    assert alerts == []
    assert again == states


@pytest.mark.parametrize(
    ("before", "after", "kind"),
    [
        ((OK, (), True), (WARN, (Code.EXPIRES_SOON,), True), AlertKind.WARNING),
        (
            (WARN, (Code.EXPIRES_SOON,), True),
            (CRIT, (Code.EXPIRES_SOON,), True),
            AlertKind.CRITICAL,
        ),
        ((OK, (), True), (CRIT, (Code.EXPIRED,), True), AlertKind.CRITICAL),
        ((CRIT, (Code.EXPIRED,), True), (OK, (), True), AlertKind.RECOVERED),
        ((OK, (), True), (CRIT, (Code.TIMEOUT,), False), AlertKind.FAILED),
        ((WARN, (Code.EXPIRES_SOON,), True), (CRIT, (Code.RESET,), False), AlertKind.FAILED),
        ((CRIT, (Code.TIMEOUT,), False), (OK, (), True), AlertKind.RECOVERED),
        # Back from down, but what it serves now is itself a problem: that is what to say.
        ((CRIT, (Code.TIMEOUT,), False), (WARN, (Code.EXPIRES_SOON,), True), AlertKind.WARNING),
        # A new problem at the same level is news.
        (
            (WARN, (Code.EXPIRES_SOON,), True),
            (WARN, (Code.EXPIRES_SOON, Code.LEGACY_TLS), True),
            AlertKind.WARNING,
        ),
        # Fixed in part (critical -> warning) is a change worth knowing.
        (
            (CRIT, (Code.HOSTNAME_MISMATCH,), True),
            (WARN, (Code.EXPIRES_SOON,), True),
            AlertKind.WARNING,
        ),
    ],
)
def test_transitions(
    report: MakeReport,
    before: tuple[Severity, tuple[Code, ...], bool],
    after: tuple[Severity, tuple[Code, ...], bool],
    kind: AlertKind,
) -> None:
    first = report("t", before[0], before[1], reachable=before[2])
    second = report("t", after[0], after[1], reachable=after[2], labels={"team": "web"})
    _, states = transitions({}, [first])
    alerts, _ = transitions(states, [second])
    assert [a.kind for a in alerts] == [kind]
    alert = alerts[0]
    assert alert.previous is before[0]
    assert alert.severity is after[0]
    assert alert.codes == tuple(c.value for c in after[1] if after[0] is not OK)
    assert alert.labels == {"team": "web"}


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ((CRIT, (Code.TIMEOUT,), False), (CRIT, (Code.UNREACHABLE,), False)),  # still down
        ((WARN, (Code.EXPIRES_SOON, Code.LEGACY_TLS), True), (WARN, (Code.EXPIRES_SOON,), True)),
        ((OK, (), True), (OK, (), True)),
    ],
)
def test_no_alert_without_news(
    report: MakeReport,
    before: tuple[Severity, tuple[Code, ...], bool],
    after: tuple[Severity, tuple[Code, ...], bool],
) -> None:
    _, states = transitions({}, [report("t", before[0], before[1], reachable=before[2])])
    alerts, _ = transitions(states, [report("t", after[0], after[1], reachable=after[2])])
    assert alerts == []


def test_a_target_that_vanished_is_forgotten(report: MakeReport) -> None:
    _, states = transitions({}, [report("a", WARN, (Code.EXPIRES_SOON,)), report("b")])
    _, states = transitions(states, [report("b")])
    assert set(states) == {"b"}
    alerts, _ = transitions(states, [report("a", WARN, (Code.EXPIRES_SOON,)), report("b")])
    assert kinds(alerts) == {"a": AlertKind.WARNING}


def test_alert_line_and_json(report: MakeReport) -> None:
    r = report("shop", WARN, (Code.EXPIRES_SOON,), days=10, labels={"team": "payments"})
    (alert,) = transitions({}, [r])[0]
    assert alert.line == "warning: shop: expires-soon on shop"
    data = alert.to_json()
    assert data["kind"] == "warning" and data["severity"] == "warning"
    assert data["previous"] is None
    assert data["codes"] == ["expires-soon"]
    assert data["labels"] == {"team": "payments"}
    assert r.leaf_not_after is not None
    assert data["leaf_not_after"] == r.leaf_not_after.isoformat()
    body = payload([alert])
    assert body["text"].startswith("tlsgate monitor: 1 alert\nwarning: shop")
    json.dumps(body)  # serialisable as is


# --- delivery -------------------------------------------------------------------------------


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []
    status = 204

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        type(self).received.append(json.loads(self.rfile.read(length)))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[tuple[str, type[_Hook]]]:
    handler = type("Hook", (_Hook,), {"received": [], "status": 204})
    server = HTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _alerts(reports: list[Report]) -> list[Alert]:
    return transitions({}, reports)[0]


def test_webhook_gets_one_post_per_round(
    report: MakeReport, hook: tuple[str, type[_Hook]], caplog: pytest.LogCaptureFixture
) -> None:
    url, handler = hook
    alerts = _alerts([report("a", CRIT, (Code.EXPIRED,)), report("b", reachable=False)])
    caplog.set_level(logging.INFO, logger="tlsgate.monitor")
    assert asyncio.run(AlertSink(url, timeout=5).deliver(alerts)) is True
    assert len(handler.received) == 1
    assert [a["target"] for a in handler.received[0]["alerts"]] == ["a", "b"]
    assert [a["kind"] for a in handler.received[0]["alerts"]] == ["critical", "failed"]
    logged = [r.getMessage() for r in caplog.records]
    assert logged == [alerts[0].line, alerts[1].line]


def test_a_failing_webhook_is_logged_not_raised(
    report: MakeReport, hook: tuple[str, type[_Hook]], caplog: pytest.LogCaptureFixture
) -> None:
    url, handler = hook
    handler.status = 500
    alerts = _alerts([report("a", CRIT, (Code.EXPIRED,))])
    assert asyncio.run(AlertSink(url, timeout=5).deliver(alerts)) is False
    assert any("answered 500" in r.getMessage() for r in caplog.records)
    refused = f"http://127.0.0.1:{free_port()}/hook"
    assert asyncio.run(AlertSink(refused, timeout=5).deliver(alerts)) is False
    assert any(f"webhook {refused} failed" in r.getMessage() for r in caplog.records)


def test_no_post_without_alerts(hook: tuple[str, type[_Hook]]) -> None:
    url, handler = hook
    assert asyncio.run(AlertSink(url, timeout=5).deliver([])) is True
    assert handler.received == []

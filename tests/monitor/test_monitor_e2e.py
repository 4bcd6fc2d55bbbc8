"""``tlsgate monitor`` against 1,000 loopback targets: many SNI names on a few real TLS ports.

The servers are real (asyncio TLS with an SNI callback choosing among certificates from a test
CA) and the monitor runs as the real command in a subprocess, so nothing in between is assumed.
The servers also observe the concurrency bound from the other side: a connection counts from its
accept until the server reads its ClientHello (the SNI callback), and they hold every connection
a little before starting the handshake. The client cannot have finished a check before the server
answered its ClientHello, so any moment with N connections in that window had N checks in flight:
the peak the servers see can never exceed the monitor's true peak, whatever the scheduling.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import ssl
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import free_port
from tlsgate.ca import CertificateAuthority
from tlsgate.pki.keys import private_key_pem
from tlsgate.pki.names import parse_identities
from tlsgate.pki.pem import certificate_pem
from tlsgate.pki.profiles import LeafProfile

#: Certificates by the zone a name is in, with the days they have left.
ZONES = {"ok": 90, "warn": 10, "crit": 3}
PORTS = 3
#: How the 1,000 targets split: by zone, plus some pointing at a closed port.
COUNTS = {"ok": 690, "warn": 200, "crit": 100, "down": 10}
EXPECTED = {"ok": "ok", "warn": "warning", "crit": "critical", "down": "critical"}
#: The servers hold each connection this long before the handshake, so checks overlap.
HOLD = 0.03
WAIT = 90.0  # the bound on any single wait in these tests


@dataclass
class Observed:
    """What the servers saw: connections between accept and ClientHello, and their peak."""

    waiting: int = 0
    peak: int = 0
    handshakes: int = 0
    names: set[str] = field(default_factory=set)


class _Connection(asyncio.Protocol):
    def __init__(self, server: SniServers) -> None:
        self.server = server
        self.closed = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        # Not a byte is read before start_tls takes over the socket: the ClientHello waits.
        transport.pause_reading()
        self.server.observed.waiting += 1
        self.server.observed.peak = max(self.server.observed.peak, self.server.observed.waiting)
        task = asyncio.get_running_loop().create_task(self.server.serve(transport, self))
        self.server.tasks.add(task)
        task.add_done_callback(self.server.tasks.discard)

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set()


class SniServers:
    def __init__(self, contexts: dict[str, ssl.SSLContext]) -> None:
        self.observed = Observed()
        self.contexts = contexts
        self.base = contexts["ok"]
        self.tasks: set[asyncio.Task[None]] = set()
        for context in contexts.values():
            context.sni_callback = self._sni
        self.servers: list[asyncio.Server] = []
        self.ports: list[int] = []

    def _sni(self, obj: ssl.SSLObject, name: str | None, _: ssl.SSLContext) -> None:
        self.observed.waiting -= 1
        self.observed.handshakes += 1
        if name is not None:
            self.observed.names.add(name)
            zone = name.split(".")[-2]
            obj.context = self.contexts.get(zone, self.base)

    async def serve(self, transport: asyncio.Transport, protocol: _Connection) -> None:
        loop = asyncio.get_running_loop()
        try:
            await asyncio.sleep(HOLD)
            tls = await asyncio.wait_for(
                loop.start_tls(transport, protocol, self.base, server_side=True), 10
            )
            # The check closes once it has the chain (and our session tickets).
            await asyncio.wait_for(protocol.closed.wait(), 10)
            if tls is not None:
                tls.close()
        except (OSError, TimeoutError, ssl.SSLError):
            pass
        finally:
            transport.close()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(PORTS):
            server = await loop.create_server(
                lambda: _Connection(self), "127.0.0.1", free_port(), backlog=1024
            )
            self.servers.append(server)
            self.ports.append(server.sockets[0].getsockname()[1])

    def reset(self) -> None:
        self.observed = Observed()

    async def close(self) -> None:
        for server in self.servers:
            server.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


@pytest.fixture
def contexts(ca: CertificateAuthority, now: datetime, tmp_path: Path) -> dict[str, ssl.SSLContext]:
    """One server context per zone, each with a ``*.<zone>.test`` certificate and its chain."""
    out = {}
    for zone, days in ZONES.items():
        issued = ca.issue(
            parse_identities([f"*.{zone}.test"]),
            now=now,
            profile=LeafProfile(lifetime=timedelta(days=days)),
        )
        assert issued.private_key is not None
        chain, key = tmp_path / f"{zone}.pem", tmp_path / f"{zone}.key"
        chain.write_bytes(issued.fullchain_pem)
        key.write_bytes(private_key_pem(issued.private_key))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(chain, key)
        out[zone] = context
    (tmp_path / "roots.pem").write_bytes(certificate_pem(ca.root))
    return out


def write_config(path: Path, ports: list[int], extra: str = "") -> list[tuple[str, str]]:
    """monitor.toml with the 1,000 targets; returns (target name, zone) for each."""
    closed = free_port()
    # Revocation stays on (the default): these certificates name no CRL or OCSP URL, so the
    # lookup ends before any HTTP client is built.
    lines = [f'[monitor]\nconcurrency = 40\ntimeout = "5s"\nca = "roots.pem"\n{extra}\n']
    targets = []
    index = 0
    for zone, count in COUNTS.items():
        for _ in range(count):
            port = closed if zone == "down" else ports[index % len(ports)]
            name = f"t{index:04}.{zone}.test:{port}"
            lines.append(
                f'[[target]]\nendpoint = "{name}"\nconnect = "127.0.0.1:{port}"\n'
                f'labels = {{ zone = "{zone}" }}\n'
            )
            targets.append((name, zone))
            index += 1
    path.write_text("".join(lines))
    assert len(targets) == 1000
    return targets


async def run(
    contexts: dict[str, ssl.SSLContext], body: Callable[[SniServers], Awaitable[None]]
) -> None:
    servers = SniServers(contexts)
    await servers.start()
    try:
        await body(servers)
    finally:
        await servers.close()


def monitor_command(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "tlsgate", "monitor", "-c", str(config), *args]


def test_once_reports_every_target_within_the_bound(
    contexts: dict[str, ssl.SSLContext], tmp_path: Path
) -> None:
    config = tmp_path / "monitor.toml"

    async def body(servers: SniServers) -> None:
        targets = write_config(config, servers.ports)
        process = await asyncio.create_subprocess_exec(
            *monitor_command(config, "--once", "--json", "--concurrency", "25"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), WAIT)
        assert process.returncode == 2, stderr.decode()  # the worst verdict: CRITICAL

        reports = json.loads(stdout)
        assert [r["target"] for r in reports] == [name for name, _ in targets]
        for report, (name, zone) in zip(reports, targets, strict=True):
            assert report["verdict"] == EXPECTED[zone], (name, report["findings"])
            assert report["labels"] == {"zone": zone}
            if zone == "down":
                assert report["findings"][0]["code"] == "unreachable"
                assert report["chain"] == []
            else:
                assert report["verified"] is True
                assert report["servername"] == name.rsplit(":", 1)[0]
        # Every name reached its server by SNI; the peer saw at most 25 checks at once.
        assert servers.observed.names == {n.rsplit(":", 1)[0] for n, z in targets if z != "down"}
        assert 1 <= servers.observed.peak <= 25
        summary = re.search(rb"at most (\d+) at once, limit 25", stderr)
        assert summary is not None, stderr.decode()
        assert servers.observed.peak <= int(summary[1]) <= 25

    asyncio.run(run(contexts, body))


def test_service_serves_metrics_and_alerts_then_stops_on_sigterm(
    contexts: dict[str, ssl.SSLContext], tmp_path: Path
) -> None:
    config = tmp_path / "monitor.toml"
    port = free_port()
    received: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(status=204)

    async def body(servers: SniServers) -> None:
        app = web.Application()
        app.router.add_post("/hook", hook)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        hook_port = free_port()
        await web.TCPSite(runner, "127.0.0.1", hook_port).start()
        extra = (
            f'interval = "1h"\nlisten = "127.0.0.1:{port}"\n'
            f'webhook = "http://127.0.0.1:{hook_port}/hook"\n'
        )
        targets = write_config(config, servers.ports, extra)
        process = await asyncio.create_subprocess_exec(
            *monitor_command(config),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            text = await asyncio.wait_for(_first_round(port), WAIT)
            async with httpx.AsyncClient(timeout=10) as client:
                health = await client.get(f"http://127.0.0.1:{port}/healthz")
            assert health.status_code == 200 and health.json()["status"] == "ok"
            await asyncio.wait_for(_until(lambda: bool(received)), WAIT)
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
            _, stderr = await asyncio.wait_for(process.communicate(), WAIT)
            await runner.cleanup()
        assert process.returncode == 0, stderr.decode()

        samples: dict[str, dict[str, float]] = {}
        leaf_days: dict[str, float] = {}  # per target, the soonest-expiring certificate
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                key = sample.labels.get("target", "")
                samples.setdefault(sample.name, {})[key] = sample.value
                if sample.name == "tlsgate_cert_expires_in_seconds":
                    days = sample.value / 86400
                    leaf_days[key] = min(days, leaf_days.get(key, days))
        zone_of = dict(targets)
        verdicts = samples["tlsgate_check_verdict"]
        assert len(verdicts) == 1000
        assert {t: int(v) for t, v in verdicts.items()} == {
            name: {"ok": 0, "warn": 1, "crit": 2, "down": 2}[zone] for name, zone in targets
        }
        success = samples["tlsgate_check_success"]
        assert {t for t, v in success.items() if v == 0} == {
            name for name, zone in targets if zone in ("crit", "down")
        }
        assert set(samples["tlsgate_chain_not_after_timestamp_seconds"]) == {
            name for name, zone in targets if zone != "down"
        }
        # The leaf is what differs by zone (the intermediate outlives them all).
        assert set(leaf_days) == set(samples["tlsgate_chain_not_after_timestamp_seconds"])
        for name, days in leaf_days.items():
            assert ZONES[zone_of[name]] - 1 < days <= ZONES[zone_of[name]], name
        assert samples["tlsgate_monitor_targets"][""] == 1000
        assert samples["tlsgate_monitor_concurrency"][""] == 40
        assert samples["tlsgate_monitor_round_peak_in_flight"][""] <= 40
        assert 1 <= servers.observed.peak <= 40

        # One POST for the round: every target not OK, each once.
        assert len(received) == 1
        alerts = received[0]["alerts"]
        assert sorted(a["target"] for a in alerts) == sorted(
            name for name, zone in targets if zone != "ok"
        )
        for alert in alerts:
            zone = zone_of[alert["target"]]
            assert alert["kind"] == {"warn": "warning", "crit": "critical", "down": "failed"}[zone]
            assert alert["labels"] == {"zone": zone}
        assert b"stopped after 1 round" in stderr

    asyncio.run(run(contexts, body))


async def _until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.05)


async def _first_round(port: int) -> str:
    """The /metrics text once the first round is in it (polled until then)."""
    async with httpx.AsyncClient(timeout=10) as client:
        while True:
            try:
                response = await client.get(f"http://127.0.0.1:{port}/metrics")
            except httpx.TransportError:
                response = None  # not listening yet
            if response is not None and "tlsgate_monitor_last_round_timestamp" in response.text:
                assert response.headers["content-type"].startswith("text/plain")
                return response.text
            await asyncio.sleep(0.1)

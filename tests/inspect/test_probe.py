"""The probe against real TLS servers (Python's ssl = OpenSSL) started in the test's own loop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from tests.conftest import free_port, require_tool
from tests.pki.helpers import Hierarchy, hierarchy
from tlsgate.inspect import CheckOptions, Code, Report, Severity, check_endpoint, load_trust
from tlsgate.inspect.target import Endpoint
from tlsgate.pki.keys import private_key_pem
from tlsgate.pki.profiles import LeafProfile

NOW = datetime.now(UTC)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A root, a server chain for probe.test and a client certificate, as PEM files."""
    base = tmp_path_factory.mktemp("probe")
    pki: Hierarchy = hierarchy(NOW - timedelta(hours=1), name="Probe")
    out: dict[str, Path] = {}
    for name, leaf_names, profile in (
        ("server", ("probe.test",), LeafProfile()),
        ("client", ("client.probe.test",), LeafProfile(server=False, client=True)),
    ):
        from tlsgate.pki.keys import generate_key

        key = generate_key()
        leaf = pki.leaf(*leaf_names, now=NOW - timedelta(minutes=5), profile=profile, key=key)
        (base / f"{name}.pem").write_bytes(
            leaf.public_bytes(Encoding.PEM) + pki.intermediate.public_bytes(Encoding.PEM)
        )
        (base / f"{name}.key").write_bytes(private_key_pem(key))
        out[name] = base / f"{name}.pem"
        out[f"{name}_key"] = base / f"{name}.key"
    (base / "root.pem").write_bytes(pki.root.public_bytes(Encoding.PEM))
    out["root"] = base / "root.pem"
    return out


def server_context(
    files: dict[str, Path], *, require_client: bool = False, tls12: bool = False
) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(files["server"], files["server_key"])
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    if tls12:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    if require_client:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(files["root"])
    return ctx


async def _serve(
    handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
    ctx: ssl.SSLContext | None,
) -> asyncio.Server:
    return await asyncio.start_server(handler, "127.0.0.1", 0, ssl=ctx)


async def _hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        await asyncio.wait_for(reader.read(1), 5)
    except (TimeoutError, OSError, ssl.SSLError):
        pass
    writer.close()


def probe(files: dict[str, Path], ctx: ssl.SSLContext, **options: object) -> Report:
    async def main() -> Report:
        server = await _serve(_hold, ctx)
        port = server.sockets[0].getsockname()[1]
        try:
            opts = CheckOptions(trust=load_trust(files["root"]), timeout=5, **options)  # type: ignore[arg-type]
            return await check_endpoint(Endpoint("127.0.0.1", port, "probe.test"), opts)
        finally:
            server.close()

    return asyncio.run(main())


def test_what_was_negotiated_is_reported(files: dict[str, Path]) -> None:
    report = probe(files, server_context(files))
    assert report.severity is Severity.OK, report.findings
    assert report.negotiated is not None
    assert report.negotiated.version == "TLSv1.3"
    assert report.negotiated.alpn == "h2"
    assert report.negotiated.group == "X25519"
    assert len(report.chain) == 2 and len(report.path) == 3
    assert report.address is not None and report.address.startswith("127.0.0.1:")


def test_tls12_reports_the_ecdhe_group_and_suite(files: dict[str, Path]) -> None:
    report = probe(files, server_context(files, tls12=True))
    assert report.negotiated is not None
    assert report.negotiated.version == "TLSv1.2"
    assert report.negotiated.cipher.startswith("ECDHE-ECDSA-")
    assert report.negotiated.group == "X25519"
    assert report.severity is Severity.OK


@contextlib.contextmanager
def s_server(files: dict[str, Path], *extra: str) -> Iterator[int]:
    """``openssl s_server``: unlike asyncio's TLS, it sends the alert when it refuses."""
    openssl = require_tool("openssl")
    port = free_port()
    proc = subprocess.Popen(
        [
            openssl,
            "s_server",
            "-accept",
            f"127.0.0.1:{port}",
            "-cert",
            str(files["server"]),
            "-key",
            str(files["server_key"]),
            "-cert_chain",
            str(files["server"]),
            "-CAfile",
            str(files["root"]),
            "-www",
            "-quiet",
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("openssl s_server did not start")
                time.sleep(0.05)
        yield port
    finally:
        proc.kill()
        proc.wait(timeout=10)


def check_port(files: dict[str, Path], port: int, **options: object) -> Report:
    opts = CheckOptions(trust=load_trust(files["root"]), timeout=5, **options)  # type: ignore[arg-type]
    return asyncio.run(check_endpoint(Endpoint("127.0.0.1", port, "probe.test"), opts))


@pytest.mark.parametrize("version", ["-tls1_3", "-tls1_2"])
def test_a_server_requiring_a_client_certificate_is_recognised(
    files: dict[str, Path], version: str
) -> None:
    # TLS 1.3 refuses only after the client's Finished; TLS 1.2 inside the handshake.
    with s_server(files, "-Verify", "1", version) as port:
        report = check_port(files, port)
        assert [f.code for f in report.findings] == [Code.CLIENT_CERT_REQUIRED]
        assert "--client-cert" in report.findings[0].message
        good = check_port(files, port, client_cert=files["client"], client_key=files["client_key"])
        assert good.severity is Severity.OK, good.findings
        assert good.negotiated is not None and good.negotiated.client_certificate_sent


def test_findings_are_ordered_worst_first(files: dict[str, Path]) -> None:
    async def main() -> Report:
        server = await _serve(_hold, server_context(files))
        port = server.sockets[0].getsockname()[1]
        try:
            soon = NOW + timedelta(days=80)  # the 90-day leaf is in its warning window
            opts = CheckOptions(trust=load_trust(files["root"]), timeout=5, now=soon)
            return await check_endpoint(Endpoint("127.0.0.1", port, "wrong.test"), opts)
        finally:
            server.close()

    report = asyncio.run(main())
    assert {f.code for f in report.findings} == {Code.HOSTNAME_MISMATCH, Code.EXPIRES_SOON}
    severities = [f.severity for f in report.findings]
    assert severities == sorted(severities, reverse=True)

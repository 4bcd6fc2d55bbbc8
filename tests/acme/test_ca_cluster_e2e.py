"""Two `tlsgate ca serve` nodes on one PostgreSQL store, behind one URL, under concurrent orders.

What a cluster must not get wrong, checked end to end: every order of 100 concurrent ones
succeeds whichever node each request lands on; no serial is used twice and every certificate is
recorded once; a nonce from one node is good on the other (and only once); an account made on
one node works on the other; two nodes finalizing one order at the same moment issue once; and
the CRL, built from the shared store, is the same whichever node's machine builds it.

The nodes listen on their own ports and both announce the same ``--public-url``, as behind a TCP
load balancer: a small round-robin forwarder here plays it for certbot and for "roaming" clients
that open a new connection (so reach the other node) for every request. The other clients are
pinned to one node by an aiohttp resolver, alternately, so each node has its own share of whole
flows. Both nodes validate http-01 against one responder in this process, which answers for our
clients from memory and for certbot from its webroot.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from josepy.jwk import JWKEC

from tests.conftest import free_port, require_tool
from tests.store.postgres import PostgresServer
from tlsgate.acme.client.session import AcmeClient
from tlsgate.acme.client.solvers import Http01Solver
from tlsgate.pki.csr import build_csr
from tlsgate.pki.keys import generate_key
from tlsgate.store.postgres import PostgresStore

from .ca_serve import AcmeCA

pytestmark = pytest.mark.interop

ORDERS = 100
ROAMING_EVERY = 5  # every 5th order goes through the balancer, a new connection per request
CERTBOT_RUNS = 2
PROBLEM = "urn:ietf:params:acme:error:"


class ToPort(AbstractResolver):
    """Sends every connection of a session to one node's port: a client pinned to that node."""

    def __init__(self, port: int) -> None:
        self.port = port

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(
                hostname=host,
                host="127.0.0.1",
                port=self.port,
                family=socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
        ]

    async def close(self) -> None:
        pass


class Balancer:
    """A round-robin TCP forwarder: connection n goes to backend n mod len(backends)."""

    def __init__(self, port: int, backends: list[int]) -> None:
        self.port = port
        self.backends = backends
        self.connections = [0] * len(backends)
        self._next = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = self._next % len(self.backends)
        self._next += 1
        self.connections[index] += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.backends[index])
        except OSError:
            writer.close()
            return

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                with contextlib.suppress(ConnectionError, OSError):
                    dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


@contextlib.contextmanager
def cluster(tmp_path: Path, url: str) -> Iterator[tuple[AcmeCA, AcmeCA, int, Path]]:
    """Nodes a (which runs ``ca init`` on the database) and b, the balancer's port and the
    webroot the http-01 responder also serves."""
    http_port, lb_port = free_port(), free_port()
    public = f"https://localhost:{lb_port}"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = AcmeCA(tmp_path / "a", http_port=http_port, store=url, public_url=public)
    b = AcmeCA(tmp_path / "b", http_port=http_port, store=url, init=False, public_url=public)
    try:
        a.start()
        b.start()
        yield a, b, lb_port, tmp_path / "www"
    finally:
        a.stop()
        b.stop()


@contextlib.asynccontextmanager
async def responder(port: int, solver: Http01Solver, webroot: Path) -> AsyncIterator[None]:
    async def answer(request: web.Request) -> web.StreamResponse:
        response = await solver.handle(request)
        path = webroot / ".well-known" / "acme-challenge" / request.match_info["token"]
        if response.status == 404 and path.is_file():
            return web.Response(text=path.read_text())
        return response

    app = web.Application()
    app.router.add_get("/.well-known/acme-challenge/{token}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield
    finally:
        await runner.cleanup()


def new_key() -> JWKEC:
    return JWKEC(key=ec.generate_private_key(ec.SECP256R1()))


async def certbot(node: AcmeCA, tmp_path: Path, webroot: Path, name: str) -> str:
    dirs = tmp_path / f"certbot-{name}"
    proc = await asyncio.create_subprocess_exec(
        require_tool("certbot"), "certonly", "--webroot", "-w", str(webroot),
        "--agree-tos", "--email", "ops@example.test", "--server", node.directory,
        "-d", name, "--non-interactive",
        "--config-dir", str(dirs / "config"), "--work-dir", str(dirs / "work"),
        "--logs-dir", str(dirs / "logs"),
        env={**os.environ, "REQUESTS_CA_BUNDLE": str(node.root)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        out, _ = await proc.communicate()
    finally:
        if proc.returncode is None:  # cancelled (the test's time bound): leave nothing behind
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, out.decode(errors="replace")
    return (dirs / "config" / "live" / name / "cert.pem").read_text()


async def raw_post(session: aiohttp.ClientSession, url: str, body: bytes) -> tuple[int, Any]:
    headers = {"Content-Type": "application/jose+json"}
    async with session.post(url, data=body, headers=headers) as response:
        kind = response.headers.get("Content-Type", "")
        return response.status, (await response.json() if "json" in kind else None)


async def nonce_from_a_is_good_on_b_once(
    a: aiohttp.ClientSession, b: aiohttp.ClientSession, directory: str
) -> None:
    """Also: an account registered through node a is known to node b."""
    client = AcmeClient(directory, new_key(), session=a, poll_interval=0.05, timeout=30)
    kid = await client.register()
    nonce = await client._new_nonce()  # from node a
    body = client._sign(kid, None, nonce, use_jwk=False)  # POST-as-GET of the account
    status, account = await raw_post(b, kid, body)
    assert status == 200 and account["status"] == "valid", account
    status, problem = await raw_post(a, kid, body)  # the same nonce again, on a: used up
    assert status == 400 and problem["type"] == PROBLEM + "badNonce", problem


async def finalize_on_both_at_once(
    a: aiohttp.ClientSession, b: aiohttp.ClientSession, directory: str, solver: Http01Solver
) -> tuple[str, list[int]]:
    """One ready order, finalized on node a and node b at the same moment: issued once."""
    key = new_key()
    on_a = AcmeClient(directory, key, session=a, poll_interval=0.05, timeout=30)
    kid = await on_a.register()
    on_b = AcmeClient(directory, key, session=b, poll_interval=0.05, timeout=30)
    on_b.kid = kid
    order = await on_a.new_order(["race.example.test"])
    await on_a.authorize(order, {"http-01": solver})
    csr = await asyncio.to_thread(_csr, "race.example.test")
    finalize = order.body["finalize"]
    nonces = await asyncio.gather(on_a._new_nonce(), on_b._new_nonce())
    bodies = [
        client._sign(finalize, {"csr": csr}, nonce, use_jwk=False)
        for client, nonce in zip((on_a, on_b), nonces, strict=True)
    ]
    results = await asyncio.gather(
        raw_post(a, finalize, bodies[0]), raw_post(b, finalize, bodies[1])
    )
    statuses = sorted(status for status, _ in results)
    losers = [body for status, body in results if status != 200]
    assert statuses == [200, 403] and losers[0]["type"] == PROBLEM + "orderNotReady", results
    return order.url.rsplit("/", 1)[1], statuses


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _csr(name: str) -> str:
    return b64(build_csr(generate_key(), [x509.DNSName(name)]).public_bytes(Encoding.DER))


def crl_serials(node: AcmeCA, out: Path) -> set[int]:
    """``tlsgate ca crl`` on this node's machine (its environment: the shared store)."""
    subprocess.run(
        [sys.executable, "-m", "tlsgate", "ca", "crl", "--out", str(out)],
        env=node.env, check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    crl = x509.load_pem_x509_crl(out.read_bytes())
    return {entry.serial_number for entry in crl}


def test_two_nodes_one_store_under_concurrent_orders(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url = postgres_server.create_database()
    with cluster(tmp_path, url) as (a, b, lb_port, webroot):
        webroot.mkdir()
        tls = ssl.create_default_context(cafile=str(a.root))
        solver = Http01Solver()
        balancer = Balancer(lb_port, [a.port, b.port])
        keys = [ec.generate_private_key(ec.SECP256R1()) for _ in range(ORDERS)]

        async def main() -> dict[str, Any]:
            await balancer.start()

            def session(**kw: Any) -> aiohttp.ClientSession:
                connector = aiohttp.TCPConnector(ssl=tls, limit=60, **kw)
                timeout = aiohttp.ClientTimeout(total=30)
                return aiohttp.ClientSession(connector=connector, timeout=timeout)

            try:
                async with (
                    responder(a.http_port, solver, webroot),
                    session(resolver=ToPort(a.port)) as to_a,
                    session(resolver=ToPort(b.port)) as to_b,
                    session(force_close=True) as roaming,
                    asyncio.timeout(120),  # ~30 s on an idle 2-core machine
                ):
                    await nonce_from_a_is_good_on_b_once(to_a, to_b, a.directory)
                    race = await finalize_on_both_at_once(to_a, to_b, a.directory, solver)

                    async def obtain(i: int) -> bytes:
                        pick = roaming if i % ROAMING_EVERY == ROAMING_EVERY - 1 else None
                        via = pick or (to_a if i % 2 == 0 else to_b)
                        client = AcmeClient(
                            a.directory, new_key(), session=via, poll_interval=0.05, timeout=30
                        )
                        return await client.obtain(
                            [f"n{i}.example.test"], keys[i], {"http-01": solver}
                        )

                    certbots = [
                        certbot(a, tmp_path, webroot, f"certbot{i}.example.test")
                        for i in range(CERTBOT_RUNS)
                    ]
                    chains: list[Any] = list(
                        await asyncio.gather(*(obtain(i) for i in range(ORDERS)), *certbots)
                    )
                    # Revoke one through node b, signed with the certificate's own key (the
                    # jwk form of revokeCert); the CRL is then built on each node's machine.
                    first = x509.load_pem_x509_certificates(chains[0])[0]
                    certificate = b64(first.public_bytes(Encoding.DER))
                    by_key = AcmeClient(a.directory, JWKEC(key=keys[0]), session=to_b, timeout=30)
                    await by_key.post(
                        (await by_key.directory())["revokeCert"],
                        {"certificate": certificate, "reason": 1},
                        use_jwk=True,
                    )
                    return {"chains": chains, "race": race, "revoked": first.serial_number}
            finally:
                await balancer.stop()

        result = asyncio.run(main())
        chains: list[Any] = result["chains"]
        leaves = [
            x509.load_pem_x509_certificates(c.encode() if isinstance(c, str) else c)[0]
            for c in chains
        ]
        assert len(leaves) == ORDERS + CERTBOT_RUNS
        for i, leaf in enumerate(leaves[:ORDERS]):
            san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            assert san.get_values_for_type(x509.DNSName) == [f"n{i}.example.test"]
        serials = [leaf.serial_number for leaf in leaves]
        assert len(set(serials)) == len(serials)
        assert balancer.connections[0] > 0 and balancer.connections[1] > 0

        store = PostgresStore(url)
        try:
            acme = [r for r in store.list_certificates() if r.requester.startswith("acme:")]
            by_serial = {r.serial: r for r in acme}
            assert len(by_serial) == len(acme)  # (the primary key says so too)
            assert set(serials) <= set(by_serial)
            names = sorted(name for r in acme for name in r.names)
            wanted = sorted(
                [f"n{i}.example.test" for i in range(ORDERS)]
                + [f"certbot{i}.example.test" for i in range(CERTBOT_RUNS)]
                + ["race.example.test"]
            )
            assert names == wanted  # every certificate recorded once, and nothing else issued
            for serial in serials:
                record = by_serial[serial]
                assert record.order_id is not None
                assert store.get_order(record.order_id).certificate_serial == serial
            race_order, _ = result["race"]
            assert [r.order_id for r in acme].count(race_order) == 1
            revoked = store.get_certificate(result["revoked"])
            assert revoked.status.value == "revoked"
        finally:
            store.close()
        on_a = crl_serials(a, tmp_path / "a.crl")
        on_b = crl_serials(b, tmp_path / "b.crl")
        assert on_a == on_b == {result["revoked"]}

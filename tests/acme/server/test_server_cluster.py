"""The ACME server when another node writes to its store between its own read and write.

In one process the event loop runs a handler's store calls back to back; with several
`ca serve` nodes another node's insert can land between a lookup and the insert that follows
it. :class:`LateStore` replays that interleaving deterministically: it answers "no account for
this key" once after the account exists, as a node that looked just before another node's
insert would have seen. A node that stopped is played by writing to the store what it left
behind (a challenge or an order ``processing`` since long ago); the server under test is the
node that finds it. The end-to-end test of the cluster is test_ca_cluster_e2e.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from acme import jws as acme_jws
from aiohttp.test_utils import TestServer
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from josepy import jwa

from tests.conftest import free_port
from tlsgate.acme.server.app import AcmeServer
from tlsgate.acme.server.csr import check_finalize_csr
from tlsgate.acme.server.nonces import StoreNonces
from tlsgate.acme.server.policy import StoreRateLimiter
from tlsgate.ca import CertificateAuthority
from tlsgate.pki.csr import build_csr
from tlsgate.pki.keys import generate_key
from tlsgate.pki.names import parse_identities
from tlsgate.store.acme import AcmeAccount, ChallengeStatus, OrderStatus
from tlsgate.store.sqlite import SQLiteStore

from .test_server import PROBLEM, Client, Env, environment, run


class LateStore(SQLiteStore):
    """Misses an existing account ``blind`` times: another node's insert was not seen yet."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.blind = 0

    def find_account_by_thumbprint(self, thumbprint: str) -> AcmeAccount | None:
        if self.blind > 0:
            self.blind -= 1
            return None
        return super().find_account_by_thumbprint(thumbprint)


@pytest.fixture
def late(state_dir: Path) -> Iterator[LateStore]:
    store = LateStore(state_dir)
    yield store
    store.close()


def test_account_registered_meanwhile_by_another_node_is_returned(
    late: LateStore, now: datetime
) -> None:
    ca = CertificateAuthority.init(late, now=now, name="Test")

    async def main() -> None:
        async with environment(ca, late) as env:
            client = await env.client()
            late.blind = 1  # the lookup misses it; the insert then clashes on the thumbprint
            code, headers, body = await client.post(
                env.directory["newAccount"], {"termsOfServiceAgreed": True}, jwk=True
            )
            assert code == 200 and headers["Location"] == client.kid, body
            assert late.blind == 0

    run(main())


def test_key_taken_meanwhile_by_another_account_is_a_conflict(
    late: LateStore, now: datetime
) -> None:
    ca = CertificateAuthority.init(late, now=now, name="Test")

    async def main() -> None:
        async with environment(ca, late) as env:
            client, other = await env.client(), await env.client()
            url = env.directory["keyChange"]
            change = {"account": client.kid, "oldKey": client.key.public_key().to_json()}
            inner = acme_jws.JWS.sign(
                json.dumps(change).encode(), key=other.key, alg=jwa.ES256, nonce=None, url=url
            )
            late.blind = 1  # the check misses the other account; the update then clashes
            code, headers, problem = await client.post(url, inner.to_json())
            assert code == 409 and headers["Location"] == other.kid, problem

    run(main())


def test_server_with_store_nonces_works_and_refuses_replays(
    ca: CertificateAuthority, store: SQLiteStore
) -> None:
    """The whole flow on nonces kept in the store, as several nodes keep them."""

    async def main() -> None:
        async with environment(ca, store) as env:
            env.server.nonces = StoreNonces(store)
            client = await env.client()
            nonce = await client.nonce()
            body = client.sign(client.kid or "", None, nonce, kid=client.kid)
            code, _, _ = await client.post_raw(client.kid or "", body)
            assert code == 200
            code, _, problem = await client.post_raw(client.kid or "", body)
            assert code == 400 and problem["type"].endswith(":badNonce")
            _, order = await client.order("a.example.test")
            await client.authorize(order, env.tokens)
            status, order = await client.finalize(order, ["a.example.test"])
            assert status == 200 and order["status"] == "valid", order

    run(main())


# -- a node that stops mid-validation or mid-finalize ------------------------------------------
LONG_AGO = timedelta(minutes=10)


def _csr(names: list[str]) -> bytes:
    csr = build_csr(generate_key(), [x509.DNSName(n) for n in names])
    return csr.public_bytes(Encoding.DER)


def test_challenge_left_processing_by_a_stopped_node_becomes_invalid(
    ca: CertificateAuthority, store: SQLiteStore
) -> None:
    """RFC 8555 7.1.6: a processing challenge may only become valid or invalid, never pending."""

    async def main() -> None:
        async with environment(ca, store) as env:
            client = await env.client()
            order_url, order = await client.order("d.example.test")
            _, _, authz = await client.post(order["authorizations"][0], None)
            challenge = authz["challenges"][0]
            challenge_id = challenge["url"].rsplit("/", 1)[1]
            # The "dead" node: it marked the challenge processing and stopped.
            now = datetime.now(UTC)
            started = now - timedelta(seconds=30)
            assert store.update_challenge(
                challenge_id,
                status=ChallengeStatus.PROCESSING,
                expected_status=ChallengeStatus.PENDING,
                processing_since=started,
            )
            # Within the bound it may still be at work: left alone.
            _, _, read = await client.post(challenge["url"], None)
            assert read["status"] == "processing"
            store.update_challenge(
                challenge_id, status=ChallengeStatus.PROCESSING, processing_since=now - LONG_AGO
            )
            code, _, read = await client.post(challenge["url"], None)
            assert code == 200 and read["status"] == "invalid", read
            assert read["error"]["type"] == PROBLEM + "serverInternal"
            assert "stopped" in read["error"]["detail"]
            _, _, authz = await client.post(order["authorizations"][0], None)
            assert authz["status"] == "invalid"
            _, _, order = await client.post(order_url, None)
            assert order["status"] == "invalid"

    run(main())


def test_stale_challenge_is_noticed_through_the_order_too(
    ca: CertificateAuthority, store: SQLiteStore
) -> None:
    async def main() -> None:
        async with environment(ca, store) as env:
            client = await env.client()
            order_url, order = await client.order("e.example.test")
            _, _, authz = await client.post(order["authorizations"][0], None)
            challenge_id = authz["challenges"][0]["url"].rsplit("/", 1)[1]
            store.update_challenge(challenge_id, status=ChallengeStatus.PROCESSING)  # no start
            _, _, order = await client.post(order_url, None)
            assert order["status"] == "invalid", order
            assert store.get_challenge(challenge_id).status is ChallengeStatus.INVALID

    run(main())


async def _ready_order(env: Env, name: str) -> tuple[Client, str, dict[str, Any]]:
    client = await env.client()
    order_url, order = await client.order(name)
    await client.authorize(order, env.tokens)
    return client, order_url, order


def test_order_left_processing_by_a_stopped_node_is_issued_by_another(
    ca: CertificateAuthority, store: SQLiteStore
) -> None:
    async def main() -> None:
        async with environment(ca, store) as env:
            client, order_url, _ = await _ready_order(env, "f.example.test")
            order_id = order_url.rsplit("/", 1)[1]
            now = datetime.now(UTC)
            # The "dead" node won finalize (ready -> processing, with its CSR) and stopped.
            assert store.update_order(
                order_id,
                status=OrderStatus.PROCESSING,
                expected_status=OrderStatus.PENDING,
                processing_since=now - timedelta(seconds=10),
                csr=_csr(["f.example.test"]),
            )
            _, _, order = await client.post(order_url, None)
            assert order["status"] == "processing"  # it may still be issuing
            store.update_order(order_id, processing_since=now - LONG_AGO)
            before = len(store.list_certificates())
            _, _, order = await client.post(order_url, None)
            assert order["status"] == "valid" and "certificate" in order, order
            assert len(store.list_certificates()) == before + 1
            code, _, pem = await client.post(order["certificate"], None)
            assert code == 200 and b"BEGIN CERTIFICATE" in pem
            # Read again: nothing more is issued.
            _, _, again = await client.post(order_url, None)
            assert again["certificate"] == order["certificate"]
            assert len(store.list_certificates()) == before + 1

    run(main())


def test_order_whose_node_issued_then_stopped_gets_that_certificate(
    ca: CertificateAuthority, store: SQLiteStore
) -> None:
    async def main() -> None:
        async with environment(ca, store) as env:
            client, order_url, _ = await _ready_order(env, "g.example.test")
            order_id = order_url.rsplit("/", 1)[1]
            now = datetime.now(UTC)
            der = _csr(["g.example.test"])
            store.update_order(
                order_id, status=OrderStatus.PROCESSING, processing_since=now - LONG_AGO, csr=der
            )
            issued = ca.issue(  # ... and it issued, then stopped before recording it
                parse_identities(["g.example.test"]),
                now=now,
                csr=check_finalize_csr(der, [("dns", "g.example.test")]),
                requester="acme:dead",
                order_id=order_id,
            )
            before = len(store.list_certificates())
            _, _, order = await client.post(order_url, None)
            assert order["status"] == "valid", order
            serial = issued.certificate.serial_number
            assert order["certificate"].endswith(f"/{serial:x}")
            assert len(store.list_certificates()) == before  # not issued twice

    run(main())


def test_order_left_processing_without_a_csr_becomes_invalid(
    ca: CertificateAuthority, store: SQLiteStore
) -> None:
    """Finalized by a node older than schema 6: no CSR to issue from, so invalid, not stuck."""

    async def main() -> None:
        async with environment(ca, store) as env:
            client, order_url, _ = await _ready_order(env, "h.example.test")
            store.update_order(order_url.rsplit("/", 1)[1], status=OrderStatus.PROCESSING)
            _, _, order = await client.post(order_url, None)
            assert order["status"] == "invalid", order
            assert order["error"]["type"] == PROBLEM + "serverInternal"

    run(main())


# -- rate limits shared by the nodes ------------------------------------------------------------
def test_two_nodes_share_one_rate_limit(ca: CertificateAuthority, store: SQLiteStore) -> None:
    async def main() -> None:
        async with environment(ca, store, order_burst=2, order_rate=0.01) as env:
            settings = env.server.settings
            env.server.nonces = StoreNonces(store)
            env.server.limiter = StoreRateLimiter(store, settings.order_rate, settings.order_burst)
            # Node B: the same public URLs (as behind a load balancer), its own port and objects.
            other = AcmeServer(
                ca,
                store,
                env.server.urls.base,
                settings,
                nonces=StoreNonces(store),
                limiter=StoreRateLimiter(store, settings.order_rate, settings.order_burst),
            )
            node_b = TestServer(other.app(), host="127.0.0.1", port=free_port())
            await node_b.start_server()
            try:
                client = await env.client()
                url = env.directory["newOrder"]
                b_url = url.replace(env.server.urls.base, f"http://127.0.0.1:{node_b.port}")

                async def order_on(node_url: str, name: str) -> int:
                    payload = {"identifiers": [{"type": "dns", "value": name}]}
                    body = client.sign(url, payload, await client.nonce(), kid=client.kid)
                    code, _, _ = await client.post_raw(node_url, body)
                    return code

                assert await order_on(url, "a.example.test") == 201
                assert await order_on(b_url, "b.example.test") == 201
                # The burst of 2 is spent across both nodes: each refuses now.
                assert await order_on(url, "c.example.test") == 429
                assert await order_on(b_url, "d.example.test") == 429
            finally:
                await node_b.close()

    run(main())

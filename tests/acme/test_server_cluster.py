"""The ACME server when another node writes to its store between its own read and write.

In one process the event loop runs a handler's store calls back to back; with several
`ca serve` nodes another node's insert can land between a lookup and the insert that follows
it. :class:`LateStore` replays that interleaving deterministically: it answers "no account for
this key" once after the account exists, as a node that looked just before another node's
insert would have seen. The end-to-end test of the cluster is test_ca_cluster_e2e.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from acme import jws as acme_jws
from josepy import jwa

from tlsgate.acme.nonces import StoreNonces
from tlsgate.ca import CertificateAuthority
from tlsgate.store.acme import AcmeAccount
from tlsgate.store.sqlite import SQLiteStore

from .test_server import environment, run


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

"""The ACME client (tlsgate.acme.client.session) against the ACME server, in-process.

See test_server for the server side.
"""

from __future__ import annotations

from datetime import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from josepy.jwk import JWKEC

from tlsgate.acme.client.session import AcmeClient, AcmeClientError
from tlsgate.acme.server.nonces import NonceBook
from tlsgate.ca import CertificateAuthority
from tlsgate.pki.chain import verify_chain
from tlsgate.store.sqlite import SQLiteStore

from ..server.test_server import Env, environment, run


class Http01:
    """Answers http-01 through the test responder's token table."""

    challenge_type = "http-01"

    def __init__(self, env: Env) -> None:
        self.env = env
        self.presented: list[str] = []

    async def present(self, identifier: str, token: str, key_authorization: str) -> None:
        self.env.tokens[token] = key_authorization
        self.presented.append(identifier)

    async def cleanup(self, identifier: str, token: str) -> None:
        self.env.tokens.pop(token, None)


class Silent(Http01):
    async def present(self, identifier: str, token: str, key_authorization: str) -> None:
        self.presented.append(identifier)  # says it did, does not


class FlakyNonces(NonceBook):
    """Refuses every other good nonce, like Pebble's PEBBLE_WFE_NONCEREJECT (but more)."""

    def __init__(self) -> None:
        super().__init__()
        self.refused = 0

    def consume(self, nonce: str, now: datetime) -> bool:
        ok = super().consume(nonce, now)
        if ok and self.refused % 2 == 0:
            self.refused += 1
            return False
        self.refused += ok
        return ok


def new_key() -> JWKEC:
    return JWKEC(key=ec.generate_private_key(ec.SECP256R1()))


def client_for(env: Env) -> AcmeClient:
    return AcmeClient(
        env.directory["newNonce"].rsplit("/acme/", 1)[0] + "/directory",
        new_key(),
        session=env.session,
        poll_interval=0.02,
        timeout=20,
    )


def test_obtain_then_reuse_authorizations_and_read_ari(
    ca: CertificateAuthority, store: SQLiteStore, now: datetime
) -> None:
    async def main() -> None:
        async with environment(ca, store) as env:
            env.server.nonces = FlakyNonces()  # every other nonce refused: retried, invisible
            client = client_for(env)
            solver = Http01(env)
            key = ec.generate_private_key(ec.SECP256R1())
            names = ["a.example.test", "b.example.test"]
            chain = await client.obtain(names, key, {"http-01": solver})
            certs = x509.load_pem_x509_certificates(chain)
            verify_chain(certs[0], certs[1:], [ca.root], hostname="b.example.test", now=now)
            assert sorted(solver.presented) == names and env.tokens == {}
            # The same account again: its authorizations are still valid, nothing to solve.
            again = await client.obtain(names, key, {"http-01": solver})
            assert again != chain and sorted(solver.presented) == names
            window = await client.renewal_window(certs[0])
            assert window is not None and window[0] < window[1]
            assert isinstance(env.server.nonces, FlakyNonces) and env.server.nonces.refused > 5

    run(main())


def test_failed_validation_says_why(ca: CertificateAuthority, store: SQLiteStore) -> None:
    async def main() -> None:
        async with environment(ca, store) as env:
            client = client_for(env)
            key = ec.generate_private_key(ec.SECP256R1())
            with pytest.raises(AcmeClientError, match="authorization invalid") as info:
                await client.obtain(["x.example.test"], key, {"http-01": Silent(env)})
            assert "404" in str(info.value)
            with pytest.raises(AcmeClientError, match=r"the CA offers .*http-01.*set up for"):
                await client.obtain(["y.example.test"], key, {})
            with pytest.raises(AcmeClientError, match="rejectedIdentifier") as refused:
                await client.new_order(["UPPER.example.test"])
            assert refused.value.type.endswith("rejectedIdentifier")

    run(main())


def test_external_account_binding(ca: CertificateAuthority, store: SQLiteStore) -> None:
    async def main() -> None:
        mac = b"k" * 32
        async with environment(ca, store, eab_keys={"kid-7": mac}, eab_required=True) as env:
            client = client_for(env)
            with pytest.raises(AcmeClientError, match="externalAccountRequired"):
                await client.register()
            kid = await client.register(eab=("kid-7", mac))
            assert kid.startswith(env.directory["newAccount"].rsplit("/", 1)[0])

    run(main())


def test_unreachable_directory_is_a_clear_error() -> None:
    async def main() -> None:
        async with AcmeClient("http://127.0.0.1:9/directory", new_key(), timeout=2) as client:
            with pytest.raises(AcmeClientError, match="cannot read the ACME directory"):
                await client.register()

    run(main())

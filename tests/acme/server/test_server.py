"""The ACME front end end to end (tlsgate.acme.server.app): real JWS, a real http-01 responder.

The server runs in-process on aiohttp's test server (plain HTTP: TLS is the service's job and
is covered by the certbot/lego tests); requests are signed with the ``acme`` library's JWS, as
certbot signs them. Every refusal is checked for its RFC 8555 type and for leaving the store as
it was.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any, TypeVar

import pytest
from acme import jws as acme_jws
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from josepy import jwa, jwk
from josepy.json_util import decode_b64jose
from josepy.jwk import JWKEC

from tests.conftest import free_port
from tlsgate.acme.jose import dns01_txt_value
from tlsgate.acme.server.app import AcmeServer, AcmeServerSettings
from tlsgate.acme.server.policy import IdentifierPolicy
from tlsgate.acme.server.validation import ValidationConfig
from tlsgate.ca import CertificateAuthority
from tlsgate.pki.chain import verify_chain
from tlsgate.pki.names import NameConstraints
from tlsgate.store.sqlite import SQLiteStore

from .test_validation import dns_server

T = TypeVar("T")
JOSE = "application/jose+json"
PROBLEM = "urn:ietf:params:acme:error:"


def run(coro: Coroutine[Any, Any, T]) -> T:
    async def bounded() -> T:
        async with asyncio.timeout(60):
            return await coro

    return asyncio.run(bounded())


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Client:
    """A minimal ACME client: one key, JWS signed like certbot's (``acme.jws``)."""

    def __init__(self, session: ClientSession, directory: dict[str, Any]) -> None:
        self.session = session
        self.directory = directory
        self.key = JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
        self.kid: str | None = None

    async def nonce(self) -> str:
        async with self.session.head(self.directory["newNonce"]) as response:
            return response.headers["Replay-Nonce"]

    def sign(
        self, url: str, payload: Any, nonce: str, *, kid: str | None = None, key: Any = None
    ) -> bytes:
        body = b"" if payload is None else json.dumps(payload).encode()
        signed = acme_jws.JWS.sign(
            body, key=key or self.key, alg=jwa.ES256, nonce=decode_b64jose(nonce), url=url, kid=kid
        )
        out: bytes = signed.json_dumps().encode()
        return out

    async def post_raw(
        self, url: str, body: bytes, content_type: str = JOSE
    ) -> tuple[int, dict[str, str], Any]:
        async with self.session.post(
            url, data=body, headers={"Content-Type": content_type}
        ) as response:
            data = await response.read()
            kind = response.headers.get("Content-Type", "")
            parsed: Any = json.loads(data) if "json" in kind else data
            return response.status, dict(response.headers), parsed

    async def post(self, url: str, payload: Any, **kw: Any) -> tuple[int, dict[str, str], Any]:
        kid = None if kw.pop("jwk", False) else self.kid
        return await self.post_raw(url, self.sign(url, payload, await self.nonce(), kid=kid, **kw))

    async def register(self) -> str:
        status, headers, body = await self.post(
            self.directory["newAccount"], {"termsOfServiceAgreed": True}, jwk=True
        )
        assert status == 201, body
        self.kid = headers["Location"]
        return self.kid

    async def order(self, *names: str) -> tuple[str, dict[str, Any]]:
        identifiers = [{"type": "dns", "value": n} for n in names]
        status, headers, body = await self.post(
            self.directory["newOrder"], {"identifiers": identifiers}
        )
        assert status == 201, body
        return headers["Location"], body

    async def authorize(self, order: dict[str, Any], tokens: dict[str, str]) -> None:
        """Answer http-01 for every authorization (through ``tokens``) and wait for valid."""
        for url in order["authorizations"]:
            _, _, authz = await self.post(url, None)
            if authz["status"] == "valid":
                continue
            challenge = next(c for c in authz["challenges"] if c["type"] == "http-01")
            tokens[challenge["token"]] = f"{challenge['token']}.{self.thumbprint()}"
            status, _, body = await self.post(challenge["url"], {})
            assert status == 200, body
            for _ in range(200):
                _, _, authz = await self.post(url, None)
                if authz["status"] != "pending":
                    break
                await asyncio.sleep(0.02)
            assert authz["status"] == "valid", authz

    def thumbprint(self) -> str:
        return b64(self.key.public_key().thumbprint(hash_function=hashes.SHA256))

    async def finalize(self, order: dict[str, Any], names: list[str]) -> tuple[int, Any]:
        private = ec.generate_private_key(ec.SECP256R1())
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([]))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
            .sign(private, hashes.SHA256())
        )
        status, _, body = await self.post(
            order["finalize"], {"csr": b64(csr.public_bytes(Encoding.DER))}
        )
        return status, body


@dataclasses.dataclass
class Env:
    server: AcmeServer
    store: SQLiteStore
    ca: CertificateAuthority
    session: ClientSession
    directory: dict[str, Any]
    tokens: dict[str, str]

    async def client(self) -> Client:
        client = Client(self.session, self.directory)
        await client.register()
        return client

    def counts(self) -> tuple[int, ...]:
        db = self.store._db  # (read-only peek: how many rows each ACME table has)
        tables = (
            "acme_account",
            "acme_order",
            "acme_authorization",
            "acme_challenge",
            "certificate",
        )
        return tuple(db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables)


@asynccontextmanager
async def environment(
    ca: CertificateAuthority, store: SQLiteStore, **settings: Any
) -> AsyncIterator[Env]:
    tokens: dict[str, str] = {}

    async def answer(request: web.Request) -> web.Response:
        token = request.match_info["token"]
        if token not in tokens:
            return web.Response(status=404)
        return web.Response(text=tokens[token])

    responder = web.Application()
    responder.router.add_get("/.well-known/acme-challenge/{token}", answer)
    http01 = TestServer(responder, host="127.0.0.1")
    await http01.start_server()
    validation = dataclasses.replace(
        ValidationConfig.from_options(
            http_01_port=http01.port or 0, resolve=["*.example.test=127.0.0.1"]
        ),
        attempts=1,
        attempt_timeout=5.0,
        timeout=10.0,
    )
    options: dict[str, Any] = {"validation": validation, **settings}
    port = free_port()  # the URLs the server hands out must name its real port
    acme = AcmeServer(ca, store, f"http://127.0.0.1:{port}", AcmeServerSettings(**options))
    server = TestServer(acme.app(), host="127.0.0.1", port=port)
    await server.start_server()
    try:
        async with ClientSession() as session:
            async with session.get(acme.urls.directory) as response:
                directory = await response.json()
            yield Env(acme, store, ca, session, directory, tokens)
    finally:
        await server.close()
        await http01.close()


def test_full_flow_issue_download_renewal_info_revoke(
    ca: CertificateAuthority, store: SQLiteStore, now: datetime
) -> None:
    async def main() -> None:
        async with environment(ca, store) as env:
            client = await env.client()
            order_url, order = await client.order("a.example.test", "b.example.test")
            assert order["status"] == "pending" and len(order["authorizations"]) == 2
            await client.authorize(order, env.tokens)
            _, _, order = await client.post(order_url, None)
            assert order["status"] == "ready"
            status, order = await client.finalize(order, ["a.example.test", "b.example.test"])
            assert status == 200 and order["status"] == "valid", order
            status, headers, chain = await client.post(order["certificate"], None)
            assert status == 200 and headers["Content-Type"] == "application/pem-certificate-chain"
            certs = x509.load_pem_x509_certificates(chain)
            verify_chain(certs[0], certs[1:], [ca.root], hostname="b.example.test", now=now)
            record = store.get_certificate(certs[0].serial_number)
            assert record.order_id == order_url.rsplit("/", 1)[1]
            # ARI: the suggested window, then "renew now" once revoked.
            from tlsgate.acme.ari import cert_id

            info_url = f"{env.directory['renewalInfo']}/{cert_id(certs[0])}"
            async with env.session.get(info_url) as response:
                window = (await response.json())["suggestedWindow"]
                assert response.status == 200 and "Retry-After" in response.headers
            revoke = {"certificate": b64(certs[0].public_bytes(Encoding.DER)), "reason": 1}
            status, _, body = await client.post(env.directory["revokeCert"], revoke)
            assert status == 200, body
            status, _, body = await client.post(env.directory["revokeCert"], revoke)
            assert body["type"] == PROBLEM + "alreadyRevoked"
            async with env.session.get(info_url) as response:
                revoked = (await response.json())["suggestedWindow"]
            assert revoked["start"] < window["start"]
            assert store.get_certificate(certs[0].serial_number).revoked_by.startswith("acme:")  # type: ignore[union-attr]
            # A second order for the same names reuses the valid authorizations.
            _, again = await client.order("a.example.test")
            assert again["status"] == "ready"

    run(main())


def test_refusals_name_their_type_and_change_nothing(
    ca: CertificateAuthority, store: SQLiteStore
) -> None:
    async def main() -> None:
        async with environment(ca, store) as env:
            client = await env.client()
            new_order = env.directory["newOrder"]
            payload = {"identifiers": [{"type": "dns", "value": "x.example.test"}]}
            before = env.counts()

            async def refused(
                kind: str, status: int, body: bytes, content_type: str = JOSE
            ) -> None:
                code, headers, problem = await client.post_raw(new_order, body, content_type)
                assert code == status and problem["type"] == PROBLEM + kind, problem
                assert headers["Content-Type"] == "application/problem+json"
                assert "Replay-Nonce" in headers
                assert env.counts() == before

            nonce = await client.nonce()
            body = client.sign(new_order, payload, nonce, kid=client.kid)
            code, _, _ = await client.post_raw(new_order, body)
            assert code == 201
            before = env.counts()
            await refused("badNonce", 400, body)  # the same nonce again
            await refused(
                "unauthorized",
                403,
                client.sign(f"{new_order}x", payload, await client.nonce(), kid=client.kid),
            )
            stranger = JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
            await refused(
                "malformed",
                400,
                client.sign(new_order, payload, await client.nonce(), kid=client.kid, key=stranger),
            )
            protected = b64(
                json.dumps(
                    {
                        "alg": "none",
                        "nonce": await client.nonce(),
                        "url": new_order,
                        "kid": client.kid,
                    }
                ).encode()
            )
            none = json.dumps(
                {
                    "protected": protected,
                    "payload": b64(json.dumps(payload).encode()),
                    "signature": "",
                }
            ).encode()
            await refused("badSignatureAlgorithm", 400, none)
            await refused("malformed", 400, b"{not json")
            await refused("malformed", 413, b"{" + b" " * 70_000 + b"}")
            await refused(
                "malformed",
                415,
                client.sign(new_order, payload, await client.nonce(), kid=client.kid),
                "application/json",
            )
            rejected = {"identifiers": [{"type": "dns", "value": "UPPER.example.test"}]}
            await refused(
                "rejectedIdentifier",
                400,
                client.sign(new_order, rejected, await client.nonce(), kid=client.kid),
            )
            # No account for this key: onlyReturnExisting says so and creates none.
            other = Client(env.session, env.directory)
            code, _, problem = await other.post(
                env.directory["newAccount"], {"onlyReturnExisting": True}, jwk=True
            )
            assert code == 400 and problem["type"] == PROBLEM + "accountDoesNotExist"
            assert env.counts() == before

    run(main())


def test_finalize_refusals(ca: CertificateAuthority, store: SQLiteStore) -> None:
    async def main() -> None:
        async with environment(ca, store) as env:
            client = await env.client()
            order_url, order = await client.order("f.example.test")
            status, problem = await client.finalize(order, ["f.example.test"])
            assert status == 403 and problem["type"] == PROBLEM + "orderNotReady"
            await client.authorize(order, env.tokens)
            status, problem = await client.finalize(order, ["f.example.test", "evil.example.test"])
            assert status == 400 and problem["type"] == PROBLEM + "badCSR"
            assert "evil.example.test" in problem["detail"]
            _, _, order = await client.post(order_url, None)
            assert order["status"] == "ready"  # a bad CSR does not spend the order
            # Another account can neither read nor finalize it.
            intruder = await env.client()
            code, _, problem = await intruder.post(order_url, None)
            assert code == 403 and problem["type"] == PROBLEM + "unauthorized"

    run(main())


def test_name_constraints_and_rate_limits(ca: CertificateAuthority, store: SQLiteStore) -> None:
    policy = IdentifierPolicy(NameConstraints.build(permit_dns=["example.test"]))

    async def main() -> None:
        async with environment(ca, store, policy=policy, order_burst=2, order_rate=0.01) as env:
            client = await env.client()
            code, _, problem = await client.post(
                env.directory["newOrder"],
                {"identifiers": [{"type": "dns", "value": "a.other.org"}]},
            )
            assert code == 400 and problem["type"] == PROBLEM + "rejectedIdentifier"
            await client.order("r.example.test")
            code, headers, problem = await client.post(
                env.directory["newOrder"],
                {"identifiers": [{"type": "dns", "value": "s.example.test"}]},
            )
            assert code == 429 and problem["type"] == PROBLEM + "rateLimited"
            assert int(headers["Retry-After"]) > 0

    run(main())


def test_fifty_concurrent_orders_get_unique_serials(
    ca: CertificateAuthority, store: SQLiteStore
) -> None:
    async def one(env: Env, i: int) -> int:
        client = await env.client()
        name = f"c{i}.example.test"
        _, order = await client.order(name)
        await client.authorize(order, env.tokens)
        status, order = await client.finalize(order, [name])
        assert status == 200, order
        _, _, chain = await client.post(order["certificate"], None)
        return x509.load_pem_x509_certificates(chain)[0].serial_number

    async def main() -> list[int]:
        async with environment(ca, store) as env:
            return await asyncio.gather(*(one(env, i) for i in range(50)))

    serials = run(main())
    assert len(set(serials)) == 50
    assert {r.serial for r in store.list_certificates()} >= set(serials)


@pytest.mark.parametrize("field", ["contact", "status"])
def test_account_update_and_deactivation(
    ca: CertificateAuthority, store: SQLiteStore, field: str
) -> None:
    async def main() -> None:
        async with environment(ca, store) as env:
            client = await env.client()
            assert client.kid is not None
            if field == "contact":
                code, _, account = await client.post(
                    client.kid, {"contact": ["mailto:ops@example.test"]}
                )
                assert code == 200 and account["contact"] == ["mailto:ops@example.test"]
            else:
                code, _, account = await client.post(client.kid, {"status": "deactivated"})
                assert code == 200 and account["status"] == "deactivated"
                code, _, problem = await client.post(
                    env.directory["newOrder"],
                    {"identifiers": [{"type": "dns", "value": "d.example.test"}]},
                )
                assert code == 403 and problem["type"] == PROBLEM + "unauthorized"

    run(main())


def test_external_account_binding_required(ca: CertificateAuthority, store: SQLiteStore) -> None:
    mac = b"m" * 32

    async def main() -> None:
        async with environment(ca, store, eab_keys={"kid-1": mac}, eab_required=True) as env:
            assert env.directory["meta"]["externalAccountRequired"] is True
            client = Client(env.session, env.directory)
            url = env.directory["newAccount"]
            code, _, problem = await client.post(url, {"termsOfServiceAgreed": True}, jwk=True)
            assert code == 403 and problem["type"] == PROBLEM + "externalAccountRequired"
            binding = acme_jws.JWS.sign(
                json.dumps(client.key.public_key().to_json()).encode(),
                key=jwk.JWKOct(key=mac),
                alg=jwa.HS256,
                nonce=None,
                url=url,
                kid="kid-1",
            )
            payload = {"termsOfServiceAgreed": True, "externalAccountBinding": binding.to_json()}
            code, _, account = await client.post(url, payload, jwk=True)
            assert code == 201, account
            wrong = acme_jws.JWS.sign(
                json.dumps(client.key.public_key().to_json()).encode(),
                key=jwk.JWKOct(key=b"x" * 32), alg=jwa.HS256, nonce=None, url=url, kid="kid-1",
            )  # fmt: skip
            other = Client(env.session, env.directory)
            payload = {"termsOfServiceAgreed": True, "externalAccountBinding": wrong.to_json()}
            code, _, problem = await other.post(url, payload, jwk=True)
            assert code == 403 and problem["type"] == PROBLEM + "unauthorized"

    run(main())


def test_short_profile_and_replaces(ca: CertificateAuthority, store: SQLiteStore) -> None:
    async def issue(env: Env, client: Client, name: str, **extra: Any) -> x509.Certificate:
        identifiers = [{"type": "dns", "value": name}]
        code, _, order = await client.post(
            env.directory["newOrder"], {"identifiers": identifiers, **extra}
        )
        assert code == 201, order
        for key, value in extra.items():
            assert order[key] == value
        await client.authorize(order, env.tokens)
        code, order = await client.finalize(order, [name])
        assert code == 200, order
        _, _, chain = await client.post(order["certificate"], None)
        return x509.load_pem_x509_certificates(chain)[0]

    async def main() -> None:
        async with environment(ca, store) as env:
            assert set(env.directory["meta"]["profiles"]) == {"default", "short"}
            client = await env.client()
            short = await issue(env, client, "p.example.test", profile="short")
            life = short.not_valid_after_utc - short.not_valid_before_utc
            assert life <= timedelta(days=6, minutes=5)
            from tlsgate.acme.ari import cert_id

            await issue(env, client, "p.example.test", replaces=cert_id(short))
            code, _, problem = await client.post(
                env.directory["newOrder"],
                {"identifiers": [{"type": "dns", "value": "p.example.test"}], "profile": "long"},
            )
            assert code == 400 and "profile" in problem["detail"]
            intruder = await env.client()
            code, _, problem = await intruder.post(
                env.directory["newOrder"],
                {
                    "identifiers": [{"type": "dns", "value": "p.example.test"}],
                    "replaces": cert_id(short),
                },
            )
            assert code == 403 and problem["type"] == PROBLEM + "unauthorized"

    run(main())


def test_wildcard_through_dns01(ca: CertificateAuthority, store: SQLiteStore) -> None:
    """A wildcard can only be proved with dns-01: the TXT record comes from a real DNS server."""
    records: dict[tuple[str, str], list[str]] = {}

    async def main() -> None:
        async with dns_server(records) as dns:
            async with environment(ca, store) as env:
                env.server.settings = dataclasses.replace(
                    env.server.settings,
                    validation=dataclasses.replace(
                        env.server.settings.validation, dns_resolver=dns
                    ),
                )
                client = await env.client()
                _, order = await client.order("*.w.example.test")
                _, _, authz = await client.post(order["authorizations"][0], None)
                assert (
                    authz["wildcard"] is True and authz["identifier"]["value"] == "w.example.test"
                )
                assert [c["type"] for c in authz["challenges"]] == ["dns-01"]
                challenge = authz["challenges"][0]
                key_authz = f"{challenge['token']}.{client.thumbprint()}"
                records[("_acme-challenge.w.example.test", "TXT")] = [dns01_txt_value(key_authz)]
                await client.post(challenge["url"], {})
                for _ in range(200):
                    _, _, authz = await client.post(order["authorizations"][0], None)
                    if authz["status"] != "pending":
                        break
                    await asyncio.sleep(0.02)
                assert authz["status"] == "valid", authz
                code, order = await client.finalize(order, ["*.w.example.test"])
                assert code == 200 and order["status"] == "valid", order

    run(main())


def test_key_change_moves_the_account_to_the_new_key(
    ca: CertificateAuthority, store: SQLiteStore
) -> None:
    async def main() -> None:
        async with environment(ca, store) as env:
            client = await env.client()
            assert client.kid is not None
            old_key = client.key
            new_key = JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
            url = env.directory["keyChange"]
            change = {"account": client.kid, "oldKey": old_key.public_key().to_json()}
            inner = acme_jws.JWS.sign(
                json.dumps(change).encode(), key=new_key, alg=jwa.ES256, nonce=None, url=url
            )
            code, _, account = await client.post(url, inner.to_json())
            assert code == 200, account
            client.key = new_key
            code, _, _ = await client.post(client.kid, None)
            assert code == 200  # the new key works...
            client.key = old_key
            code, _, problem = await client.post(client.kid, None)
            assert code == 400 and problem["type"] == PROBLEM + "malformed"  # ...the old one not
            # A key that already belongs to another account: 409 with that account's URL.
            other = await env.client()
            client.key = new_key
            change = {"account": client.kid, "oldKey": new_key.public_key().to_json()}
            taken = acme_jws.JWS.sign(
                json.dumps(change).encode(), key=other.key, alg=jwa.ES256, nonce=None, url=url
            )
            code, headers, problem = await client.post(url, taken.to_json())
            assert code == 409 and headers["Location"] == other.kid

    run(main())


def test_revoke_with_the_certificate_key_and_nonce_endpoints(
    ca: CertificateAuthority, store: SQLiteStore
) -> None:
    async def main() -> None:
        async with environment(ca, store) as env:
            async with env.session.get(env.directory["newNonce"]) as response:
                assert response.status == 204 and response.headers["Replay-Nonce"]
                assert response.headers["Cache-Control"] == "no-store"
                assert 'rel="index"' in response.headers["Link"]
            client = await env.client()
            _, order = await client.order("k.example.test")
            await client.authorize(order, env.tokens)
            private = ec.generate_private_key(ec.SECP256R1())
            csr = (
                x509.CertificateSigningRequestBuilder()
                .subject_name(x509.Name([]))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName("k.example.test")]), False)
                .sign(private, hashes.SHA256())
            )
            code, _, order = await client.post(
                order["finalize"], {"csr": b64(csr.public_bytes(Encoding.DER))}
            )
            assert code == 200, order
            _, _, chain = await client.post(order["certificate"], None)
            cert = x509.load_pem_x509_certificates(chain)[0]
            payload = {"certificate": b64(cert.public_bytes(Encoding.DER))}
            # Signed by a stranger's key: refused, nothing revoked.
            stranger = Client(env.session, env.directory)
            code, _, problem = await stranger.post(env.directory["revokeCert"], payload, jwk=True)
            assert code == 403 and problem["type"] == PROBLEM + "unauthorized"
            # Signed with the certificate's own key (a key holder without the account).
            holder = Client(env.session, env.directory)
            holder.key = JWKEC(key=private)
            code, _, body = await holder.post(env.directory["revokeCert"], payload, jwk=True)
            assert code == 200, body
            record = store.get_certificate(cert.serial_number)
            assert record.status.value == "revoked"
            assert record.revoked_by == "acme:certificate-key"

    run(main())

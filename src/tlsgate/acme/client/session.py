"""An async ACME client (RFC 8555): what `serve` and `tlsgate cert` will use with any ACME CA.

One object per (directory, account key). It keeps the nonce the server last handed out, retries a
``badNonce`` with the fresh one the error carries (Pebble rejects 5 % of good nonces on purpose,
and RFC 8555 6.5 says clients should retry), honours ``Retry-After`` while polling, and never
waits without a bound. Challenges are answered by a :class:`Solver` the caller provides (the
proxy's http-01 route, its tls-alpn-01 certificate, a dns-01 hook), so the client itself only
speaks HTTP to the CA.

Trust in the CA's HTTPS certificate is the caller's ``ssl`` context (for a private CA: its root);
there is no switch that turns verification off.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import aiohttp
from acme import jws as acme_jws
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from josepy import jwa
from josepy.json_util import decode_b64jose
from josepy.jwk import JWK, JWKEC, JWKOct

from tlsgate.acme import jose
from tlsgate.acme.ari import cert_id
from tlsgate.acme.okp import EdDSA
from tlsgate.errors import TlsgateError
from tlsgate.pki.keys import PrivateKey, load_private_key, private_key_pem

__all__ = ["AcmeClient", "AcmeClientError", "Order", "Solver", "stored_account_key"]

NONCE_RETRIES = 5
_AUTHZ_FINAL = ("valid", "invalid", "deactivated", "expired", "revoked")


class AcmeClientError(TlsgateError):
    """The CA refused, or could not be reached; ``problem`` is its RFC 7807 document if any."""

    def __init__(self, message: str, problem: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.problem = dict(problem or {})

    @property
    def type(self) -> str:
        return str(self.problem.get("type", ""))


class Solver(Protocol):
    """Puts a challenge answer in place (and takes it away) for one challenge type."""

    challenge_type: str

    async def present(self, identifier: str, token: str, key_authorization: str) -> None: ...

    async def cleanup(self, identifier: str, token: str) -> None: ...


@dataclass(frozen=True)
class Order:
    url: str
    body: Mapping[str, Any]

    @property
    def status(self) -> str:
        return str(self.body.get("status", ""))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _algorithm(key: JWK) -> jwa.JWASignature:
    name = type(key.key).__name__
    if "Ed25519" in name:
        return EdDSA
    if "RSA" in name:
        return jwa.RS256
    size = getattr(key.key, "key_size", 256)
    return jwa.ES384 if size == 384 else jwa.ES256


class AcmeClient:
    def __init__(
        self,
        directory_url: str,
        account_key: JWK,
        *,
        ssl_context: ssl.SSLContext | None = None,
        contact: Sequence[str] = (),
        session: aiohttp.ClientSession | None = None,
        poll_interval: float = 1.0,
        timeout: float = 120.0,
    ) -> None:
        self.directory_url = directory_url
        self.key = account_key
        self.alg = _algorithm(account_key)
        self.contact = tuple(contact)
        self.ssl = ssl_context if ssl_context is not None else ssl.create_default_context()
        self._session = session
        self._own_session = session is None
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.kid: str | None = None
        self._directory: dict[str, Any] | None = None
        self._nonce: str | None = None

    async def __aenter__(self) -> AcmeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=30),
                connector=aiohttp.TCPConnector(ssl=self.ssl),
            )
        return self._session

    # -- plumbing -----------------------------------------------------------------------------
    async def directory(self) -> dict[str, Any]:
        if self._directory is None:
            try:
                async with self.session.get(self.directory_url) as response:
                    if response.status != 200:
                        raise AcmeClientError(f"directory answered {response.status}")
                    self._directory = await response.json()
            except aiohttp.ClientConnectorCertificateError as exc:
                raise AcmeClientError(
                    f"{self.directory_url}: the ACME server's certificate is not trusted "
                    f"({exc.certificate_error}); for a private CA, trust its root explicitly"
                ) from None
            except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError) as exc:
                reason = str(exc) or type(exc).__name__
                raise AcmeClientError(
                    f"cannot read the ACME directory {self.directory_url}: {reason}"
                ) from None
        return self._directory

    async def _new_nonce(self) -> str:
        url = (await self.directory())["newNonce"]
        async with self.session.head(url) as response:
            nonce = response.headers.get("Replay-Nonce")
        if not nonce:
            raise AcmeClientError("newNonce answered without a Replay-Nonce")
        return nonce

    def _sign(self, url: str, payload: Any, nonce: str, *, use_jwk: bool) -> bytes:
        body = b"" if payload is None else json.dumps(payload).encode()
        kid = None if use_jwk else self.kid
        signed = acme_jws.JWS.sign(
            body, key=self.key, alg=self.alg, nonce=decode_b64jose(nonce), url=url, kid=kid
        )
        data: bytes = signed.json_dumps().encode()
        return data

    async def post(
        self, url: str, payload: Any, *, use_jwk: bool = False
    ) -> tuple[int, Mapping[str, str], bytes]:
        """One signed POST (``payload`` None: POST-as-GET); refusals raise AcmeClientError."""
        for _ in range(NONCE_RETRIES):
            nonce = self._nonce or await self._new_nonce()
            self._nonce = None
            body = self._sign(url, payload, nonce, use_jwk=use_jwk)
            try:
                async with self.session.post(
                    url, data=body, headers={"Content-Type": jose.CONTENT_TYPE}
                ) as response:
                    data = await response.read()
                    headers = dict(response.headers)
                    status = response.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise AcmeClientError(f"POST {url}: {exc}") from None
            self._nonce = headers.get("Replay-Nonce")
            if status < 400:
                return status, headers, data
            try:
                problem = json.loads(data)
            except ValueError:
                problem = {"detail": data[:200].decode(errors="replace")}
            if problem.get("type") == "urn:ietf:params:acme:error:badNonce":
                continue  # RFC 8555 6.5: retry with the nonce that came with the error
            raise AcmeClientError(
                f"{url}: {problem.get('type', status)}: {problem.get('detail', '')}", problem
            )
        raise AcmeClientError(f"{url}: the server refused {NONCE_RETRIES} nonces in a row")

    async def _post_json(self, url: str, payload: Any) -> tuple[dict[str, Any], Mapping[str, str]]:
        _, headers, data = await self.post(url, payload)
        return json.loads(data), headers

    # -- the protocol -------------------------------------------------------------------------
    async def register(self, *, eab: tuple[str, bytes] | None = None) -> str:
        """Create the account, or find it if this key has one; returns its URL (the kid)."""
        url = (await self.directory())["newAccount"]
        payload: dict[str, Any] = {"termsOfServiceAgreed": True}
        if self.contact:
            payload["contact"] = [f"mailto:{c}" if ":" not in c else c for c in self.contact]
        if eab is not None:
            kid, mac = eab
            binding = acme_jws.JWS.sign(
                json.dumps(self.key.public_key().to_json()).encode(),
                key=JWKOct(key=mac),
                alg=jwa.HS256,
                nonce=None,
                url=url,
                kid=kid,
            )
            payload["externalAccountBinding"] = binding.to_json()
        _, headers, _ = await self.post(url, payload, use_jwk=True)
        self.kid = headers.get("Location")
        if not self.kid:
            raise AcmeClientError("newAccount answered without the account URL")
        return self.kid

    async def new_order(
        self, names: Sequence[str], *, replaces: str | None = None, profile: str | None = None
    ) -> Order:
        url = (await self.directory())["newOrder"]
        payload: dict[str, Any] = {"identifiers": [_identifier(n) for n in names]}
        if replaces is not None:
            payload["replaces"] = replaces
        if profile is not None:
            payload["profile"] = profile
        _, headers, data = await self.post(url, payload)
        return Order(headers["Location"], json.loads(data))

    async def authorize(self, order: Order, solvers: Mapping[str, Solver]) -> None:
        """Prove control of every identifier, with the first offered type we can solve."""
        for authz_url in order.body["authorizations"]:
            authz, _ = await self._post_json(authz_url, None)
            if authz["status"] == "valid":
                continue
            # Our preference order (the solvers' order), not the CA's: it may shuffle them.
            offered = {c["type"]: c for c in authz["challenges"]}
            challenge = next((offered[t] for t in solvers if t in offered), None)
            if challenge is None:
                raise AcmeClientError(
                    f"{authz['identifier']['value']}: the CA offers {', '.join(offered)}, "
                    f"tlsgate is set up for {', '.join(solvers)}"
                )
            identifier = authz["identifier"]["value"]
            if authz.get("wildcard"):
                identifier = f"*.{identifier}"
            solver = solvers[challenge["type"]]
            key_authz = jose.key_authorization(challenge["token"], self.key.public_key())
            await solver.present(identifier, challenge["token"], key_authz)
            try:
                await self.post(challenge["url"], {})
                authz = await self._poll(
                    authz_url, done=("valid", "invalid", "deactivated", "expired", "revoked")
                )
            finally:
                await solver.cleanup(identifier, challenge["token"])
            if authz["status"] != "valid":
                errors = [c.get("error", {}) for c in authz["challenges"]]
                detail = "; ".join(str(e.get("detail", "")) for e in errors if e)
                raise AcmeClientError(f"{identifier}: authorization {authz['status']}: {detail}")

    async def _poll(self, url: str, *, done: Sequence[str]) -> dict[str, Any]:
        async with asyncio.timeout(self.timeout):
            while True:
                body, headers = await self._post_json(url, None)
                if body.get("status") in done:
                    return body
                wait = self.poll_interval
                retry = headers.get("Retry-After")
                if retry is not None and retry.isdigit():
                    wait = min(max(float(retry), 0.05), 60.0)
                await asyncio.sleep(wait)

    async def finalize(self, order: Order, csr: x509.CertificateSigningRequest) -> Order:
        await self.post(order.body["finalize"], {"csr": _b64(csr.public_bytes(Encoding.DER))})
        body = await self._poll(order.url, done=("valid", "invalid"))
        if body["status"] != "valid":
            raise AcmeClientError(
                f"order {body['status']}: {body.get('error', {})}", body.get("error")
            )
        return Order(order.url, body)

    async def download(self, order: Order) -> bytes:
        _, _, chain = await self.post(order.body["certificate"], None)
        if not chain.startswith(b"-----BEGIN CERTIFICATE-----"):
            raise AcmeClientError("the certificate URL did not answer a PEM chain")
        return chain

    async def obtain(
        self,
        names: Sequence[str],
        key: PrivateKey,
        solvers: Mapping[str, Solver],
        *,
        replaces: str | None = None,
        profile: str | None = None,
    ) -> bytes:
        """The whole flow for ``names``, certified for ``key``: the PEM chain."""
        if self.kid is None:
            await self.register()
        try:
            order = await self.new_order(names, replaces=replaces, profile=profile)
        except AcmeClientError as exc:
            if replaces is None or exc.type.endswith((":rateLimited", ":unauthorized")):
                raise
            # RFC 9773 section 5: a CA that will not take this ``replaces`` (it does not know
            # the certificate, or it was replaced already) still owes us a plain order.
            order = await self.new_order(names, profile=profile)
        if order.status not in ("ready", "valid"):
            await self.authorize(order, solvers)
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([]))
            .add_extension(x509.SubjectAlternativeName([_general_name(n) for n in names]), False)
            .sign(key, hashes.SHA256() if not _is_ed25519(key) else None)
        )
        order = await self.finalize(order, csr)
        return await self.download(order)

    async def renewal_window(self, cert: x509.Certificate) -> tuple[datetime, datetime] | None:
        """The CA's suggested renewal window for ``cert`` (RFC 9773), or None without ARI."""
        base = (await self.directory()).get("renewalInfo")
        if not base:
            return None
        try:
            async with self.session.get(f"{base}/{cert_id(cert)}") as response:
                if response.status != 200:
                    return None
                window = (await response.json())["suggestedWindow"]
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError):
            return None

        def parse(text: str) -> datetime:
            return datetime.fromisoformat(text.replace("Z", "+00:00"))

        return parse(window["start"]), parse(window["end"])


def _identifier(name: str) -> dict[str, str]:
    try:
        return {"type": "ip", "value": str(ipaddress.ip_address(name))}
    except ValueError:
        return {"type": "dns", "value": name}


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _is_ed25519(key: PrivateKey) -> bool:
    return type(key).__name__.startswith("Ed25519")


class AccountKeys(Protocol):
    def client_account_key(self, directory: str, create: Callable[[], bytes]) -> bytes: ...


def stored_account_key(store: AccountKeys, directory: str) -> JWKEC:
    """This machine's account key at ``directory``: created once (P-256) and kept in the
    store, so every run of `serve` and `tlsgate cert` uses the same account at that CA."""

    def create() -> bytes:
        return private_key_pem(ec.generate_private_key(ec.SECP256R1()))

    key = load_private_key(store.client_account_key(directory, create), source="account key")
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise AcmeClientError("the stored ACME account key is not an EC key")
    return JWKEC(key=key)

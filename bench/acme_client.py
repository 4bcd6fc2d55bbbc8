"""One ACME client for bench/acme.py: a full RFC 8555 flow per call, the same for every server.

A flow is what a fresh client does to get one certificate: GET the directory, HEAD newNonce,
create an account (a new P-256 key), order one DNS name, read the authorization, answer its
http-01 challenge (from :class:`Http01Responder`), poll the authorization, finalize with a fresh
P-256 CSR, poll the order, download the chain. Flows share one keep-alive session per run, or
(``session=None``) each opens its own, like a separate client process would.

JWS (ES256) is signed here with ``cryptography`` directly rather than with certbot's ``acme``
library: bench/acme.py, run as a script, would shadow that library's top-level name.
A ``badNonce`` answer is retried with the nonce it carries (RFC 8555 6.5).

Every flow checks its result: the leaf's SAN must be exactly the ordered name and its public
key the CSR's. Anything else raises :class:`FlowError`, naming the step.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import ssl
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

JOSE = "application/jose+json"
BAD_NONCE = "urn:ietf:params:acme:error:badNonce"
#: Pause between two polls of an authorization or an order.
POLL_INTERVAL = 0.05
#: A flow gives up polling after this long.
POLL_LIMIT = 60.0
#: Attempts per request when the server answers badNonce.
NONCE_ATTEMPTS = 5
#: Per-request timeout.
REQUEST_TIMEOUT = 30.0


class FlowError(Exception):
    """A flow did not end with the right certificate; the message names the step."""


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class AccountKey:
    """A P-256 account key: its JWK, its RFC 7638 thumbprint, and ES256 JWS signing."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        numbers = self.key.public_key().public_numbers()
        self.jwk = {
            "crv": "P-256",
            "kty": "EC",
            "x": b64(numbers.x.to_bytes(32, "big")),
            "y": b64(numbers.y.to_bytes(32, "big")),
        }
        canonical = json.dumps(self.jwk, sort_keys=True, separators=(",", ":")).encode()
        self.thumbprint = b64(hashlib.sha256(canonical).digest())

    def sign(self, url: str, payload: Any, nonce: str, kid: str | None) -> bytes:
        """A flattened JWS; ``payload`` None is POST-as-GET (empty payload)."""
        protected: dict[str, Any] = {"alg": "ES256", "nonce": nonce, "url": url}
        if kid is None:
            protected["jwk"] = self.jwk
        else:
            protected["kid"] = kid
        header = b64(json.dumps(protected).encode())
        body = "" if payload is None else b64(json.dumps(payload).encode())
        der = self.key.sign(f"{header}.{body}".encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return json.dumps(
            {"protected": header, "payload": body, "signature": b64(signature)}
        ).encode()


class Http01Responder:
    """The http-01 answers of every flow in flight, served on 127.0.0.1:port; counts GETs."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.answers: dict[str, str] = {}
        self.hits: Counter[str] = Counter()
        self.misses = 0
        self._runner: web.AppRunner | None = None

    async def _answer(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        answer = self.answers.get(token)
        if answer is None:
            self.misses += 1
            return web.Response(status=404)
        self.hits[token] += 1
        return web.Response(text=answer, content_type="application/octet-stream")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/.well-known/acme-challenge/{token}", self._answer)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, backlog=1024).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@dataclass
class FlowStats:
    """What one flow cost on the wire (filled in as it goes, also when it fails)."""

    requests: int = 0
    bad_nonces: int = 0
    authz_polls: int = 0
    order_polls: int = 0
    validation_gets: int = 0
    steps: dict[str, float] = field(default_factory=dict)


class Flow:
    """One client getting one certificate for ``name`` from the server at ``directory_url``."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        directory_url: str,
        responder: Http01Responder,
        name: str,
    ) -> None:
        self.session = session
        self.directory_url = directory_url
        self.responder = responder
        self.name = name
        self.key = AccountKey()
        self.kid: str | None = None
        self.nonce: str | None = None
        self.directory: dict[str, Any] = {}
        self.stats = FlowStats()

    async def _new_nonce(self, url: str) -> str:
        async with self.session.head(url) as response:
            self.stats.requests += 1
            nonce = response.headers.get("Replay-Nonce")
            if response.status not in (200, 204) or not nonce:
                raise FlowError(f"newNonce: HTTP {response.status}, no Replay-Nonce")
            return nonce

    async def post(
        self, step: str, url: str, payload: Any, *, ok: tuple[int, ...] = (200,)
    ) -> tuple[int, dict[str, str], Any]:
        """A signed POST; badNonce is retried; any status outside ``ok`` raises FlowError."""
        for _ in range(NONCE_ATTEMPTS):
            if self.nonce is None:
                self.nonce = await self._new_nonce(self.directory["newNonce"])
            body = self.key.sign(url, payload, self.nonce, self.kid)
            self.nonce = None
            async with self.session.post(
                url, data=body, headers={"Content-Type": JOSE}
            ) as response:
                self.stats.requests += 1
                data = await response.read()
                headers = dict(response.headers)
                status = response.status
            self.nonce = headers.get("Replay-Nonce")
            kind = headers.get("Content-Type", "")
            parsed: Any = json.loads(data) if "json" in kind else data
            if status == 400 and isinstance(parsed, dict) and parsed.get("type") == BAD_NONCE:
                self.stats.bad_nonces += 1
                continue
            if status not in ok:
                detail = parsed if isinstance(parsed, dict) else data[:200].decode(errors="replace")
                raise FlowError(f"{step}: HTTP {status}: {detail}")
            return status, headers, parsed
        raise FlowError(f"{step}: badNonce {NONCE_ATTEMPTS} times in a row")

    async def _poll(self, step: str, url: str, waiting: tuple[str, ...]) -> dict[str, Any]:
        deadline = time.monotonic() + POLL_LIMIT
        while True:
            _, _, body = await self.post(step, url, None)
            if step == "authz":
                self.stats.authz_polls += 1
            else:
                self.stats.order_polls += 1
            if body.get("status") not in waiting:
                result: dict[str, Any] = body
                return result
            if time.monotonic() > deadline:
                raise FlowError(f"{step}: still {body.get('status')} after {POLL_LIMIT:g} s")
            await asyncio.sleep(POLL_INTERVAL)

    def _mark(self, step: str, since: float) -> float:
        now = time.perf_counter()
        self.stats.steps[step] = now - since
        return now

    async def run(self) -> x509.Certificate:
        t = time.perf_counter()
        async with self.session.get(self.directory_url) as response:
            self.stats.requests += 1
            if response.status != 200:
                raise FlowError(f"directory: HTTP {response.status}")
            self.directory = await response.json(content_type=None)
        t = self._mark("directory", t)
        _, headers, _ = await self.post(
            "newAccount",
            self.directory["newAccount"],
            {"termsOfServiceAgreed": True},
            ok=(201,),
        )
        self.kid = headers["Location"]
        t = self._mark("account", t)
        _, headers, order = await self.post(
            "newOrder",
            self.directory["newOrder"],
            {"identifiers": [{"type": "dns", "value": self.name}]},
            ok=(201,),
        )
        order_url = headers["Location"]
        if len(order["authorizations"]) != 1:
            raise FlowError(f"newOrder: {len(order['authorizations'])} authorizations")
        t = self._mark("order", t)
        authz_url = order["authorizations"][0]
        _, _, authz = await self.post("authz", authz_url, None)
        if authz["status"] != "pending":
            raise FlowError(f"authz: status {authz['status']} (a reused authorization?)")
        challenge = next((c for c in authz["challenges"] if c["type"] == "http-01"), None)
        if challenge is None:
            raise FlowError("authz: no http-01 challenge")
        token = challenge["token"]
        self.responder.answers[token] = f"{token}.{self.key.thumbprint}"
        try:
            await self.post("challenge", challenge["url"], {})
            authz = await self._poll("authz", authz_url, ("pending",))
        finally:
            self.responder.answers.pop(token, None)
            self.stats.validation_gets = self.responder.hits.pop(token, 0)
        if authz["status"] != "valid":
            raise FlowError(f"authz: status {authz['status']}: {authz.get('challenges')}")
        t = self._mark("validation", t)
        csr_key = ec.generate_private_key(ec.SECP256R1())
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([]))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(self.name)]), False)
            .sign(csr_key, hashes.SHA256())
        )
        _, _, order = await self.post(
            "finalize", order["finalize"], {"csr": b64(csr.public_bytes(Encoding.DER))}
        )
        if order.get("status") != "valid":
            order = await self._poll("order", order_url, ("ready", "processing"))
        if order.get("status") != "valid" or "certificate" not in order:
            raise FlowError(f"order: status {order.get('status')}")
        t = self._mark("finalize", t)
        _, _, chain = await self.post("download", order["certificate"], None)
        if not isinstance(chain, bytes):
            raise FlowError("download: not a PEM chain")
        self._mark("download", t)
        return self._check(chain, csr_key)

    def _check(self, chain: bytes, csr_key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
        try:
            leaf = x509.load_pem_x509_certificates(chain)[0]
            san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except (ValueError, x509.ExtensionNotFound) as exc:
            raise FlowError(f"certificate: {exc}") from exc
        names = san.get_values_for_type(x509.DNSName)
        if names != [self.name] or san.get_values_for_type(x509.IPAddress):
            raise FlowError(f"certificate: SAN {names}, ordered {self.name}")
        spki = PublicFormat.SubjectPublicKeyInfo
        if leaf.public_key().public_bytes(Encoding.DER, spki) != csr_key.public_key().public_bytes(
            Encoding.DER, spki
        ):
            raise FlowError("certificate: public key is not the CSR's")
        return leaf


@dataclass
class FlowResult:
    name: str
    seconds: float
    stats: FlowStats
    error: str | None = None


def new_session(tls: ssl.SSLContext, limit: int) -> aiohttp.ClientSession:
    """A keep-alive session trusting ``tls``'s roots, at most ``limit`` connections."""
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=tls, limit=limit), timeout=timeout
    )


async def run_flow(
    directory_url: str,
    tls: ssl.SSLContext,
    responder: Http01Responder,
    name: str,
    session: aiohttp.ClientSession | None = None,
) -> FlowResult:
    """One full flow; never raises (a failure is in ``error``).

    With ``session`` the flow shares its keep-alive connections; without, it opens its own
    session (its own TLS connections), like a separate client process.
    """
    start = time.perf_counter()
    async with contextlib.AsyncExitStack() as stack:
        if session is None:
            session = await stack.enter_async_context(new_session(tls, 4))
        flow = Flow(session, directory_url, responder, name)
        try:
            await flow.run()
            error = None
        except FlowError as exc:
            error = str(exc)
        except (aiohttp.ClientError, TimeoutError, KeyError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"
    return FlowResult(name, time.perf_counter() - start, flow.stats, error)

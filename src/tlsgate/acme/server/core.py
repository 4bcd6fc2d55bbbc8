"""What every ACME endpoint shares: settings, request authentication and answers.

The handlers (``accounts.py``, ``orders.py``, ``certificates.py``) are mixins over
:class:`ServerCore`; ``app.py`` puts them together with the routes. See ``app.py`` for the
shape of the whole.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from josepy.jwk import JWK

from tlsgate.acme.problems import CONTENT_TYPE as PROBLEM_CONTENT_TYPE
from tlsgate.acme.problems import AcmeProblem
from tlsgate.acme.server import jws
from tlsgate.acme.server.nonces import NonceBook, NonceStore
from tlsgate.acme.server.policy import IdentifierPolicy, OrderLimiter, RateLimiter
from tlsgate.acme.server.resources import (
    Urls,
)
from tlsgate.acme.server.validation import ValidationConfig
from tlsgate.ca.authority import CertificateAuthority
from tlsgate.errors import NotFound
from tlsgate.store.acme import (
    AccountStatus,
    AcmeAccount,
)
from tlsgate.store.roles import AcmeServerStore

__all__ = ["AcmeServerSettings", "Context", "ServerCore"]


log = logging.getLogger("tlsgate.acme")

PEM_CHAIN = "application/pem-certificate-chain"
REVOCATION_REASONS = {
    0: x509.ReasonFlags.unspecified,
    1: x509.ReasonFlags.key_compromise,
    3: x509.ReasonFlags.affiliation_changed,
    4: x509.ReasonFlags.superseded,
    5: x509.ReasonFlags.cessation_of_operation,
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class AcmeServerSettings:
    """Policy knobs of `tlsgate ca serve` (defaults: Let's Encrypt's, with a 6-day profile).

    The server's settings; how a site of ``serve`` gets a certificate *from* an ACME CA is
    :class:`tlsgate.config.AcmeSettings`, the client's.
    """

    policy: IdentifierPolicy = field(default_factory=IdentifierPolicy)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    profiles: Mapping[str, timedelta] = field(
        default_factory=lambda: {"default": timedelta(days=90), "short": timedelta(days=6)}
    )
    order_lifetime: timedelta = timedelta(days=7)
    authorization_lifetime: timedelta = timedelta(days=30)
    #: External account binding: key id -> HMAC key; ``eab_required`` refuses accounts without.
    eab_keys: Mapping[str, bytes] = field(default_factory=dict)
    eab_required: bool = False
    #: New orders per account: ``burst`` at once, then ``rate`` per second.
    order_rate: float = 10.0
    order_burst: int = 300
    terms_of_service: str | None = None
    #: How long an order may stay ``processing`` before another node takes it over (finalize
    #: issues in milliseconds, so only a node that stopped takes this long).
    finalize_stale: timedelta = timedelta(minutes=1)
    #: Added to the validation timeout: a challenge ``processing`` for longer than both was left
    #: by a node that stopped (a live one always records an outcome within the timeout).
    validation_stale_margin: timedelta = timedelta(minutes=1)

    @property
    def validation_stale(self) -> timedelta:
        return timedelta(seconds=self.validation.timeout) + self.validation_stale_margin


@dataclass
class Context:
    """One authenticated request: who sent it and what it says."""

    request: jws.VerifiedRequest
    account: AcmeAccount | None


class ServerCore:
    """State and helpers of the server; no routes."""

    def __init__(
        self,
        ca: CertificateAuthority,
        store: AcmeServerStore,
        base_url: str,
        settings: AcmeServerSettings | None = None,
        *,
        nonces: NonceStore | None = None,
        limiter: OrderLimiter | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.ca = ca
        self.store = store
        self.urls = Urls(base_url.rstrip("/"))
        self.settings = settings or AcmeServerSettings()
        self.nonces: NonceStore = nonces or NonceBook()
        self.clock = clock
        self.limiter: OrderLimiter = limiter or RateLimiter(
            self.settings.order_rate, self.settings.order_burst
        )
        self._tasks: set[asyncio.Task[None]] = set()

    def _problem(self, problem: AcmeProblem) -> web.Response:
        response = web.Response(
            status=problem.status, body=problem.to_json(), content_type=PROBLEM_CONTENT_TYPE
        )
        for name, value in problem.headers.items():
            response.headers[name] = value
        return response

    @staticmethod
    def _json(obj: object, status: int = 200, location: str | None = None) -> web.Response:
        response = web.json_response(obj, status=status, dumps=lambda o: json.dumps(o, indent=1))
        if location is not None:
            response.headers["Location"] = location
        return response

    # -- request authentication ----------------------------------------------------------------
    async def _authenticate(self, request: web.Request, rule: jws.KeyRule) -> Context:
        body = await request.read()
        # The account read to check the signature is the one the handler gets: one store read
        # per request, not two (with a database store every read is a round trip).
        seen: dict[str, AcmeAccount] = {}

        def account_key(kid: str) -> JWK:
            seen[kid] = self._account_for_kid(kid)
            return jwk_from_text(seen[kid].jwk)

        verified = jws.verify_request(
            body,
            url=self.urls.base + request.rel_url.path,
            content_type=request.headers.get("Content-Type"),
            rule=rule,
            nonces=self.nonces,
            now=self.clock(),
            account_key=account_key,
        )
        account = None
        if verified.kid is not None:
            account = seen.get(verified.kid) or self._account_for_kid(verified.kid)
        return Context(verified, account)

    def _account_for_kid(self, kid: str) -> AcmeAccount:
        account_id = self.urls.account_id(kid)
        if account_id is None:
            raise AcmeProblem.account_does_not_exist(f"{kid} is not an account URL of this server")
        try:
            account = self.store.get_account(account_id)
        except NotFound:
            raise AcmeProblem.account_does_not_exist() from None
        if account.status is not AccountStatus.VALID:
            raise AcmeProblem.unauthorized(f"the account is {account.status.value}")
        return account

    async def _with_account(self, request: web.Request) -> tuple[Context, AcmeAccount]:
        context = await self._authenticate(request, jws.KeyRule.KID)
        assert context.account is not None  # kid requests always name one
        return context, context.account


# -- payload helpers (shared by the handler modules) ------------------------------------------
def contact_list(payload: Mapping[str, Any]) -> tuple[str, ...]:
    contact = payload.get("contact", [])
    if not isinstance(contact, list) or not all(isinstance(c, str) for c in contact):
        raise AcmeProblem.malformed("contact must be a list of mailto: URLs")
    for url in contact:
        if not url.startswith("mailto:") or "@" not in url or "," in url:
            raise AcmeProblem("unsupportedContact", f"{url!r}: only one mailto: address per entry")
    return tuple(contact)


def identifiers_of(payload: Mapping[str, Any]) -> list[tuple[str, str]]:
    raw = payload.get("identifiers")
    if not isinstance(raw, list) or not raw:
        raise AcmeProblem.malformed("identifiers must be a non-empty list")
    out = []
    for item in raw:
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("type"), str)
            or not isinstance(item.get("value"), str)
        ):
            raise AcmeProblem.malformed("each identifier is {type, value}")
        out.append((item["type"], item["value"]))
    if len(set(out)) != len(out):
        raise AcmeProblem.malformed("an identifier is listed twice")
    return out


def identifier_message(identifier: tuple[str, str]) -> Any:
    from acme import messages

    return messages.Identifier(typ=messages.IdentifierType(identifier[0]), value=identifier[1])


def b64_field(payload: Mapping[str, Any], name: str) -> bytes:
    value = payload.get(name)
    if not isinstance(value, str) or "=" in value:
        raise AcmeProblem.malformed(f"{name} must be unpadded base64url")
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        raise AcmeProblem.malformed(f"{name} must be unpadded base64url") from None


def identifier_values(identifiers: list[tuple[str, str]]) -> list[str]:
    return [value for _, value in identifiers]


@lru_cache(maxsize=4096)
def jwk_from_text(text: str) -> JWK:
    """An account key from its stored JSON; cached, since every request of an account needs it
    and parsing it (and rebuilding the cryptography key) costs more than checking a signature."""
    return jws.load_jwk(json.loads(text))


def jwk_text(jwk: JWK) -> str:
    return json.dumps(jwk.to_json(), sort_keys=True)


def same_key(jwk: JWK, public_key: object) -> bool:
    """Is the JWS key the certificate's key? (revokeCert signed with the certificate's key)"""
    spki = (Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    try:
        mine = jwk.key.public_bytes(*spki)
        theirs = public_key.public_bytes(*spki)  # type: ignore[attr-defined]
    except (AttributeError, ValueError, TypeError):
        return False
    return bool(mine == theirs)

"""Order endpoints (RFC 8555 7.4, 7.5): newOrder, orders, finalize, authorizations and challenges.

A challenge the client says is ready is validated in a background task; the outcome is written
to the challenge and its authorization in one transaction.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from aiohttp import web

from tlsgate.acme import jws
from tlsgate.acme.ari import parse_cert_id
from tlsgate.acme.core import (
    ServerCore,
    b64_field,
    identifier_message,
    identifier_values,
    identifiers_of,
    jwk_from_text,
    log,
)
from tlsgate.acme.orders import check_finalize_csr
from tlsgate.acme.problems import AcmeProblem
from tlsgate.acme.resources import (
    current_authorization_status,
    current_order_status,
    render_authorization,
    render_challenge,
    render_order,
)
from tlsgate.acme.validation import validate
from tlsgate.errors import CSRError, NotFound, PolicyDenied, TlsgateError
from tlsgate.pki.names import parse_identities
from tlsgate.pki.profiles import LeafProfile
from tlsgate.store.acme import (
    AcmeAccount,
    AcmeAuthorization,
    AcmeChallenge,
    AcmeIdentifier,
    AcmeOrder,
    AuthzStatus,
    ChallengeStatus,
    ChallengeType,
    OrderStatus,
    new_id,
)

__all__ = ["OrderHandlers"]


class OrderHandlers(ServerCore):
    """newOrder, order, finalize, authorization and challenge URLs."""

    # -- orders --------------------------------------------------------------------------------
    async def new_order(self, request: web.Request) -> web.Response:
        context, account = await self._with_account(request)
        payload = context.request.payload_json or {}
        now = self.clock()
        wait = self.limiter.take(account.id, now.timestamp())
        if wait > 0:
            raise AcmeProblem.rate_limited(
                "too many new orders for this account", retry_after=max(1, int(wait + 0.999))
            )
        identifiers = identifiers_of(payload)
        refusals = self.settings.policy.check(identifiers)
        if refusals:
            if len(refusals) == 1:
                refusal = refusals[0]
                raise AcmeProblem(refusal.kind, f"{refusal.identifier[1]}: {refusal.detail}")
            raise AcmeProblem.compound(
                "; ".join(f"{r.identifier[1]}: {r.detail}" for r in refusals),
                [
                    (identifier_message(r.identifier), AcmeProblem(r.kind, r.detail))
                    for r in refusals
                ],
            )
        if "notBefore" in payload or "notAfter" in payload:
            raise AcmeProblem.malformed("notBefore/notAfter are not supported: choose a profile")
        profile = payload.get("profile")
        if profile is not None and profile not in self.settings.profiles:
            raise AcmeProblem.malformed(f"unknown profile {profile!r}")
        replaces = payload.get("replaces")
        if replaces is not None:
            self._check_replaces(replaces, account)
        canonical = [self.settings.policy.canonical(i) for i in identifiers]
        order, new_authz, challenges = self._build_order(account, canonical, now, profile, replaces)
        self.store.add_order(order, new_authz, challenges)
        status = current_order_status(order, self._authz_statuses(order, now), now)
        return self._json(render_order(order, status, self.urls), 201, self.urls.order(order.id))

    def _check_replaces(self, replaces: object, account: AcmeAccount) -> None:
        if not isinstance(replaces, str):
            raise AcmeProblem.malformed("replaces must be a CertID string")
        try:
            _, serial = parse_cert_id(replaces)
            record = self.store.get_certificate(serial)
        except (ValueError, NotFound):
            raise AcmeProblem.malformed(
                f"replaces: {replaces!r} names no certificate of this CA"
            ) from None
        if not record.requester.startswith(f"acme:{account.id}/"):
            raise AcmeProblem.unauthorized("replaces names a certificate another account ordered")

    def _build_order(
        self,
        account: AcmeAccount,
        identifiers: list[tuple[str, str]],
        now: datetime,
        profile: str | None,
        replaces: str | None,
    ) -> tuple[AcmeOrder, list[AcmeAuthorization], list[AcmeChallenge]]:
        settings = self.settings
        authz_ids: list[str] = []
        new_authz: list[AcmeAuthorization] = []
        challenges: list[AcmeChallenge] = []
        for kind, value in identifiers:
            wildcard = value.startswith("*.")
            identifier = AcmeIdentifier(kind, value[2:] if wildcard else value)
            reused = self.store.find_valid_authorization(
                account.id, identifier, now, wildcard=wildcard
            )
            if reused is not None:
                authz_ids.append(reused.id)
                continue
            authz = AcmeAuthorization(
                id=new_id(),
                account_id=account.id,
                identifier=identifier,
                status=AuthzStatus.PENDING,
                expires=now + settings.authorization_lifetime,
                created_at=now,
                wildcard=wildcard,
            )
            new_authz.append(authz)
            authz_ids.append(authz.id)
            if wildcard:
                types = [ChallengeType.DNS_01]
            elif kind == "ip":  # RFC 8738 7: no dns-01 for IP addresses
                types = [ChallengeType.HTTP_01, ChallengeType.TLS_ALPN_01]
            else:
                types = [ChallengeType.HTTP_01, ChallengeType.TLS_ALPN_01, ChallengeType.DNS_01]
            for challenge_type in types:
                challenges.append(
                    AcmeChallenge(
                        id=new_id(),
                        authorization_id=authz.id,
                        type=challenge_type,
                        token=secrets.token_urlsafe(32),
                    )
                )
        order = AcmeOrder(
            id=new_id(),
            account_id=account.id,
            identifiers=tuple(AcmeIdentifier(k, v) for k, v in identifiers),
            status=OrderStatus.PENDING,
            expires=now + settings.order_lifetime,
            authorization_ids=tuple(authz_ids),
            created_at=now,
            replaces=replaces,
            profile=profile,
        )
        return order, new_authz, challenges

    def _authz_statuses(self, order: AcmeOrder, now: datetime) -> list[str]:
        statuses = []
        for authz_id in order.authorization_ids:
            authz = self.store.get_authorization(authz_id)
            statuses.append(
                current_authorization_status(authz, self.store.challenges_for(authz_id), now)
            )
        return statuses

    def _owned_order(self, order_id: str, account: AcmeAccount) -> AcmeOrder:
        return _owned(self.store.get_order, order_id, account, "order")

    async def order(self, request: web.Request) -> web.Response:
        _, account = await self._with_account(request)
        order = self._owned_order(request.match_info["id"], account)
        now = self.clock()
        status = current_order_status(order, self._authz_statuses(order, now), now)
        return self._json(render_order(order, status, self.urls))

    async def finalize(self, request: web.Request) -> web.Response:
        context, account = await self._with_account(request)
        order = self._owned_order(request.match_info["id"], account)
        now = self.clock()
        status = current_order_status(order, self._authz_statuses(order, now), now)
        if status != "ready":
            raise AcmeProblem.order_not_ready(f"the order is {status}, not ready")
        payload = context.request.payload_json or {}
        der = b64_field(payload, "csr")
        identifiers = [(i.type, i.value) for i in order.identifiers]
        try:
            checked = check_finalize_csr(der, identifiers)
        except CSRError as exc:
            raise AcmeProblem.bad_csr(str(exc)) from None
        # To processing exactly once: a second concurrent finalize loses here.
        if not self.store.update_order(
            order.id, status=OrderStatus.PROCESSING, expected_status=order.status
        ):
            raise AcmeProblem.order_not_ready("the order is already being finalized")
        life = self.settings.profiles[order.profile or "default"]
        try:
            issued = self.ca.issue(
                parse_identities(identifier_values(identifiers)),
                now=now,
                profile=LeafProfile(lifetime=life),
                csr=checked,
                requester=f"acme:{account.id}/{order.id}",
                order_id=order.id,
            )
        except (PolicyDenied, TlsgateError) as exc:
            problem = AcmeProblem.bad_csr(str(exc))
            self.store.update_order(
                order.id, status=OrderStatus.INVALID, error=problem.to_json().decode()
            )
            raise problem from None
        serial = issued.certificate.serial_number
        self.store.update_order(order.id, status=OrderStatus.VALID, certificate_serial=serial)
        log.info("ACME order %s of %s: issued %X", order.id, account.id, serial)
        order = self.store.get_order(order.id)
        return self._json(render_order(order, "valid", self.urls), 200, self.urls.order(order.id))

    # -- authorizations and challenges ---------------------------------------------------------
    def _owned_authorization(self, authz_id: str, account: AcmeAccount) -> AcmeAuthorization:
        return _owned(self.store.get_authorization, authz_id, account, "authorization")

    async def authorization(self, request: web.Request) -> web.Response:
        context, account = await self._with_account(request)
        authz = self._owned_authorization(request.match_info["id"], account)
        payload = context.request.payload_json
        if payload:
            if payload.get("status") != "deactivated":
                raise AcmeProblem.malformed("an authorization's status can only become deactivated")
            self.store.update_authorization(authz.id, status=AuthzStatus.DEACTIVATED)
            authz = self.store.get_authorization(authz.id)
        challenges = self.store.challenges_for(authz.id)
        return self._json(render_authorization(authz, challenges, self.urls, self.clock()))

    async def challenge(self, request: web.Request) -> web.Response:
        context, account = await self._with_account(request)
        challenge = _found(self.store.get_challenge, request.match_info["id"], "challenge")
        authz = self._owned_authorization(challenge.authorization_id, account)
        if not context.request.is_post_as_get and challenge.status is ChallengeStatus.PENDING:
            # {} (not POST-as-GET): the client is ready; validate once, in the background.
            now = self.clock()
            status = current_authorization_status(authz, self.store.challenges_for(authz.id), now)
            if status != "pending":
                raise AcmeProblem.malformed(f"the authorization is {status}")
            if self.store.update_challenge(
                challenge.id,
                status=ChallengeStatus.PROCESSING,
                expected_status=ChallengeStatus.PENDING,
            ):
                key_authz = jws.key_authorization(challenge.token, jwk_from_text(account.jwk))
                task = asyncio.get_running_loop().create_task(
                    self._validate(challenge, authz, key_authz)
                )
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            challenge = self.store.get_challenge(challenge.id)
        response = self._json(render_challenge(challenge, self.urls))
        response.headers.add("Link", f'<{self.urls.authorization(authz.id)}>;rel="up"')
        return response

    async def _validate(
        self, challenge: AcmeChallenge, authz: AcmeAuthorization, key_authz: str
    ) -> None:
        name = ("*." if authz.wildcard else "") + authz.identifier.value
        error: str | None = None
        try:
            result = await validate(
                challenge.type.value, name, challenge.token, key_authz, self.settings.validation
            )
            valid = result.valid
            if not valid and result.error is not None:
                failed = AcmeProblem.challenge_failed(result.error.value, result.detail)
                error = failed.to_json().decode()
        except Exception:
            # Whatever went wrong, the challenge must not stay "processing" for ever.
            log.exception("validating %s for %s failed", challenge.type.value, name)
            valid = False
            internal = AcmeProblem.server_internal("validation failed inside the server")
            error = internal.to_json().decode()
        self.store.update_challenge(
            challenge.id,
            status=ChallengeStatus.VALID if valid else ChallengeStatus.INVALID,
            validated_at=self.clock() if valid else None,
            error=error,
            expected_status=ChallengeStatus.PROCESSING,
            authorization_status=AuthzStatus.VALID if valid else AuthzStatus.INVALID,
        )
        log.info("%s for %s: %s", challenge.type.value, name, "valid" if valid else error)


_R = TypeVar("_R")
_Owned = TypeVar("_Owned", AcmeOrder, AcmeAuthorization)


def _found(lookup: Callable[[str], _R], key: str, what: str) -> _R:
    """The record ``key`` names; an unknown id is a 404 (URLs carry them)."""
    try:
        return lookup(key)
    except NotFound:
        raise AcmeProblem.malformed(f"no such {what}", status=404) from None


def _owned(lookup: Callable[[str], _Owned], key: str, account: AcmeAccount, what: str) -> _Owned:
    """The record, if ``account`` owns it: another account's orders are none of its business."""
    record = _found(lookup, key, what)
    if record.account_id != account.id:
        raise AcmeProblem.unauthorized(f"this {what} belongs to another account")
    return record

"""Order endpoints (RFC 8555 7.4, 7.5): newOrder, orders, finalize, authorizations and challenges.

A challenge the client says is ready is validated in a background task; the outcome is written
to the challenge and its authorization in one transaction.

Several nodes share one store, and a node can stop while a challenge or an order it was working
on is ``processing``; nothing would ever move it on and the client would poll for ever. So every
read of an order, authorization or challenge also looks at when its ``processing`` began (a
comparison on the record already read; a write only when something is abandoned):

- A challenge ``processing`` for longer than the validation timeout plus a margin becomes
  ``invalid`` with a ``serverInternal`` problem saying the validating node stopped. RFC 8555
  7.1.6 lets a processing challenge become only valid or invalid (or be retried in place); it
  may not go back to ``pending``. Retrying was the other choice, but a validation that brought
  one node down could then bring every node down in turn, while ``invalid`` ends it, and the
  client recovers as from any failed validation: with a new order.
- An order ``processing`` for longer than ``finalize_stale`` is taken over by the first node to
  read it (a compare-and-set on ``processing_since``, so exactly one does) and finished as
  finalize would have: with the certificate the stopped node already issued for it if there is
  one, else by issuing from the CSR finalize stored. RFC 8555 lets a processing order become
  only valid or invalid, and the client asked for a certificate, so issuing is the answer.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TypeVar

from aiohttp import web

from tlsgate.acme import jose
from tlsgate.acme.ari import parse_cert_id
from tlsgate.acme.problems import AcmeProblem
from tlsgate.acme.server.core import (
    ServerCore,
    b64_field,
    identifier_message,
    identifier_values,
    identifiers_of,
    jwk_from_text,
    log,
)
from tlsgate.acme.server.csr import check_finalize_csr
from tlsgate.acme.server.resources import render_authorization, render_challenge, render_order
from tlsgate.acme.server.status import (
    abandoned,
    current_authorization_status,
    current_order_status,
)
from tlsgate.acme.server.validation import validate
from tlsgate.errors import CSRError, NotFound, PolicyDenied, TlsgateError
from tlsgate.pki.csr import CheckedCSR
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
            challenges = self._recover_challenges(self.store.challenges_for(authz_id), now)
            statuses.append(current_authorization_status(authz, challenges, now))
        return statuses

    def _owned_order(self, order_id: str, account: AcmeAccount) -> AcmeOrder:
        return _owned(self.store.get_order, order_id, account, "order")

    async def order(self, request: web.Request) -> web.Response:
        _, account = await self._with_account(request)
        now = self.clock()
        order = self._recover_order(self._owned_order(request.match_info["id"], account), now)
        status = current_order_status(order, self._authz_statuses(order, now), now)
        return self._json(render_order(order, status, self.urls))

    async def finalize(self, request: web.Request) -> web.Response:
        context, account = await self._with_account(request)
        now = self.clock()
        order = self._recover_order(self._owned_order(request.match_info["id"], account), now)
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
        # To processing exactly once: a second concurrent finalize loses here. The CSR and the
        # time go with it, so another node can finish the order if this one stops.
        if not self.store.update_order(
            order.id,
            status=OrderStatus.PROCESSING,
            expected_status=order.status,
            processing_since=now,
            csr=der,
        ):
            raise AcmeProblem.order_not_ready("the order is already being finalized")
        problem = self._issue(order, checked, now)
        if problem is not None:
            raise problem
        order = self.store.get_order(order.id)
        status = current_order_status(order, [], now)
        return self._json(render_order(order, status, self.urls), 200, self.urls.order(order.id))

    def _issue(self, order: AcmeOrder, checked: CheckedCSR, now: datetime) -> AcmeProblem | None:
        """Issue for a ``processing`` order and record the outcome; the problem if refused."""
        identifiers = [(i.type, i.value) for i in order.identifiers]
        life = self.settings.profiles.get(order.profile or "default")
        if life is None:  # a profile removed from the configuration since the order was placed
            life = self.settings.profiles["default"]
        try:
            issued = self.ca.issue(
                parse_identities(identifier_values(identifiers)),
                now=now,
                profile=LeafProfile(lifetime=life),
                csr=checked,
                requester=f"acme:{order.account_id}/{order.id}",
                order_id=order.id,
            )
        except (PolicyDenied, TlsgateError) as exc:
            problem = AcmeProblem.bad_csr(str(exc))
            self.store.update_order(
                order.id,
                status=OrderStatus.INVALID,
                error=problem.to_json().decode(),
                expected_status=OrderStatus.PROCESSING,
            )
            return problem
        serial = issued.certificate.serial_number
        self.store.update_order(
            order.id,
            status=OrderStatus.VALID,
            certificate_serial=serial,
            expected_status=OrderStatus.PROCESSING,
        )
        log.info("ACME order %s of %s: issued %X", order.id, order.account_id, serial)
        return None

    # -- what a stopped node left processing (see the module docstring) ---------------------
    def _recover_order(self, order: AcmeOrder, now: datetime) -> AcmeOrder:
        """``order``, or, if a stopped node left it ``processing``, the order finished here."""
        if order.status is not OrderStatus.PROCESSING:
            return order
        stale_before = now - self.settings.finalize_stale
        if order.processing_since is not None and order.processing_since >= stale_before:
            return order  # its node is (most likely) still at it
        if not self.store.take_over_order(order.id, stale_before=stale_before, now=now):
            return self.store.get_order(order.id)  # another node took it, or it finished
        log.warning("ACME order %s: its finalizing node stopped; finishing it here", order.id)
        serial = self.store.order_certificate(order.id)
        if serial is not None:  # the stopped node issued, then died before recording it
            self.store.update_order(
                order.id,
                status=OrderStatus.VALID,
                certificate_serial=serial,
                expected_status=OrderStatus.PROCESSING,
            )
            return self.store.get_order(order.id)
        try:
            if order.csr is None:  # finalized before schema 6 kept the CSR
                raise CSRError("the CSR was not kept")
            checked = check_finalize_csr(order.csr, [(i.type, i.value) for i in order.identifiers])
        except CSRError as exc:
            problem = AcmeProblem.server_internal(
                f"the node finalizing this order stopped and it cannot be finished ({exc});"
                " place a new order"
            )
            self.store.update_order(
                order.id,
                status=OrderStatus.INVALID,
                error=problem.to_json().decode(),
                expected_status=OrderStatus.PROCESSING,
            )
            return self.store.get_order(order.id)
        self._issue(order, checked, now)  # a refusal is recorded in the order
        return self.store.get_order(order.id)

    def _recover_challenges(
        self, challenges: Sequence[AcmeChallenge], now: datetime
    ) -> Sequence[AcmeChallenge]:
        """``challenges``, with those a stopped node left ``processing`` made invalid."""
        stale_before = now - self.settings.validation_stale
        if not any(abandoned(c, stale_before) for c in challenges):
            return challenges  # the common case: no write, no copy
        out = []
        for challenge in challenges:
            if abandoned(challenge, stale_before):
                problem = AcmeProblem.server_internal(
                    "the node validating this challenge stopped before it finished;"
                    " place a new order to try again"
                )
                # Compare-and-set: a validation that did finish meanwhile keeps its outcome.
                if self.store.update_challenge(
                    challenge.id,
                    status=ChallengeStatus.INVALID,
                    error=problem.to_json().decode(),
                    expected_status=ChallengeStatus.PROCESSING,
                    authorization_status=AuthzStatus.INVALID,
                ):
                    log.warning("ACME challenge %s: its validating node stopped", challenge.id)
                challenge = self.store.get_challenge(challenge.id)
            out.append(challenge)
        return out

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
        now = self.clock()
        challenges = self._recover_challenges(self.store.challenges_for(authz.id), now)
        return self._json(render_authorization(authz, challenges, self.urls, now))

    async def challenge(self, request: web.Request) -> web.Response:
        context, account = await self._with_account(request)
        challenge = _found(self.store.get_challenge, request.match_info["id"], "challenge")
        authz = self._owned_authorization(challenge.authorization_id, account)
        now = self.clock()
        challenge = self._recover_challenges([challenge], now)[0]
        if not context.request.is_post_as_get and challenge.status is ChallengeStatus.PENDING:
            # {} (not POST-as-GET): the client is ready; validate once, in the background.
            status = current_authorization_status(authz, self.store.challenges_for(authz.id), now)
            if status != "pending":
                raise AcmeProblem.malformed(f"the authorization is {status}")
            if self.store.update_challenge(
                challenge.id,
                status=ChallengeStatus.PROCESSING,
                expected_status=ChallengeStatus.PENDING,
                processing_since=now,
            ):
                key_authz = jose.key_authorization(challenge.token, jwk_from_text(account.jwk))
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

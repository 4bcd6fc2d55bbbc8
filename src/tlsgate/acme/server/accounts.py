"""Account endpoints (RFC 8555 7.3): newAccount, account update and deactivation, keyChange."""

from __future__ import annotations

from aiohttp import web

from tlsgate.acme import jose
from tlsgate.acme.problems import AcmeProblem
from tlsgate.acme.server import jws
from tlsgate.acme.server.core import (
    ServerCore,
    contact_list,
    jwk_from_text,
    jwk_text,
    log,
)
from tlsgate.acme.server.resources import (
    render_account,
)
from tlsgate.errors import AlreadyExists
from tlsgate.store.acme import (
    AccountStatus,
    AcmeAccount,
    new_id,
)

__all__ = ["AccountHandlers"]


class AccountHandlers(ServerCore):
    """newAccount, the account URL, its orders list and keyChange."""

    # -- accounts ------------------------------------------------------------------------------
    async def new_account(self, request: web.Request) -> web.Response:
        context = await self._authenticate(request, jws.KeyRule.JWK)
        verified = context.request
        payload = verified.payload_json or {}
        thumbprint = jose.thumbprint(verified.jwk)
        existing = self.store.find_account_by_thumbprint(thumbprint)
        if existing is not None:
            return self._json(
                render_account(existing, self.urls), 200, self.urls.account(existing.id)
            )
        if payload.get("onlyReturnExisting"):
            raise AcmeProblem.account_does_not_exist()
        contact = contact_list(payload)
        if self.settings.terms_of_service and not payload.get("termsOfServiceAgreed"):
            raise AcmeProblem.malformed("the terms of service must be agreed to")
        eab_kid = None
        if payload.get("externalAccountBinding") is not None:
            eab_kid = jws.verify_external_account_binding(
                verified, self.urls.new_account, lambda kid: self.settings.eab_keys.get(kid)
            )
        elif self.settings.eab_required:
            raise AcmeProblem.external_account_required()
        account = AcmeAccount(
            id=new_id(),
            jwk=jwk_text(verified.jwk),
            thumbprint=thumbprint,
            contact=contact,
            status=AccountStatus.VALID,
            created_at=self.clock(),
            eab_kid=eab_kid,
        )
        try:
            self.store.add_account(account)
        except AlreadyExists:
            # Another node registered this key between our lookup and our insert (the client
            # retried on another node, or sent two at once): that account is the answer.
            existing = self.store.find_account_by_thumbprint(thumbprint)
            if existing is None:
                raise
            return self._json(
                render_account(existing, self.urls), 200, self.urls.account(existing.id)
            )
        log.info("new ACME account %s (%s)", account.id, ", ".join(contact) or "no contact")
        return self._json(render_account(account, self.urls), 201, self.urls.account(account.id))

    async def account(self, request: web.Request) -> web.Response:
        context, account = await self._with_account(request)
        if account.id != request.match_info["id"]:
            raise AcmeProblem.unauthorized("this is another account")
        payload = context.request.payload_json
        if payload:
            contact = contact_list(payload) if "contact" in payload else None
            status = None
            if "status" in payload:
                if payload["status"] != "deactivated":
                    raise AcmeProblem.malformed("an account's status can only become deactivated")
                status = AccountStatus.DEACTIVATED
            account = self.store.update_account(account.id, contact=contact, status=status)
        return self._json(render_account(account, self.urls), 200, self.urls.account(account.id))

    async def account_orders(self, request: web.Request) -> web.Response:
        _, account = await self._with_account(request)
        if account.id != request.match_info["id"]:
            raise AcmeProblem.unauthorized("this is another account")
        orders = self.store.list_orders(account.id)
        return self._json({"orders": [self.urls.order(o.id) for o in orders]})

    async def key_change(self, request: web.Request) -> web.Response:
        context, account = await self._with_account(request)
        new_jwk = jws.verify_key_change(
            context.request,
            url=self.urls.key_change,
            account_url=self.urls.account(account.id),
            old_jwk=jwk_from_text(account.jwk),
        )
        thumbprint = jose.thumbprint(new_jwk)
        other = self.store.find_account_by_thumbprint(thumbprint)
        if other is None:
            try:
                account = self.store.update_account(
                    account.id, jwk=jwk_text(new_jwk), thumbprint=thumbprint
                )
            except AlreadyExists:  # another node gave that key to an account meanwhile
                other = self.store.find_account_by_thumbprint(thumbprint)
                if other is None:
                    raise
        if other is not None:
            response = self._problem(
                AcmeProblem.malformed("the new key belongs to another account", status=409)
            )
            response.headers["Location"] = self.urls.account(other.id)
            return response
        return self._json(render_account(account, self.urls), 200, self.urls.account(account.id))

"""The ACME server's HTTP front end (RFC 8555 7): what `tlsgate ca serve` answers.

aiohttp only moves bytes and routes; every decision is in the sans-IO modules: request
authentication (``jws.py``, ``nonces.py``), what may be ordered (``policy.py``), statuses
(``status.py``), the JSON objects (``resources.py``) and renewal information
(``acme/ari.py``). State lives in the store, one transaction per change, so a rejected request
changes nothing and a crash never leaves half an order.

Every answer carries a fresh ``Replay-Nonce`` and the directory ``Link`` (RFC 8555 6.5, 7.1);
errors are ``application/problem+json``. Challenge validation runs as a task after the client
says it is ready; its outcome goes to the challenge and its authorization in one transaction.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from tlsgate.acme.problems import AcmeProblem
from tlsgate.acme.server.accounts import AccountHandlers
from tlsgate.acme.server.certificates import CertificateHandlers
from tlsgate.acme.server.core import AcmeServerSettings, Handler, ServerCore
from tlsgate.acme.server.jws import MAX_BODY
from tlsgate.acme.server.orders import OrderHandlers
from tlsgate.errors import TlsgateError
from tlsgate.pki.info import format_remaining

__all__ = ["AcmeServer", "AcmeServerSettings"]

log = logging.getLogger("tlsgate.acme")


class AcmeServer(AccountHandlers, OrderHandlers, CertificateHandlers, ServerCore):
    """The whole front end: the handler mixins plus routes, middleware and the directory."""

    # -- wiring --------------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY, middlewares=[self._middleware])
        app.router.add_get("/directory", self.directory)
        app.router.add_route("HEAD", "/acme/new-nonce", self.new_nonce)
        app.router.add_get("/acme/new-nonce", self.new_nonce, allow_head=False)
        app.router.add_post("/acme/new-account", self.new_account)
        app.router.add_post("/acme/acct/{id}", self.account)
        app.router.add_post("/acme/acct/{id}/orders", self.account_orders)
        app.router.add_post("/acme/key-change", self.key_change)
        app.router.add_post("/acme/new-order", self.new_order)
        app.router.add_post("/acme/order/{id}", self.order)
        app.router.add_post("/acme/order/{id}/finalize", self.finalize)
        app.router.add_post("/acme/authz/{id}", self.authorization)
        app.router.add_post("/acme/chall/{id}", self.challenge)
        app.router.add_post("/acme/cert/{serial}", self.certificate)
        app.router.add_post("/acme/revoke-cert", self.revoke_cert)
        app.router.add_get("/acme/renewal-info/{cert_id}", self.renewal_info)
        app.on_cleanup.append(self._cancel_tasks)
        return app

    async def _cancel_tasks(self, _app: web.Application) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except AcmeProblem as problem:
            response = self._problem(problem)
        except web.HTTPRequestEntityTooLarge:
            too_large = AcmeProblem.malformed(f"request body over {MAX_BODY} bytes", status=413)
            response = self._problem(too_large)
        except web.HTTPException as exc:  # 404/405 from the router
            if exc.status >= 500:
                raise
            response = self._problem(AcmeProblem.malformed(exc.reason, status=exc.status))
        except Exception:
            log.exception("ACME request %s %s failed", request.method, request.path)
            response = self._problem(AcmeProblem.server_internal())
        try:
            response.headers["Replay-Nonce"] = self.nonces.issue(self.clock())
        except TlsgateError as exc:
            # Shared nonces live in the store: when it is unreachable, say so as a problem
            # document (without a nonce) rather than as aiohttp's bare 500 page.
            log.error("cannot issue a nonce: %s", exc)
            response = self._problem(AcmeProblem.server_internal("the server's store failed"))
        response.headers.add("Link", f'<{self.urls.directory}>;rel="index"')
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    # -- directory and nonces ------------------------------------------------------------------
    async def directory(self, request: web.Request) -> web.Response:
        settings = self.settings
        return self._json(
            self.urls.directory_object(
                terms=settings.terms_of_service,
                eab_required=settings.eab_required,
                profiles={
                    name: f"certificates valid {format_remaining(life)}"
                    for name, life in settings.profiles.items()
                },
            )
        )

    async def new_nonce(self, request: web.Request) -> web.Response:
        return web.Response(status=200 if request.method == "HEAD" else 204)

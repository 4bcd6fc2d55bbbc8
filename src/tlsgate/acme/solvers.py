"""Answering http-01 (RFC 8555 8.3): the key authorizations of the challenges in progress,
served at ``/.well-known/acme-challenge/TOKEN`` by whatever HTTP listener mounts :meth:`route`
(`cert obtain`'s own one; later `serve`'s plain-HTTP listener)."""

from __future__ import annotations

from aiohttp import web

__all__ = ["Http01Solver"]

PATH = "/.well-known/acme-challenge/{token}"


class Http01Solver:
    challenge_type = "http-01"

    def __init__(self) -> None:
        self.answers: dict[str, str] = {}  # token -> key authorization

    async def present(self, identifier: str, token: str, key_authorization: str) -> None:
        self.answers[token] = key_authorization

    async def cleanup(self, identifier: str, token: str) -> None:
        self.answers.pop(token, None)

    async def handle(self, request: web.Request) -> web.Response:
        answer = self.answers.get(request.match_info["token"])
        if answer is None:
            return web.Response(status=404, text="no such challenge\n")
        return web.Response(text=answer, content_type="text/plain")

    def route(self, app: web.Application) -> web.Application:
        app.router.add_get(PATH, self.handle)
        return app

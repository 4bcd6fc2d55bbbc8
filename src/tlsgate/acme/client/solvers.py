"""Putting challenge answers where the CA will look (RFC 8555 8.3, RFC 8737).

:class:`Http01Solver` keeps http-01 key authorizations in memory for a listener of its own
(`tlsgate cert obtain`); :class:`StoredAnswers` puts http-01 and tls-alpn-01 answers in the store
for ``serve``'s listeners, which run in other processes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol

from aiohttp import web

__all__ = ["ANSWER_LIFETIME", "ChallengeAnswers", "Http01Solver", "StoredAnswers"]

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


#: How long a stored answer stays valid: far longer than any validation, short enough that an
#: answer left behind by a crash is gone by the next day.
ANSWER_LIFETIME = timedelta(hours=1)


class StoredAnswers:
    """http-01 and tls-alpn-01 answered by ``serve``'s own listeners, through the store.

    The renewal loop runs in the master process while the workers own the sockets, and in a
    cluster the CA may reach any node: so the answer is written where every process (and node)
    reads it, and the listeners look it up when a validation request arrives
    (``challenge_answer``: one indexed read).
    """

    def __init__(self, store: ChallengeAnswers, challenge_type: str) -> None:
        if challenge_type not in ("http-01", "tls-alpn-01"):
            raise ValueError(f"not answered by a listener: {challenge_type}")
        self.store = store
        self.challenge_type = challenge_type

    def _key(self, identifier: str, token: str) -> str:
        # http-01 is looked up by the token in the URL, tls-alpn-01 by the name in the SNI.
        return token if self.challenge_type == "http-01" else identifier

    async def present(self, identifier: str, token: str, key_authorization: str) -> None:
        self.store.put_challenge_answer(
            self.challenge_type,
            self._key(identifier, token),
            key_authorization,
            expires_at=datetime.now(UTC) + ANSWER_LIFETIME,
        )

    async def cleanup(self, identifier: str, token: str) -> None:
        self.store.delete_challenge_answer(self.challenge_type, self._key(identifier, token))


class ChallengeAnswers(Protocol):
    """The part of the store the listeners and :class:`StoredAnswers` share."""

    def put_challenge_answer(
        self, kind: str, key: str, value: str, *, expires_at: datetime
    ) -> None: ...

    def challenge_answer(self, kind: str, key: str, *, now: datetime) -> str | None: ...

    def delete_challenge_answer(self, kind: str, key: str) -> None: ...
